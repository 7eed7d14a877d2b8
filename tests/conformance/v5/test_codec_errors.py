"""MQTT 5.0: which fault a broken packet is, and so which reason code it gets. After CONNECT the answer is
DISCONNECT with the reason code, then a close; in CONNECT it is CONNACK with it.

- a property not allowed in its packet, or with a value cut short, is a Malformed Packet (2.2.2.2);
- a packet type a client never sends is a Protocol Error, whatever its body (2.1.2).
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
