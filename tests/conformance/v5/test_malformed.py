"""MQTT 5.0 section 4.13 Handling errors: malformed packets (0x81) and protocol errors (0x82 and friends) after
CONNECT get DISCONNECT with the reason code and a close; the broker goes on serving other clients."""
import time

import mqttraw as m


def _violate(v5, broker, cid, data: bytes, reason: int):
    """Connects, sends `data`, expects DISCONNECT `reason` + close, then checks the broker still serves."""
    c = v5.connect(broker, cid)
    c.send(data)
    d = v5.expect_disconnect(c, reason)
    v5.assert_serving(broker, cid + "-next")
    return d


# --------------------------------------------------------------- PUBLISH --


def test_wildcard_plus_in_publish_topic(broker, v5):
    """[MQTT-3.3.2-2] A Topic Name with '+' is invalid: DISCONNECT 0x90 (Topic Name invalid)."""
    _violate(v5, broker, "ml-plus", m.publish("a/+/b", b"x", version=5), 0x90)


def test_wildcard_hash_in_publish_topic(broker, v5):
    """[MQTT-3.3.2-2] A Topic Name with '#' is invalid: DISCONNECT 0x90 (Topic Name invalid)."""
    _violate(v5, broker, "ml-hash", m.publish("a/#", b"x", qos=1, version=5), 0x90)


def test_publish_packet_id_zero(broker, v5):
    """[MQTT-2.2.1-3] A QoS 1 PUBLISH with packet identifier 0: DISCONNECT 0x82 (Protocol Error)."""
    _violate(v5, broker, "ml-pid0", m.publish("a/b", b"x", qos=1, packet_id=0, version=5), 0x82)


def test_subscribe_packet_id_zero(broker, v5):
    """[MQTT-2.2.1-3] A SUBSCRIBE with packet identifier 0: DISCONNECT 0x82."""
    _violate(v5, broker, "ml-spid0", m.subscribe(0, [("a/b", 0)], version=5), 0x82)


def test_publish_qos_3(broker, v5):
    """[MQTT-3.3.1-4] A PUBLISH with both QoS bits set is a Malformed Packet: DISCONNECT 0x81."""
    good = m.publish("a/b", b"x", qos=2, packet_id=1, version=5)
    _violate(v5, broker, "ml-q3", bytes([good[0] | 0x06]) + good[1:], 0x81)


def test_publish_qos0_with_dup(broker, v5):
    """[MQTT-3.3.1-2] DUP must be 0 for QoS 0: DISCONNECT 0x81."""
    _violate(v5, broker, "ml-dup0", m.publish("a/b", b"x", qos=0, dup=True, version=5), 0x81)


def test_session_expiry_property_in_publish(broker, v5):
    """[2.2.2.2] Session Expiry Interval is not a PUBLISH property, and "a Control Packet which contains an
    Identifier which is not valid for its packet type ... is a Malformed Packet": DISCONNECT 0x81."""
    data = m.publish("a/b", b"x", version=5, properties=[(m.SESSION_EXPIRY_INTERVAL, 10)])
    _violate(v5, broker, "ml-sei", data, 0x81)


def test_subscription_identifier_in_client_publish(broker, v5):
    """[MQTT-3.3.4-6] A PUBLISH from a Client MUST NOT contain a Subscription Identifier: DISCONNECT 0x82."""
    data = m.publish("a/b", b"x", qos=1, version=5, properties=[(m.SUBSCRIPTION_IDENTIFIER, 5)])
    _violate(v5, broker, "ml-sid", data, 0x82)


def test_duplicate_content_type(broker, v5):
    """[3.3.2.3.9] Content Type more than once is a Protocol Error: DISCONNECT 0x82."""
    data = m.publish("a/b", b"x", version=5, properties=[(m.CONTENT_TYPE, "a"), (m.CONTENT_TYPE, "b")])
    _violate(v5, broker, "ml-ct2", data, 0x82)


def test_invalid_utf8_in_user_property(broker, v5):
    """[MQTT-1.5.4-1] A User Property string that is not valid UTF-8 is a Malformed Packet: DISCONNECT 0x81."""
    data = m.publish("a/b", b"x", version=5, properties=[(m.USER_PROPERTY, (b"k\xc3\x28", "v"))])
    _violate(v5, broker, "ml-up", data, 0x81)


def test_invalid_utf8_in_topic(broker, v5):
    """[MQTT-1.5.4-1] A Topic Name that is not valid UTF-8 is a Malformed Packet: DISCONNECT 0x81."""
    _violate(v5, broker, "ml-utf", m.publish(b"a/\xff", b"x", version=5), 0x81)


def test_null_character_in_topic(broker, v5):
    """[MQTT-1.5.4-2] U+0000 in a UTF-8 string is a Malformed Packet: DISCONNECT 0x81."""
    _violate(v5, broker, "ml-nul", m.publish(b"a/\x00b", b"x", version=5), 0x81)


def test_property_length_beyond_packet(broker, v5):
    """[2.2.2.1] A Property Length longer than the rest of the packet is a Malformed Packet: DISCONNECT 0x81."""
    body = m.mstr("a/b") + m.varint(50) + b"\x01\x00"
    _violate(v5, broker, "ml-plen", m.packet(m.PUBLISH, 0, body), 0x81)


def test_topic_length_beyond_packet(broker, v5):
    """[1.5.4] A string length longer than the packet is a Malformed Packet: DISCONNECT 0x81."""
    body = m.u16(40) + b"a/b" + b"\x00"
    _violate(v5, broker, "ml-slen", m.packet(m.PUBLISH, 0, body), 0x81)


# --------------------------------------------------------- other packets --


def test_second_connect(broker, v5):
    """[MQTT-3.1.0-2] A second CONNECT on a connection is a Protocol Error: DISCONNECT 0x82."""
    _violate(v5, broker, "ml-conn2", m.connect("ml-conn2", version=5), 0x82)


def test_remaining_length_of_five_bytes(broker, v5):
    """[1.5.5] [2.1.4] A Remaining Length encoded in more than 4 bytes is a Malformed Packet: DISCONNECT 0x81."""
    _violate(v5, broker, "ml-rl5", bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]) + b"\x00" * 8, 0x81)


def test_pubrel_with_wrong_flags(broker, v5):
    """[MQTT-3.6.1-1] PUBREL fixed header flags must be 0010: otherwise DISCONNECT 0x81."""
    _violate(v5, broker, "ml-rel", bytes([0x60, 0x02, 0x00, 0x01]), 0x81)


def test_pingreq_with_body(broker, v5):
    """[3.12.1] PINGREQ has no variable header or payload: a non-zero Remaining Length is malformed (0x81)."""
    _violate(v5, broker, "ml-ping", bytes([0xC0, 0x01, 0x00]), 0x81)


def test_reserved_packet_type_0(broker, v5):
    """[2.1.2] Packet type 0 is reserved ("Forbidden"), which is known from the first byte: a Protocol Error,
    DISCONNECT 0x82."""
    _violate(v5, broker, "ml-t0", bytes([0x00, 0x00]), 0x82)


def test_server_only_packet_from_client(broker, v5):
    """[4.13] A CONNACK sent by a client (a packet only servers send) is a Protocol Error: DISCONNECT 0x82."""
    _violate(v5, broker, "ml-cack", bytes([0x20, 0x03, 0x00, 0x00, 0x00]), 0x82)


def test_declared_size_above_maximum_rejected_early(broker, v5):
    """[3.2.2.3.6] A packet whose Remaining Length declares more than max_packet_size (default 1 MiB) gets
    DISCONNECT 0x95 (Packet too large) without the broker waiting for the bytes."""
    _violate(v5, broker, "ml-huge", bytes([0x30]) + m.varint(2_000_000) + b"\x00\x03a/b", 0x95)


def test_packet_split_across_writes_is_reassembled(broker, v5):
    """[4.2] A packet may arrive in pieces: the broker waits for the declared Remaining Length and processes it."""
    c = v5.connect(broker, "ml-split")
    data = m.publish("a/split", b"payload", qos=1, packet_id=3, version=5)
    for i in range(len(data)):
        c.send(data[i:i + 1])
        if i in (1, 5):
            time.sleep(0.05)  # make the pieces arrive in separate reads
    assert c.expect(m.PUBACK).fields["packet_id"] == 3


def test_two_packets_in_one_write(broker, v5):
    """[4.2] Several packets in one TCP segment are each processed, in order."""
    c = v5.connect(broker, "ml-batch")
    c.send(m.publish("a/x", b"1", qos=1, packet_id=1, version=5) + m.publish("a/x", b"2", qos=1, packet_id=2,
                                                                              version=5) + m.pingreq())
    assert [c.recv().type for _ in range(3)] == [m.PUBACK, m.PUBACK, m.PINGRESP]


def test_wildcard_in_response_topic(broker, v5):
    """[MQTT-3.3.2-14] "The Response Topic MUST NOT contain wildcard characters": the PUBLISH parses but holds
    data the protocol does not allow, a Protocol Error ([1.2]): DISCONNECT 0x82."""
    data = m.publish("a/b", b"x", qos=1, version=5, properties=[(m.RESPONSE_TOPIC, "reply/#")])
    _violate(v5, broker, "ml-rtwc", data, 0x82)
