"""Malformed packets and protocol violations (MQTT 3.1.1 sections 1.5.3, 2.2, 4.8).

In 3.1.1 the server's only answer to a malformed packet is closing the
connection [MQTT-4.8.0-1]. After every such connection, assert_serving()
proves that the broker still serves a new client.
"""
import pytest

import mqttraw as m

from .helpers import (assert_serving, connected, expect_closed_silently, expect_publish, publish_acked, raw,
                      subscriber)

BAD_UTF8 = {
    "invalid-byte-ff": b"mf/\xff",
    "lone-continuation": b"mf/\x80",
    "truncated-sequence": b"mf/\xc3",
    "overlong-slash": b"mf/\xc0\xaf",
    "above-U+10FFFF": b"mf/\xf4\x90\x80\x80",
}


# ------------------------------------------------------------------ framing --

def test_remaining_length_of_five_bytes_closed(broker):
    """2.2.3: the Remaining Length is at most 4 bytes; a fifth continuation byte closes the connection."""
    c = connected(broker, "mf-len5")
    c.send(bytes([0xC0, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]))
    expect_closed_silently(c)
    assert_serving(broker)


def test_remaining_length_of_five_bytes_before_connect_closed(broker):
    """2.2.3: the same on the very first packet (before any CONNECT was accepted)."""
    c = raw(broker)
    c.send(bytes([0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]))
    expect_closed_silently(c)
    assert_serving(broker)


def test_incomplete_packet_waits_while_broker_serves_others(broker):
    """2.2.3: a declared remaining length longer than the bytes received so far makes the broker wait for the
    rest (no answer, no close) while it keeps serving other clients; the completed packet is then handled."""
    c = connected(broker, "mf-partial")
    whole = m.publish("mf/partial", b"x" * 200, qos=1, packet_id=77)
    c.send(whole[:20])
    assert_serving(broker)
    c.send(whole[20:] + m.pingreq())
    assert c.expect(m.PUBACK).fields["packet_id"] == 77
    c.expect(m.PINGRESP)


def test_packet_larger_than_max_packet_size_closed(make_broker):
    """petrel [mqtt] max_packet_size = 1024: a 1025-byte PUBLISH closes the connection."""
    broker = make_broker("[mqtt]\nmax_packet_size = 1024\n")
    c = connected(broker, "mf-big")
    topic = "mf/big"
    pkt = m.publish(topic, b"x" * (1025 - 3 - 2 - len(topic)), qos=0)
    assert len(pkt) == 1025
    c.send(pkt)
    expect_closed_silently(c)
    assert_serving(broker)


def test_packet_of_exactly_max_packet_size_accepted(make_broker):
    """petrel [mqtt] max_packet_size = 1024 counts the whole packet: a 1024-byte PUBLISH is accepted."""
    broker = make_broker("[mqtt]\nmax_packet_size = 1024\n")
    sub = subscriber(broker, "mf-fit-s", [("mf/fit", 0)])
    c = connected(broker, "mf-fit")
    topic = "mf/fit"
    pkt = m.publish(topic, b"y" * (1024 - 3 - 2 - len(topic)), qos=0)
    assert len(pkt) == 1024
    c.send(pkt)
    assert len(expect_publish(sub, "mf/fit").fields["payload"]) == 1024 - 3 - 2 - len(topic)


def test_oversized_packet_closed_on_its_header(make_broker):
    """petrel: a fixed header announcing more than max_packet_size closes the connection at once, without
    waiting for (or allocating) the body."""
    broker = make_broker("[mqtt]\nmax_packet_size = 1024\n")
    c = connected(broker, "mf-hdr")
    c.send(bytes([0x30]) + m.varint(100_000))
    expect_closed_silently(c)
    assert_serving(broker)


# ------------------------------------------------------------------ UTF-8 --

@pytest.mark.parametrize("topic", list(BAD_UTF8.values()), ids=list(BAD_UTF8))
def test_ill_formed_utf8_in_topic_closed(broker, topic):
    """[MQTT-1.5.3-1] Ill-formed UTF-8 in a topic name closes the connection."""
    c = connected(broker, f"mf-utf8-{topic.hex()}")
    c.send(m.publish(topic, b"x", qos=0))
    expect_closed_silently(c)
    assert_serving(broker)


def test_utf16_surrogate_in_topic_closed(broker):
    """[MQTT-1.5.3-1] A UTF-8 encoded surrogate code point (ED A0 80 = U+D800) in a topic name closes the
    connection."""
    c = connected(broker, "mf-surrogate")
    c.send(m.publish(b"mf/\xed\xa0\x80", b"x", qos=0))
    expect_closed_silently(c)
    assert_serving(broker)


def test_null_character_in_topic_closed(broker):
    """[MQTT-1.5.3-2] U+0000 in a topic name closes the connection."""
    c = connected(broker, "mf-nul")
    c.send(m.publish(b"mf/\x00/x", b"x", qos=0))
    expect_closed_silently(c)
    assert_serving(broker)


def test_ill_formed_utf8_in_client_id_closed(broker):
    """[MQTT-1.5.3-1] Ill-formed UTF-8 in the client id: the CONNECT is malformed, closed without CONNACK."""
    c = raw(broker)
    c.send(m.connect(b"mf-\xff"))
    expect_closed_silently(c)
    assert_serving(broker)


def test_ill_formed_utf8_in_will_topic_closed(broker):
    """[MQTT-1.5.3-1] Ill-formed UTF-8 in the will topic: closed without CONNACK."""
    c = raw(broker)
    c.send(m.connect("mf-will", will_topic=b"mf/\xc3\x28", will_payload=b"x"))
    expect_closed_silently(c)
    assert_serving(broker)


def test_ill_formed_utf8_in_user_name_closed(broker):
    """[MQTT-1.5.3-1] Ill-formed UTF-8 in the user name: closed without CONNACK."""
    c = raw(broker)
    c.send(m.connect("mf-user", username=b"\xed\xbf\xbf"))
    expect_closed_silently(c)
    assert_serving(broker)


def test_ill_formed_utf8_in_topic_filter_closed(broker):
    """[MQTT-1.5.3-1] Ill-formed UTF-8 in a SUBSCRIBE topic filter closes the connection."""
    c = connected(broker, "mf-filter")
    c.send(m.packet(m.SUBSCRIBE, 0x02, m.u16(1) + m.mstr(b"mf/\xff/#") + b"\x00"))
    expect_closed_silently(c)
    assert_serving(broker)


def test_null_character_in_unsubscribe_filter_closed(broker):
    """[MQTT-1.5.3-2] U+0000 in an UNSUBSCRIBE topic filter closes the connection."""
    c = connected(broker, "mf-unul")
    c.send(m.packet(m.UNSUBSCRIBE, 0x02, m.u16(1) + m.mstr(b"mf\x00")))
    expect_closed_silently(c)
    assert_serving(broker)


# ------------------------------------------------------------------ packet types and bodies --

def test_trailing_bytes_after_pingreq_closed(broker):
    """3.12: PINGREQ has no variable header or payload; a remaining length of 1 (C0 01 00) closes the
    connection."""
    c = connected(broker, "mf-ping")
    c.send(b"\xc0\x01\x00")
    expect_closed_silently(c)
    assert_serving(broker)


def test_pingreq_with_flags_closed(broker):
    """[MQTT-2.2.2-2] PINGREQ fixed-header flags are reserved 0000: C1 00 closes the connection."""
    c = connected(broker, "mf-pingf")
    c.send(b"\xc1\x00")
    expect_closed_silently(c)
    assert_serving(broker)


def test_auth_packet_closed(broker):
    """2.2.1: packet type 15 is reserved in 3.1.1 (AUTH exists only in MQTT 5): the connection is closed."""
    c = connected(broker, "mf-auth")
    c.send(m.packet(m.AUTH, 0, b""))
    expect_closed_silently(c)
    assert_serving(broker)


def test_reserved_packet_type_0_closed(broker):
    """2.2.1: packet type 0 is reserved: the connection is closed."""
    c = connected(broker, "mf-type0")
    c.send(b"\x00\x00")
    expect_closed_silently(c)
    assert_serving(broker)


@pytest.mark.parametrize("pkt", [b"\x20\x02\x00\x00", b"\x90\x03\x00\x01\x00", b"\xb0\x02\x00\x01", b"\xd0\x00"],
                         ids=["CONNACK", "SUBACK", "UNSUBACK", "PINGRESP"])
def test_server_to_client_packet_from_client_closed(broker, pkt):
    """2.2.1 (direction of flow): a client sending a server-to-client packet closes its connection."""
    c = connected(broker, f"mf-dir-{pkt[0]:02x}")
    c.send(pkt)
    expect_closed_silently(c)
    assert_serving(broker)


def test_disconnect_with_payload_closed_and_will_published(broker):
    """3.14: DISCONNECT has no variable header or payload. E0 01 00 is malformed, so it is not a normal
    DISCONNECT: the connection is closed and the will is published [MQTT-3.1.2-8]."""
    sub = subscriber(broker, "mf-disc-s", [("mf/disc/will", 1)])
    c = connected(broker, "mf-disc", will_topic="mf/disc/will", will_payload=b"malformed", will_qos=1)
    c.send(b"\xe0\x01\x00")
    expect_closed_silently(c)
    expect_publish(sub, "mf/disc/will", b"malformed")
    assert_serving(broker)


def test_disconnect_with_flags_closed(broker):
    """[MQTT-2.2.2-2] DISCONNECT fixed-header flags are reserved 0000: E2 00 closes the connection."""
    c = connected(broker, "mf-discf")
    c.send(b"\xe2\x00")
    expect_closed_silently(c)
    assert_serving(broker)


@pytest.mark.parametrize("body", [b"\x00", b"\x00\x01\x00"], ids=["short", "long"])
def test_puback_of_wrong_length_closed(broker, body):
    """3.4: a 3.1.1 PUBACK is exactly a 2-byte packet id; a remaining length of 1 or 3 closes the connection."""
    c = connected(broker, f"mf-puback-{len(body)}")
    c.send(m.packet(m.PUBACK, 0, body))
    expect_closed_silently(c)
    assert_serving(broker)


def test_string_longer_than_packet_closed(broker):
    """1.5.3: a topic length prefix (100) pointing past the end of the packet closes the connection."""
    c = connected(broker, "mf-strlen")
    c.send(m.packet(m.PUBLISH, 0, m.u16(100) + b"abc"))
    expect_closed_silently(c)
    assert_serving(broker)


def test_publish_qos1_without_packet_id_closed(broker):
    """3.3.2.2: a QoS 1 PUBLISH must carry a packet id; a body ending after the topic closes the connection."""
    c = connected(broker, "mf-noid")
    c.send(m.packet(m.PUBLISH, 0x02, m.mstr("a")))
    expect_closed_silently(c)
    assert_serving(broker)


def test_truncated_connect_closed(broker):
    """3.1.2: a CONNECT whose body stops after the protocol level is malformed: closed without CONNACK."""
    c = raw(broker)
    c.send(m.packet(m.CONNECT, 0, m.mstr("MQTT") + b"\x04"))
    expect_closed_silently(c)
    assert_serving(broker)


def test_connect_with_trailing_bytes_closed(broker):
    """3.1.3: the CONNECT payload holds exactly the fields its flags announce; an extra byte makes it malformed
    and the connection is closed without CONNACK."""
    c = raw(broker)
    good = m.connect("mf-trail")
    c.send(m.packet(m.CONNECT, 0, good[2:] + b"\x00"))
    expect_closed_silently(c)
    assert_serving(broker)


def test_garbage_does_not_disturb_existing_connections(broker):
    """A client sending garbage is closed alone: an already connected subscriber keeps receiving."""
    sub = subscriber(broker, "mf-calm-s", [("mf/calm", 1)])
    bad = connected(broker, "mf-garbage")
    bad.send(b"\xff\xff\xff\xff\xff\xff")
    expect_closed_silently(bad)
    pub = connected(broker, "mf-calm-p")
    publish_acked(pub, "mf/calm", b"unaffected", qos=1, packet_id=1)
    expect_publish(sub, "mf/calm", b"unaffected")
