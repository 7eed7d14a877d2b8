"""MQTT 3.1.1: the server's answer to a broken packet is closing the connection without a word
[MQTT-4.8.0-1]; which fault petrel saw is in its log (the reason of the close), so the tests read that too.

- a packet type a client never sends is a protocol violation, whatever its body (2.2.1);
- control characters in names close the connection (1.5.3);
- so do zero-length topic filters (4.7.3).
"""
import pytest

import mqttraw as m

from .helpers import (assert_serving, close_reason, connected, expect_closed_silently, expect_publish, publish_acked,
                      raw, subscribe, subscriber)


# ------------------------------------------ packets a client never sends (2.2.1) --

@pytest.mark.parametrize("pkt", [b"\x20\x01\xff", b"\x90\x03\x00\x01\x03", b"\xb1\x02\x00\x01", b"\xd0\x01\x00"],
                         ids=["CONNACK", "SUBACK", "UNSUBACK", "PINGRESP"])
def test_server_packet_with_malformed_body_is_protocol_violation(broker, pkt):
    """2.2.1 (direction of flow): CONNACK, SUBACK, UNSUBACK and PINGRESP go from server to client only. One from a
    client is refused for its type, from the first byte, even when its body would not parse: the connection is
    closed and the reason is a protocol error (0x82), not a malformed packet."""
    c = connected(broker, f"ce-dir-{pkt[0]:02x}")
    c.send(pkt)
    expect_closed_silently(c)
    reason = close_reason(broker, c)
    assert "(0x82)" in reason and "sent by servers only" in reason, reason
    assert_serving(broker)


def test_reserved_type_0_is_protocol_violation(broker):
    """2.2.1: packet type 0 is reserved. Known from the first byte: closed as a protocol error (0x82), however
    the body looks."""
    c = connected(broker, "ce-t0")
    c.send(b"\x0f\x03\xff\xff\xff")
    expect_closed_silently(c)
    reason = close_reason(broker, c)
    assert "(0x82)" in reason and "reserved packet type 0" in reason, reason


@pytest.mark.parametrize("first", [0xF0, 0xF1, 0xFF], ids=["flags-0", "flags-1", "flags-F"])
def test_reserved_type_15_is_protocol_violation(broker, first):
    """2.2.1: packet type 15 is reserved in 3.1.1 (AUTH exists only in MQTT 5): closed as a protocol error
    whatever its flags."""
    c = connected(broker, f"ce-t15-{first:02x}")
    c.send(bytes([first, 0x02, 0x18, 0x00]))
    expect_closed_silently(c)
    reason = close_reason(broker, c)
    assert "(0x82)" in reason and "type 15 is reserved" in reason, reason


def test_second_connect_with_malformed_body_is_protocol_violation(broker):
    """[MQTT-3.1.0-2] A second CONNECT is a protocol violation, even one cut short after the protocol level."""
    c = connected(broker, "ce-conn2")
    c.send(m.packet(m.CONNECT, 0, m.mstr("MQTT") + b"\x04"))
    expect_closed_silently(c)
    reason = close_reason(broker, c)
    assert "(0x82)" in reason and "second CONNECT" in reason, reason


# ----------------------------------------------- control characters (1.5.3) --

# Control characters (MQTT 3.1.1 1.5.3: U+0001..U+001F and U+007F..U+009F), as UTF-8.
CONTROLS = {"U+0001": b"\x01", "U+001F": b"\x1f", "U+007F": b"\x7f", "U+0080": b"\xc2\x80", "U+009F": b"\xc2\x9f"}

@pytest.mark.parametrize("cc", list(CONTROLS.values()), ids=list(CONTROLS))
def test_control_character_in_topic_name_closed(broker, cc):
    """1.5.3: control characters SHOULD NOT be in a UTF-8 string, and a receiver of one MAY close the
    connection; petrel does (as Mosquitto) for a topic name. Nothing is routed."""
    topic = f"ce/cc/{cc.hex()}"
    sub = subscriber(broker, f"ce-cc-s-{cc.hex()}", [(topic + "/#", 0)])
    c = connected(broker, f"ce-cc-{cc.hex()}")
    c.send(m.publish(topic.encode() + b"/" + cc, b"x", qos=1))
    expect_closed_silently(c)
    assert "control character in topic name" in close_reason(broker, c)
    pub = connected(broker, f"ce-cc-p-{cc.hex()}")
    publish_acked(pub, topic, b"sentinel", qos=1)
    expect_publish(sub, topic, b"sentinel")


def test_control_character_in_subscribe_filter_closed(broker):
    """1.5.3: a SUBSCRIBE whose filter holds U+0007 closes the connection (no SUBACK)."""
    c = connected(broker, "ce-cc-sub")
    c.send(m.subscribe(1, [(b"ce/\x07/#", 0)]))
    expect_closed_silently(c)
    assert "control character in topic filter" in close_reason(broker, c)


def test_control_character_in_unsubscribe_filter_closed(broker):
    """1.5.3: an UNSUBSCRIBE whose filter holds U+0085 (C2 85) closes the connection (no UNSUBACK)."""
    c = connected(broker, "ce-cc-unsub")
    c.send(m.unsubscribe(1, [b"ce/\xc2\x85"]))
    expect_closed_silently(c)
    assert "control character in topic filter" in close_reason(broker, c)


def test_control_character_in_client_id_closed_without_connack(broker):
    """1.5.3: a client id holding U+001B: the CONNECT is malformed, the connection closed without CONNACK."""
    c = raw(broker)
    c.send(m.connect(b"ce-\x1b"))
    expect_closed_silently(c)
    assert "control character in client identifier" in close_reason(broker, c)


def test_control_character_in_user_name_closed_without_connack(broker):
    """1.5.3: a user name holding U+0009: closed without CONNACK."""
    c = raw(broker)
    c.send(m.connect("ce-user", username=b"al\x09ice", password=b"pw"))
    expect_closed_silently(c)
    assert "control character in user name" in close_reason(broker, c)


def test_control_character_in_will_topic_closed_without_connack(broker):
    """1.5.3: a will topic holding U+007F: closed without CONNACK."""
    c = raw(broker)
    c.send(m.connect("ce-will", will_topic=b"ce/\x7f", will_payload=b"x"))
    expect_closed_silently(c)
    assert "control character in will topic" in close_reason(broker, c)


def test_v31_control_character_in_client_id_closed_without_connack(broker):
    """MQTT 3.1 the same: a client id holding U+0001 closes the connection without CONNACK."""
    c = raw(broker, version=3)
    c.send(m.connect(b"ce-31-\x01", version=3))
    expect_closed_silently(c)
    assert "control character in client identifier" in close_reason(broker, c)


def test_control_characters_in_payload_and_password_accepted(broker):
    """The rule covers names only: a password holding control characters is accepted, and a payload holding
    them is delivered unchanged."""
    sub = subscriber(broker, "ce-ccp-s", [("ce/ccp", 1)], username="u", password=b"\x01\x1f\x7f")
    pub = connected(broker, "ce-ccp-p")
    publish_acked(pub, "ce/ccp", b"\x01\x1f\x7f\xc2\x80", qos=1)
    expect_publish(sub, "ce/ccp", b"\x01\x1f\x7f\xc2\x80")


def test_allow_control_characters_accepts_them(make_broker):
    """petrel [mqtt] allow_control_characters = true: a client id, a filter and a topic name with control
    characters are accepted, and the message is routed."""
    broker = make_broker("[mqtt]\nallow_control_characters = true\n")
    sub = subscriber(broker, "ce-allow-\x01", [("ce/\x07/+", 1)])
    pub = connected(broker, "ce-allow-p")
    publish_acked(pub, "ce/\x07/\u0085", b"bell", qos=1)
    expect_publish(sub, "ce/\x07/\u0085", b"bell")


# --------------------------------------------- zero-length topic filters (4.7.3) --

def test_zero_length_filter_in_subscribe_closed(broker):
    """[MQTT-4.7.3-1] Topic filters must be at least one character long. A SUBSCRIBE holding an empty one (after
    a valid one) breaks the rules for its payload: the connection is closed, no SUBACK (not 0x80), and the
    valid filter in it is not subscribed."""
    c = connected(broker, "ce-empty-sub", clean=False)
    c.send(m.subscribe(1, [("ce/empty/ok", 1), ("", 1)]))
    expect_closed_silently(c)
    assert "zero-length topic filter" in close_reason(broker, c)
    pub = connected(broker, "ce-empty-p")
    c2 = raw(broker)
    assert c2.connect("ce-empty-sub", clean=False).fields["reason"] == 0
    assert subscribe(c2, [("ce/empty/probe", 1)]) == [1]
    publish_acked(pub, "ce/empty/ok", b"must not arrive", qos=1, packet_id=1)
    publish_acked(pub, "ce/empty/probe", b"sentinel", qos=1, packet_id=2)
    expect_publish(c2, "ce/empty/probe", b"sentinel")


def test_zero_length_filter_in_unsubscribe_closed(broker):
    """[MQTT-4.7.3-1] An UNSUBSCRIBE with an empty topic filter closes the connection (no UNSUBACK)."""
    c = connected(broker, "ce-empty-unsub")
    c.send(m.unsubscribe(1, [""]))
    expect_closed_silently(c)
    assert "zero-length topic filter" in close_reason(broker, c)
