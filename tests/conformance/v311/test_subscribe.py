"""SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK (MQTT 3.1.1 sections 3.8-3.11)."""
import pytest

import mqttraw as m

from .helpers import (assert_serving, connected, expect_closed_silently, expect_publish, publish_acked, sentinel,
                      subscribe, subscriber, tag)


def test_suback_return_codes_in_order(broker):
    """[MQTT-3.8.4-1] [MQTT-3.8.4-5] [MQTT-3.9.3-1] SUBACK carries one granted QoS per filter, in order:
    exact bytes 90 05 <id> 00 01 02."""
    c = connected(broker, "sb-codes")
    c.send(m.subscribe(0x0102, [("sb/q0", 0), ("sb/q1", 1), ("sb/q2", 2)]))
    p = c.recv()
    assert (p.type, p.flags, p.body) == (m.SUBACK, 0, b"\x01\x02\x00\x01\x02")


def test_suback_has_subscribe_packet_id(broker):
    """[MQTT-3.8.4-2] The SUBACK has the packet identifier of the SUBSCRIBE it acknowledges."""
    c = connected(broker, "sb-id")
    for pid in (1, 0x7FFF, 0xFFFF):
        c.send(m.subscribe(pid, [("sb/id", 1)]))
        assert c.expect(m.SUBACK).fields["packet_id"] == pid


@pytest.mark.parametrize("bad", ["sb/#/b", "sb+", "#/sb", "sb/b#", "+sb/b", "sb/+x"])
def test_invalid_topic_filter_gets_0x80(broker, bad):
    """[MQTT-4.7.1-2] [MQTT-4.7.1-3] An invalid topic filter gets return code 0x80 in SUBACK; the other filters
    of the same SUBSCRIBE are still granted. (A zero-length filter [MQTT-4.7.3-1] is not refused per filter: it
    closes the connection, test_codec_errors.py.)"""
    t = tag(bad)
    c = connected(broker, f"sb-bad-{t}")
    assert subscribe(c, [(bad, 1), (f"sb/good/{t}", 1)]) == [0x80, 1]
    pub = connected(broker, f"sb-badp-{t}")
    publish_acked(pub, f"sb/good/{t}", b"ok", qos=1, packet_id=1)
    expect_publish(c, f"sb/good/{t}", b"ok")


@pytest.mark.parametrize("requested", [0x04, 0x80, 0xFC, 0x03], ids=["bit2", "bit7", "all-reserved", "qos3"])
def test_reserved_bits_in_requested_qos_closed(broker, requested):
    """[MQTT-3-8.3-4] The upper 6 bits of the requested QoS byte are reserved and QoS 3 is invalid: the
    connection is closed."""
    c = connected(broker, f"sb-rsv-{requested}")
    c.send(m.packet(m.SUBSCRIBE, 0x02, m.u16(1) + m.mstr("sb/rsv") + bytes([requested])))
    expect_closed_silently(c)
    assert_serving(broker)


@pytest.mark.parametrize("flags", [0x00, 0x03, 0x0A])
def test_subscribe_wrong_fixed_header_flags_closed(broker, flags):
    """[MQTT-3.8.1-1] SUBSCRIBE fixed-header flags must be 0010; anything else closes the connection."""
    c = connected(broker, f"sb-flags-{flags}")
    c.send(m.packet(m.SUBSCRIBE, flags, m.u16(1) + m.mstr("sb/flags") + b"\x00"))
    expect_closed_silently(c)
    assert_serving(broker)


@pytest.mark.parametrize("flags", [0x00, 0x03, 0x0A])
def test_unsubscribe_wrong_fixed_header_flags_closed(broker, flags):
    """[MQTT-3.10.1-1] UNSUBSCRIBE fixed-header flags must be 0010; anything else closes the connection."""
    c = connected(broker, f"sb-uflags-{flags}")
    c.send(m.packet(m.UNSUBSCRIBE, flags, m.u16(1) + m.mstr("sb/flags")))
    expect_closed_silently(c)
    assert_serving(broker)


def test_subscribe_without_filters_closed(broker):
    """[MQTT-3.8.3-3] A SUBSCRIBE must contain at least one filter; an empty payload closes the connection."""
    c = connected(broker, "sb-none")
    c.send(m.packet(m.SUBSCRIBE, 0x02, m.u16(1)))
    expect_closed_silently(c)
    assert_serving(broker)


def test_unsubscribe_without_filters_closed(broker):
    """[MQTT-3.10.3-2] An UNSUBSCRIBE must contain at least one filter; an empty payload closes the connection."""
    c = connected(broker, "sb-unone")
    c.send(m.packet(m.UNSUBSCRIBE, 0x02, m.u16(1)))
    expect_closed_silently(c)
    assert_serving(broker)


@pytest.mark.parametrize("ptype", [m.SUBSCRIBE, m.UNSUBSCRIBE])
def test_subscribe_unsubscribe_packet_id_zero_closed(broker, ptype):
    """[MQTT-2.3.1-1] SUBSCRIBE and UNSUBSCRIBE need a non-zero packet identifier; 0 closes the connection."""
    c = connected(broker, f"sb-id0-{ptype}")
    pkt = m.subscribe(0, [("sb/id0", 0)]) if ptype == m.SUBSCRIBE else m.unsubscribe(0, ["sb/id0"])
    c.send(pkt)
    expect_closed_silently(c)
    assert_serving(broker)


def test_subscribe_filter_missing_qos_byte_closed(broker):
    """3.8.3: each filter is followed by its requested QoS byte; a truncated payload is malformed."""
    c = connected(broker, "sb-trunc")
    c.send(m.packet(m.SUBSCRIBE, 0x02, m.u16(1) + m.mstr("sb/trunc")))
    expect_closed_silently(c)
    assert_serving(broker)


def test_unsubscribe_stops_delivery(broker):
    """[MQTT-3.10.4-1] [MQTT-3.10.4-2] After UNSUBACK no new messages are delivered for the removed filter."""
    c = subscriber(broker, "sb-unsub", [("sb/gone", 1), ("sb/stay", 1)])
    c.send(m.unsubscribe(2, ["sb/gone"]))
    c.expect(m.UNSUBACK)
    pub = connected(broker, "sb-unsubp")
    publish_acked(pub, "sb/gone", b"must not arrive", qos=1, packet_id=1)
    sentinel(pub, c, "sb/stay")


def test_unsuback_exact_bytes_with_packet_id(broker):
    """[MQTT-3.10.4-4] UNSUBACK has the UNSUBSCRIBE's packet id and no payload in 3.1.1: B0 02 <id>."""
    c = subscriber(broker, "sb-uack", [("sb/uack", 0)])
    c.send(m.unsubscribe(0xABCD, ["sb/uack"]))
    p = c.recv()
    assert (p.type, p.flags, p.body) == (m.UNSUBACK, 0, b"\xab\xcd")


def test_unsuback_even_if_no_subscription_matched(broker):
    """[MQTT-3.10.4-5] UNSUBACK is sent even when no subscription matched the filter."""
    c = connected(broker, "sb-unone2")
    c.send(m.unsubscribe(5, ["sb/never/subscribed"]))
    p = c.recv()
    assert (p.type, p.body) == (m.UNSUBACK, b"\x00\x05")


def test_unsubscribe_compares_filters_character_by_character(broker):
    """[MQTT-3.10.4-1] Unsubscribing "sb/+" does not remove the subscription "sb/x" (filters are compared
    literally, not matched)."""
    c = subscriber(broker, "sb-literal", [("sb/x", 1)])
    c.send(m.unsubscribe(2, ["sb/+"]))
    c.expect(m.UNSUBACK)
    pub = connected(broker, "sb-literalp")
    publish_acked(pub, "sb/x", b"still here", qos=1, packet_id=1)
    expect_publish(c, "sb/x", b"still here")


def test_resubscribe_replaces_subscription(broker):
    """[MQTT-3.8.4-3] A SUBSCRIBE for an existing filter replaces that subscription: one copy per message, at
    the new QoS."""
    c = subscriber(broker, "sb-replace", [("sb/rep", 2)])
    assert subscribe(c, [("sb/rep", 1)], packet_id=2) == [1]
    pub = connected(broker, "sb-replacep")
    publish_acked(pub, "sb/rep", b"once", qos=2, packet_id=1)
    p = expect_publish(c, "sb/rep", b"once")
    assert p.fields["qos"] == 1
    sentinel(pub, c, "sb/rep")


def test_resubscribe_resends_retained(broker):
    """[MQTT-3.8.4-3] Retained messages matching the filter are re-sent when an identical subscription is
    replaced."""
    pub = connected(broker, "sb-rrp")
    publish_acked(pub, "sb/rr", b"kept", qos=1, packet_id=1, retain=True)
    c = subscriber(broker, "sb-rr", [("sb/rr", 1)])
    first = expect_publish(c, "sb/rr", b"kept")
    assert first.fields["retain"] is True
    assert subscribe(c, [("sb/rr", 1)], packet_id=2) == [1]
    again = expect_publish(c, "sb/rr", b"kept")
    assert again.fields["retain"] is True


def test_one_subscribe_with_several_filters_activates_all(broker):
    """[MQTT-3.8.4-4] A SUBSCRIBE with several filters is handled as a sequence of subscriptions: all active."""
    c = subscriber(broker, "sb-multi", [("sb/m1", 1), ("sb/m2", 1), ("sb/m3/#", 1)])
    pub = connected(broker, "sb-multip")
    for i, t in enumerate(["sb/m1", "sb/m2", "sb/m3/x"]):
        publish_acked(pub, t, t.encode(), qos=1, packet_id=i + 1)
    assert [expect_publish(c).fields["topic"] for _ in range(3)] == ["sb/m1", "sb/m2", "sb/m3/x"]


def test_granted_qos_capped_by_broker_max_qos(make_broker):
    """3.8.4: the server may grant a lower QoS than requested; petrel grants at most
    [mqtt] max_qos (here 1) and delivers at that QoS."""
    broker = make_broker("[mqtt]\nmax_qos = 1\n")
    c = connected(broker, "sb-cap")
    assert subscribe(c, [("sb/cap", 2), ("sb/cap0", 0)]) == [1, 0]


def test_inflight_qos2_completed_after_unsubscribe(broker):
    """[MQTT-3.10.4-3] When a subscription is deleted, the server completes the delivery of QoS 1/2 messages it
    has started to send: PUBREC after UNSUBSCRIBE still gets PUBREL."""
    c = subscriber(broker, "sb-inflight", [("sb/inflight", 2)])
    pub = connected(broker, "sb-inflightp")
    publish_acked(pub, "sb/inflight", b"started", qos=2, packet_id=1)
    p = expect_publish(c, "sb/inflight", b"started", ack=False)
    c.send(m.unsubscribe(9, ["sb/inflight"]))
    assert c.expect(m.UNSUBACK).fields["packet_id"] == 9
    c.send(m.ack(m.PUBREC, p.fields["packet_id"]))
    rel = c.expect(m.PUBREL)
    assert rel.fields["packet_id"] == p.fields["packet_id"]
    c.send(m.ack(m.PUBCOMP, p.fields["packet_id"]))


def test_same_filter_twice_in_one_subscribe_last_wins(broker):
    """[MQTT-3.8.4-3] [MQTT-3.8.4-4] A SUBSCRIBE is handled like a sequence of SUBSCRIBEs: the same filter
    twice gives two return codes and one subscription with the later QoS (one copy per message)."""
    c = connected(broker, "sb-twice")
    assert subscribe(c, [("sb/twice", 0), ("sb/twice", 1)]) == [0, 1]
    pub = connected(broker, "sb-twicep")
    publish_acked(pub, "sb/twice", b"one copy", qos=1, packet_id=1)
    p = expect_publish(c, "sb/twice", b"one copy")
    assert p.fields["qos"] == 1
    sentinel(pub, c, "sb/twice")
