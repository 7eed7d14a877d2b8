"""MQTT 3.1 (protocol name "MQIsdp", level 3) where it differs from 3.1.1 on the wire.

MQTT 3.1 gives every fixed header DUP, QoS and RETAIN bits: PUBREL, SUBSCRIBE and UNSUBSCRIBE are "QoS 1"
messages and carry DUP when sent again, and CONNECT leaves the bits "not used". Connect flag bit 0 is not
reserved either. 3.1 clients rely on that; petrel accepts it from 3.1 sessions only (as Mosquitto does), while
3.1.1 reserves all of it [MQTT-2.2.2-1] [MQTT-3.1.2-3] [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1].
"""
import pytest

import mqttraw as m

from .helpers import (connected, drop, expect_closed_silently, expect_publish, publish_acked, raw, subscriber)

DUP = 0x08


def test_v31_pubrel_with_dup_gets_pubcomp(broker):
    """MQTT 3.1: a PUBREL sent again carries DUP (6A): it is accepted and answered with PUBCOMP."""
    c = connected(broker, "v31-reldup", version=3)
    c.send(m.publish("v31/reldup", b"x", qos=2, packet_id=5))
    assert c.expect(m.PUBREC).fields["packet_id"] == 5
    c.send(bytes([0x60 | DUP | 0x02, 0x02, 0x00, 0x05]))
    comp = c.expect(m.PUBCOMP)
    assert (comp.flags, comp.body) == (0, b"\x00\x05")


def test_v31_resumed_session_pubrel_with_dup_completes_once(broker):
    """MQTT 3.1: a client that got PUBREC, lost its connection and resumed its session (clean session 0) resends
    PUBREL with DUP: it gets its PUBCOMP, and the message reached the subscriber exactly once."""
    sub = subscriber(broker, "v31-resume-s", [("v31/resume", 2)])
    c = connected(broker, "v31-resume", version=3, clean=False)
    c.send(m.publish("v31/resume", b"once", qos=2, packet_id=77))
    assert c.expect(m.PUBREC).fields["packet_id"] == 77
    drop(broker, c, "v31-resume")
    c2 = raw(broker, version=3)
    assert c2.connect("v31-resume", version=3, clean=False).fields["reason"] == 0
    c2.send(bytes([0x60 | DUP | 0x02, 0x02, 0x00, 77]))
    comp = c2.expect(m.PUBCOMP)
    assert comp.fields["packet_id"] == 77
    got = expect_publish(sub, "v31/resume", b"once", ack=False)
    sub.send(m.ack(m.PUBREC, got.fields["packet_id"]))
    assert sub.expect(m.PUBREL).fields["packet_id"] == got.fields["packet_id"]
    sub.send(m.ack(m.PUBCOMP, got.fields["packet_id"]))
    publish_acked(c2, "v31/resume", b"sentinel", qos=1, packet_id=78)
    p = sub.recv()
    assert p.type == m.PUBLISH and p.fields["payload"] == b"sentinel", f"a second copy? {p!r}"


def test_v31_subscribe_with_dup_gets_suback(broker):
    """MQTT 3.1: a SUBSCRIBE sent again carries DUP (8A): it is accepted and answered with SUBACK."""
    c = connected(broker, "v31-subdup", version=3)
    pkt = m.subscribe(3, [("v31/subdup", 1)])
    c.send(bytes([pkt[0] | DUP]) + pkt[1:])
    ack = c.expect(m.SUBACK)
    assert (ack.fields["packet_id"], ack.fields["reasons"]) == (3, [1])


def test_v31_unsubscribe_with_dup_gets_unsuback(broker):
    """MQTT 3.1: an UNSUBSCRIBE sent again carries DUP (AA): it is accepted and answered with UNSUBACK."""
    c = connected(broker, "v31-unsubdup", version=3)
    pkt = m.unsubscribe(4, ["v31/unsubdup"])
    c.send(bytes([pkt[0] | DUP]) + pkt[1:])
    assert c.expect(m.UNSUBACK).fields["packet_id"] == 4


def test_v31_connect_flag_bit_0_accepted(broker):
    """MQTT 3.1 does not reserve connect flag bit 0: a CONNECT with flags 03 (clean session + bit 0) gets
    CONNACK 0."""
    c = raw(broker, version=3)
    c.send(m.connect("v31-bit0", version=3, flags_override=0x03))
    p = c.expect(m.CONNACK)
    assert p.body == b"\x00\x00", p


@pytest.mark.parametrize("flags", [0x02, 0x08, 0x0F])
def test_v31_connect_fixed_header_flags_accepted(broker, flags):
    """MQTT 3.1: CONNECT's DUP, QoS and RETAIN bits are "not used": a CONNECT with them set gets CONNACK 0."""
    c = raw(broker, version=3)
    pkt = m.connect(f"v31-hdr-{flags:x}", version=3)
    c.send(bytes([pkt[0] | flags]) + pkt[1:])
    p = c.expect(m.CONNACK)
    assert p.body == b"\x00\x00", p


def test_v311_pubrel_with_dup_closed(broker):
    """[MQTT-3.6.1-1] 3.1.1 stays strict: PUBREL flags must be 0010, so a PUBREL with DUP (6A) closes the
    connection and gets no PUBCOMP."""
    c = connected(broker, "v311-reldup")
    c.send(m.publish("v311/reldup", b"x", qos=2, packet_id=5))
    assert c.expect(m.PUBREC).fields["packet_id"] == 5
    c.send(bytes([0x6A, 0x02, 0x00, 0x05]))
    expect_closed_silently(c)


def test_v311_subscribe_with_dup_closed(broker):
    """[MQTT-3.8.1-1] 3.1.1 stays strict: a SUBSCRIBE with DUP (8A) closes the connection, no SUBACK."""
    c = connected(broker, "v311-subdup")
    pkt = m.subscribe(3, [("v311/subdup", 1)])
    c.send(bytes([pkt[0] | DUP]) + pkt[1:])
    expect_closed_silently(c)
