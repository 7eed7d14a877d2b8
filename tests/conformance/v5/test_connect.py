"""MQTT 5.0 section 3.1 CONNECT / 3.2 CONNACK: accepting, refusing and malformed CONNECT packets."""
import time

import mqttraw as m

# ------------------------------------------------------------ accepting --


def test_connect_accepted_with_success(broker, v5):
    """[MQTT-3.2.2-2] A v5 CONNECT with Clean Start 1 is accepted: CONNACK reason 0x00, Session Present 0."""
    c = v5.connect(broker, "cn-ok")
    assert c.connack.fields["reason"] == 0x00
    assert c.connack.fields["session_present"] == 0


def test_empty_client_id_gets_assigned_client_identifier(broker, v5):
    """[MQTT-3.1.3-6] [MQTT-3.1.3-7] A zero-length ClientID is accepted and the CONNACK carries the
    Assigned Client Identifier the broker chose."""
    c = v5.connect(broker, "")
    assigned = c.connack.fields["props"].get(m.ASSIGNED_CLIENT_IDENTIFIER)
    assert assigned, c.connack


def test_assigned_client_identifiers_are_unique(broker, v5):
    """[MQTT-3.1.3-6] The ClientIDs assigned to two clients that sent empty ids differ."""
    a = v5.connect(broker, "")
    b = v5.connect(broker, "")
    ida = a.connack.fields["props"][m.ASSIGNED_CLIENT_IDENTIFIER]
    idb = b.connack.fields["props"][m.ASSIGNED_CLIENT_IDENTIFIER]
    assert ida != idb
    # Both connections are alive: the second did not take the first over.
    a.send(m.pingreq())
    a.expect(m.PINGRESP)


def test_no_assigned_client_identifier_when_client_sent_one(broker, v5):
    """[3.2.2.3.7] Assigned Client Identifier is only sent for a zero-length ClientID."""
    c = v5.connect(broker, "cn-named")
    assert m.ASSIGNED_CLIENT_IDENTIFIER not in c.connack.fields["props"]


def test_password_without_user_name_is_accepted(broker, v5):
    """[3.1.2.9] MQTT 5.0 allows a Password without a User Name (3.1.1 did not)."""
    c = v5.client(broker)
    c.send(m.connect("cn-pw", version=5, password=b"secret"))
    assert c.expect(m.CONNACK).fields["reason"] == 0x00


# ------------------------------------------------------------ keep alive --


def test_server_keep_alive_when_keep_alive_exceeds_maximum(make_broker, v5):
    """[MQTT-3.2.2-21] A Keep Alive above the broker's maximum is answered with Server Keep Alive = max."""
    b = make_broker("[mqtt]\nmax_keep_alive = 10\n")
    c = v5.connect(b, "cn-ka60", keepalive=60)
    assert c.connack.fields["props"].get(m.SERVER_KEEP_ALIVE) == 10


def test_server_keep_alive_when_keep_alive_is_zero_and_maximum_set(make_broker, v5):
    """[MQTT-3.2.2-21] Keep Alive 0 (no timeout) with a broker maximum set: Server Keep Alive = max."""
    b = make_broker("[mqtt]\nmax_keep_alive = 10\n")
    c = v5.connect(b, "cn-ka0", keepalive=0)
    assert c.connack.fields["props"].get(m.SERVER_KEEP_ALIVE) == 10


def test_keep_alive_within_maximum_is_kept(make_broker, v5):
    """[MQTT-3.2.2-22] A Keep Alive within the maximum is used as sent: no Server Keep Alive, or the same value."""
    b = make_broker("[mqtt]\nmax_keep_alive = 10\n")
    c = v5.connect(b, "cn-ka5", keepalive=5)
    assert c.connack.fields["props"].get(m.SERVER_KEEP_ALIVE, 5) == 5


def test_server_keep_alive_is_enforced(make_broker, v5):
    """[MQTT-3.1.2-22] [MQTT-3.2.2-21] The broker applies the Server Keep Alive it sent (1 s), not the client's
    60 s: after 1.5 s of silence it sends DISCONNECT 0x8D (Keep Alive timeout) and closes."""
    b = make_broker("[mqtt]\nmax_keep_alive = 1\n")
    start = time.monotonic()
    c = v5.connect(b, "cn-ka-enf", keepalive=60)
    assert c.connack.fields["props"].get(m.SERVER_KEEP_ALIVE) == 1
    v5.expect_disconnect(c, 0x8D, timeout=4)
    assert time.monotonic() - start >= 1.0


# -------------------------------------------------------------- refusing --


def test_authentication_method_refused_with_0x8c(broker, v5):
    """[MQTT-4.12.0-1] An unsupported Authentication Method: CONNACK 0x8C (Bad authentication method), close."""
    c = v5.client(broker)
    c.send(m.connect("cn-auth", version=5, properties=[(m.AUTHENTICATION_METHOD, "SCRAM-SHA-1")]))
    v5.expect_refused(c, 0x8C)


def test_unsupported_protocol_level_6(broker, v5):
    """[MQTT-3.1.2-2] Protocol level 6: CONNACK return code 0x01 in 3.1.1 format (petrel's choice), then close."""
    c = v5.client(broker)
    raw = bytearray(m.connect("cn-lvl6", version=5))
    assert raw[2:8] == b"\x00\x04MQTT" and raw[8] == 5
    raw[8] = 6
    c.send(bytes(raw))
    ack = c.expect(m.CONNACK)
    assert ack.body == b"\x00\x01", ack
    assert c.expect_closed(3) == []


def test_will_topic_with_wildcard_refused_with_0x90(broker, v5):
    """[MQTT-3.1.3-11] [MQTT-4.7.0-1] A Will Topic with a wildcard is not a valid Topic Name: CONNACK 0x90."""
    c = v5.client(broker)
    c.send(m.connect("cn-willwc", version=5, will_topic="will/+", will_payload=b"x"))
    v5.expect_refused(c, 0x90)


def test_first_packet_not_connect_closes_without_answer(broker, v5):
    """[MQTT-3.1.0-1] The first packet must be CONNECT; otherwise the connection is closed, nothing is sent."""
    c = v5.client(broker)
    c.send(m.publish("a/b", b"x", version=5))
    assert c.expect_closed(3) == []


def test_no_connect_within_connect_timeout_closes(make_broker, v5):
    """[3.1.4] A connection that sends no CONNECT is closed after the configured connect_timeout (1 s)."""
    b = make_broker("[mqtt]\nconnect_timeout = 1\n")
    c = v5.client(b)
    start = time.monotonic()
    assert c.expect_closed(4) == []
    assert time.monotonic() - start >= 0.8


# ------------------------------------------------------- malformed CONNECT --


def test_duplicate_session_expiry_is_protocol_error(broker, v5):
    """[2.2.2.2] [3.1.2.11.2] Session Expiry Interval twice in CONNECT is a Protocol Error: CONNACK 0x82."""
    c = v5.client(broker)
    c.send(m.connect("cn-dup", version=5,
                     properties=[(m.SESSION_EXPIRY_INTERVAL, 10), (m.SESSION_EXPIRY_INTERVAL, 20)]))
    v5.expect_refused(c, 0x82)


def test_receive_maximum_zero_is_protocol_error(broker, v5):
    """[3.1.2.11.3] Receive Maximum 0 is a Protocol Error: CONNACK 0x82."""
    c = v5.client(broker)
    c.send(m.connect("cn-rm0", version=5, properties=[(m.RECEIVE_MAXIMUM, 0)]))
    v5.expect_refused(c, 0x82)


def test_maximum_packet_size_zero_is_protocol_error(broker, v5):
    """[3.1.2.11.4] Maximum Packet Size 0 is a Protocol Error: CONNACK 0x82."""
    c = v5.client(broker)
    c.send(m.connect("cn-mps0", version=5, properties=[(m.MAXIMUM_PACKET_SIZE, 0)]))
    v5.expect_refused(c, 0x82)


def test_unknown_property_identifier_is_malformed(broker, v5):
    """[2.2.2.2] [1.2 "Malformed Packet"] Property identifier 0x7F is not defined, so the rest of the packet cannot
    be parsed (the value's length is unknown): CONNACK 0x81 (Malformed Packet)."""
    c = v5.client(broker)
    c.send(m.connect("cn-prop7f", version=5, properties=b"\x7f\x00\x01"))
    v5.expect_refused(c, 0x81)


def test_property_not_allowed_in_connect_is_malformed(broker, v5):
    """[2.2.2.2] A Topic Alias property is not allowed in CONNECT, and an Identifier not valid for its packet
    type makes a Malformed Packet: CONNACK 0x81."""
    c = v5.client(broker)
    c.send(m.connect("cn-ta", version=5, properties=[(m.TOPIC_ALIAS, 1)]))
    v5.expect_refused(c, 0x81)


def test_request_problem_information_2_is_protocol_error(broker, v5):
    """[3.1.2.11.7] Request Problem Information other than 0 or 1 is a Protocol Error: CONNACK 0x82."""
    c = v5.client(broker)
    c.send(m.connect("cn-rpi", version=5, properties=[(m.REQUEST_PROBLEM_INFORMATION, 2)]))
    v5.expect_refused(c, 0x82)


def test_reserved_connect_flag_is_malformed(broker, v5):
    """[MQTT-3.1.2-3] The reserved CONNECT flag bit 0 must be 0, otherwise Malformed Packet: CONNACK 0x81."""
    c = v5.client(broker)
    c.send(m.connect("cn-rsv", version=5, flags_override=0x03))
    v5.expect_refused(c, 0x81)


def test_will_qos_3_is_malformed(broker, v5):
    """[MQTT-3.1.2-12] Will QoS 3 is a Malformed Packet: CONNACK 0x81."""
    c = v5.client(broker)
    c.send(m.connect("cn-wq3", version=5, will_topic="w", will_payload=b"x", will_qos=3))
    v5.expect_refused(c, 0x81)


def test_will_qos_without_will_flag_is_malformed(broker, v5):
    """[MQTT-3.1.2-11] Will QoS must be 0 when the Will Flag is 0: CONNACK 0x81."""
    c = v5.client(broker)
    c.send(m.connect("cn-wqnf", version=5, flags_override=0x02 | (1 << 3)))
    v5.expect_refused(c, 0x81)


def test_invalid_utf8_client_id_is_malformed(broker, v5):
    """[MQTT-1.5.4-1] [MQTT-3.1.3-4] A ClientID that is not valid UTF-8 is a Malformed Packet: CONNACK 0x81."""
    c = v5.client(broker)
    c.send(m.connect(b"cn-\xff\xfe", version=5))
    v5.expect_refused(c, 0x81)


def test_will_property_not_allowed_is_malformed(broker, v5):
    """[3.1.3.2] [2.2.2.2] Session Expiry Interval is not a Will Property; an Identifier not valid where it
    stands makes a Malformed Packet: CONNACK 0x81."""
    c = v5.client(broker)
    c.send(m.connect("cn-wprop", version=5, will_topic="w", will_payload=b"x",
                     will_properties=[(m.SESSION_EXPIRY_INTERVAL, 5)]))
    v5.expect_refused(c, 0x81)


def test_refused_connect_leaves_broker_serving(broker, v5):
    """[4.13] A refused CONNECT affects only that connection: a new client is served afterwards."""
    c = v5.client(broker)
    c.send(m.connect("cn-bad", version=5, properties=[(m.RECEIVE_MAXIMUM, 0)]))
    v5.expect_refused(c, 0x82)
    v5.assert_serving(broker, "cn-after")


def test_will_payload_not_utf8_with_format_indicator(broker, v5):
    """[3.1.3.2.3] Will Payload Format Indicator 1 with a Will Payload that is not UTF-8: CONNACK 0x99."""
    c = v5.client(broker)
    c.send(m.connect("cn-wpfi", version=5, will_topic="w", will_payload=b"\xff\xfe",
                     will_properties=[(m.PAYLOAD_FORMAT_INDICATOR, 1)]))
    v5.expect_refused(c, 0x99)
