"""MQTT 5.0: which fault a broken packet is, and so which reason code it gets. After CONNECT the answer is
DISCONNECT with the reason code, then a close; in CONNECT it is CONNACK with it.

- a property not allowed in its packet, or with a value cut short, is a Malformed Packet (2.2.2.2);
- a packet type a client never sends is a Protocol Error, whatever its body (2.1.2);
- control characters in names are malformed (1.5.4);
- so are zero-length topic filters (4.7.3);
- the leniency petrel grants MQTT 3.1 clients does not extend to MQTT 5.
"""
import pytest

import mqttraw as m


def _violate(v5, broker, cid: str, data: bytes, reason: int) -> None:
    """Connects, sends `data`, expects DISCONNECT `reason` and the close, then checks the broker still serves."""
    c = v5.connect(broker, cid)
    c.send(data)
    v5.expect_disconnect(c, reason)
    v5.assert_serving(broker, cid + "-next")


# ------------------------------------------------ properties (2.2.2.2) --


def test_topic_alias_in_unsubscribe_is_malformed(broker, v5):
    """[2.2.2.2] "A Control Packet which contains an Identifier which is not valid for its packet type ... is a
    Malformed Packet": Topic Alias (PUBLISH only) in UNSUBSCRIBE gets DISCONNECT 0x81, not 0x82."""
    _violate(v5, broker, "ce-ta-unsub", m.unsubscribe(1, ["ce/a"], version=5, properties=[(m.TOPIC_ALIAS, 1)]), 0x81)


def test_payload_format_indicator_in_puback_is_malformed(broker, v5):
    """[2.2.2.2] Payload Format Indicator (PUBLISH and will only) in a PUBACK: DISCONNECT 0x81."""
    _violate(v5, broker, "ce-pfi-puback", m.ack(m.PUBACK, 1, 0x00, [(m.PAYLOAD_FORMAT_INDICATOR, 1)]), 0x81)


def test_server_keep_alive_in_subscribe_is_malformed(broker, v5):
    """[2.2.2.2] Server Keep Alive (CONNACK only) in a SUBSCRIBE: DISCONNECT 0x81."""
    data = m.subscribe(1, [("ce/a", 0)], version=5, properties=[(m.SERVER_KEEP_ALIVE, 10)])
    _violate(v5, broker, "ce-ska-sub", data, 0x81)


def test_topic_alias_in_disconnect_is_malformed(broker, v5):
    """[2.2.2.2] Topic Alias in a DISCONNECT from the client: not a normal disconnection but a Malformed Packet,
    answered with DISCONNECT 0x81."""
    _violate(v5, broker, "ce-ta-disc", m.disconnect(0x00, [(m.TOPIC_ALIAS, 1)]), 0x81)


def test_property_value_cut_short_is_malformed(broker, v5):
    """[2.2.2.2] A value not of the specified data type is malformed: a Topic Alias (Two Byte Integer) of one
    byte, at the end of the property block, gets DISCONNECT 0x81."""
    body = m.mstr("ce/short") + m.props(bytes([m.TOPIC_ALIAS, 0x01])) + b"payload"
    _violate(v5, broker, "ce-short", m.packet(m.PUBLISH, 0, body), 0x81)


def test_connect_property_value_cut_short_is_malformed(broker, v5):
    """[2.2.2.2] In CONNECT: a Session Expiry Interval (Four Byte Integer) of two bytes gets CONNACK 0x81."""
    c = v5.client(broker)
    c.send(m.connect("ce-cshort", version=5, properties=bytes([m.SESSION_EXPIRY_INTERVAL, 0x00, 0x3C])))
    v5.expect_refused(c, 0x81)


# ------------------------------------- packets a client never sends (2.1.2) --


@pytest.mark.parametrize("data", [b"\x20\x01\xff", b"\x90\x03\x00\x01\x03", b"\xb0\x02\x00\x01", b"\xd0\x01\x00"],
                         ids=["CONNACK", "SUBACK", "UNSUBACK", "PINGRESP"])
def test_server_packet_with_malformed_body_is_protocol_error(broker, v5, data):
    """[2.1.2] CONNACK, SUBACK, UNSUBACK and PINGRESP flow from server to client only. One from a client is a
    Protocol Error decided from its first byte: DISCONNECT 0x82 even when its body would not parse (a 1-byte
    CONNACK, a SUBACK with return code 3, an UNSUBACK without reason codes, a PINGRESP with a body)."""
    _violate(v5, broker, f"ce-dir-{data[0]:02x}", data, 0x82)


def test_reserved_type_0_with_malformed_body_is_protocol_error(broker, v5):
    """[2.1.2] Packet type 0 is reserved ("Forbidden"): DISCONNECT 0x82, decided before looking at its body."""
    _violate(v5, broker, "ce-t0", b"\x0f\x03\xff\xff\xff", 0x82)


def test_auth_with_malformed_body_is_protocol_error(broker, v5):
    """[4.12] [3.15] An AUTH from a client whose CONNECT had no Authentication Method is a Protocol Error
    whatever it holds: one with a property block running past its end gets DISCONNECT 0x82."""
    _violate(v5, broker, "ce-auth-body", m.packet(m.AUTH, 0, b"\x18\x05\x15"), 0x82)


def test_second_connect_with_malformed_body_is_protocol_error(broker, v5):
    """[MQTT-3.1.0-2] A second CONNECT is a Protocol Error: DISCONNECT 0x82 even if it is truncated."""
    _violate(v5, broker, "ce-conn2", m.packet(m.CONNECT, 0, m.mstr("MQTT") + b"\x05"), 0x82)


# ---------------------------------------- control characters (1.5.4) --

# Control characters (MQTT 5.0 1.5.4: U+0001..U+001F and U+007F..U+009F), as UTF-8.
CONTROLS = {"U+0001": b"\x01", "U+001F": b"\x1f", "U+007F": b"\x7f", "U+0080": b"\xc2\x80", "U+009F": b"\xc2\x9f"}


@pytest.mark.parametrize("cc", list(CONTROLS.values()), ids=list(CONTROLS))
def test_control_character_in_topic_name_is_malformed(broker, v5, cc):
    """[1.5.4] Control characters SHOULD NOT be in a UTF-8 string and a receiver MAY treat a packet with them as
    malformed; petrel does (as Mosquitto) for topic names: DISCONNECT 0x81."""
    _violate(v5, broker, f"ce-cc-{cc.hex()}", m.publish(b"ce/" + cc, b"x", qos=1, version=5), 0x81)


def test_control_character_in_subscribe_filter_is_malformed(broker, v5):
    """[1.5.4] A topic filter with U+0007 in SUBSCRIBE: DISCONNECT 0x81 (not a SUBACK with 0x8F)."""
    _violate(v5, broker, "ce-cc-sub", m.subscribe(1, [(b"ce/\x07/#", 0)], version=5), 0x81)


def test_control_character_in_unsubscribe_filter_is_malformed(broker, v5):
    """[1.5.4] A topic filter with U+0085 (C2 85) in UNSUBSCRIBE: DISCONNECT 0x81."""
    _violate(v5, broker, "ce-cc-unsub", m.unsubscribe(1, [b"ce/\xc2\x85"], version=5), 0x81)


def test_control_character_in_client_id_is_malformed(broker, v5):
    """[1.5.4] [3.1.3.1] A Client Identifier with U+001B: CONNACK 0x81, then close."""
    c = v5.client(broker)
    c.send(m.connect(b"ce-\x1b", version=5))
    v5.expect_refused(c, 0x81)


def test_control_character_in_user_name_is_malformed(broker, v5):
    """[1.5.4] [3.1.3.5] A User Name with U+0009 (TAB): CONNACK 0x81, then close."""
    c = v5.client(broker)
    c.send(m.connect("ce-user", version=5, username=b"al\x09ice"))
    v5.expect_refused(c, 0x81)


def test_control_character_in_will_topic_is_malformed(broker, v5):
    """[1.5.4] [3.1.3.3] A Will Topic with U+007F: CONNACK 0x81, then close."""
    c = v5.client(broker)
    c.send(m.connect("ce-will", version=5, will_topic=b"ce/\x7f", will_payload=b"x"))
    v5.expect_refused(c, 0x81)


def test_non_control_latin1_character_in_topic_accepted(broker, v5):
    """[1.5.4] U+00A0 (C2 A0) is just past the C1 controls: a topic with it is accepted and routed."""
    s = v5.connect(broker, "ce-nbsp-s")
    v5.subscribe(s, "ce/\u00a0", 1)
    p = v5.connect(broker, "ce-nbsp-p")
    assert v5.publish(p, "ce/\u00a0", b"ok", qos=1) == 0
    assert v5.receive(s).fields["topic"] == "ce/\u00a0"


def test_control_characters_in_payload_and_properties_delivered(broker, v5):
    """[1.5.4] The rule covers names only: a payload, a User Property and a Content Type holding control
    characters are delivered unchanged, and a password holding them is accepted."""
    s = v5.connect(broker, "ce-ccp-s", username="u", password=b"\x01\x1f\x7f")
    v5.subscribe(s, "ce/ccp", 1)
    p = v5.connect(broker, "ce-ccp-p")
    props = [(m.USER_PROPERTY, ("k\x01", "v\x1f")), (m.CONTENT_TYPE, "text/\x7f")]
    v5.publish(p, "ce/ccp", b"\x00\x01\x1f\x7f\xc2\x80", qos=1, properties=props)
    got = v5.receive(s)
    assert got.fields["payload"] == b"\x00\x01\x1f\x7f\xc2\x80"
    assert got.fields["props"][m.USER_PROPERTY] == [("k\x01", "v\x1f")]
    assert got.fields["props"][m.CONTENT_TYPE] == "text/\x7f"


def test_allow_control_characters_accepts_them(make_broker, v5):
    """petrel [mqtt] allow_control_characters = true: a client id, a filter and a topic name with control
    characters are accepted, and the message is routed."""
    broker = make_broker("[mqtt]\nallow_control_characters = true\n")
    s = v5.connect(broker, "ce-allow-\x01")
    assert v5.subscribe(s, "ce/\x07/+", 1) == [1]
    p = v5.connect(broker, "ce-allow-p")
    assert v5.publish(p, "ce/\x07/\u0085", b"bell", qos=1) == 0
    got = v5.receive(s)
    assert (got.fields["topic"], got.fields["payload"]) == ("ce/\x07/\u0085", b"bell")


# ------------------------------------------ zero-length topic filters (4.7.3) --


def test_zero_length_filter_in_subscribe_is_malformed(broker, v5):
    """[MQTT-4.7.3-1] Topic Filters must be at least one character long: a SUBSCRIBE holding an empty one (after
    a valid one) is refused as a whole with DISCONNECT 0x81, not answered with SUBACK 0x8F."""
    _violate(v5, broker, "ce-empty-sub", m.subscribe(1, [("ce/ok", 0), ("", 0)], version=5), 0x81)


def test_zero_length_filter_in_unsubscribe_is_malformed(broker, v5):
    """[MQTT-4.7.3-1] An UNSUBSCRIBE with an empty topic filter: DISCONNECT 0x81."""
    _violate(v5, broker, "ce-empty-unsub", m.unsubscribe(1, [""], version=5), 0x81)


# ------------------------------------------------ MQTT 3.1 leniency stays there --


def test_pubrel_with_dup_is_malformed(broker, v5):
    """[MQTT-3.6.1-1] PUBREL flags must be 0010; DUP (1010), which MQTT 3.1 clients set on a resent PUBREL, is
    not accepted from a v5 client: DISCONNECT 0x81."""
    c = v5.connect(broker, "ce-reldup")
    c.send(m.publish("ce/reldup", b"x", qos=2, packet_id=9, version=5))
    assert c.expect(m.PUBREC).fields["packet_id"] == 9
    c.send(bytes([0x6A, 0x02, 0x00, 0x09]))
    v5.expect_disconnect(c, 0x81)
