"""MQTT 5.0 section 4.12 Enhanced Authentication and 3.15 AUTH, for a broker that supports no auth method."""
import mqttraw as m


def test_authentication_method_refused(broker, v5):
    """[MQTT-4.12.0-1] An Authentication Method the broker does not support: CONNACK 0x8C, then close."""
    c = v5.client(broker)
    c.send(m.connect("au-m", version=5, properties=[(m.AUTHENTICATION_METHOD, "SCRAM-SHA-256")]))
    v5.expect_refused(c, 0x8C)


def test_authentication_method_with_data_refused(broker, v5):
    """[MQTT-4.12.0-1] Authentication Method plus Authentication Data: still CONNACK 0x8C, no AUTH challenge."""
    c = v5.client(broker)
    c.send(m.connect("au-md", version=5, properties=[(m.AUTHENTICATION_METHOD, "PLAIN"),
                                                      (m.AUTHENTICATION_DATA, b"\x00user\x00pass")]))
    v5.expect_refused(c, 0x8C)


def test_authentication_data_without_method_is_protocol_error(broker, v5):
    """[3.1.2.11.10] "It is a Protocol Error to include Authentication Data if there is no Authentication
    Method": CONNACK 0x82, then close."""
    c = v5.client(broker)
    c.send(m.connect("au-d", version=5, properties=[(m.AUTHENTICATION_DATA, b"secret")]))
    v5.expect_refused(c, 0x82)


def test_duplicate_authentication_method_is_protocol_error(broker, v5):
    """[3.1.2.11.9] Authentication Method twice is a Protocol Error: CONNACK 0x82 (not 0x8C)."""
    c = v5.client(broker)
    c.send(m.connect("au-dup", version=5, properties=[(m.AUTHENTICATION_METHOD, "A"),
                                                       (m.AUTHENTICATION_METHOD, "B")]))
    v5.expect_refused(c, 0x82)


def test_auth_packet_after_connect_is_protocol_error(broker, v5):
    """[3.15] [4.12] AUTH from a client that did not use an Authentication Method in CONNECT is a
    Protocol Error: DISCONNECT 0x82, then close."""
    c = v5.connect(broker, "au-after")
    c.send(m.auth(0x18))  # Continue authentication
    v5.expect_disconnect(c, 0x82)
    v5.assert_serving(broker)


def test_reauthenticate_without_method_is_protocol_error(broker, v5):
    """[MQTT-4.12.1-1] Re-authentication (AUTH 0x19) is only allowed with the CONNECT's Authentication Method;
    without one it is a Protocol Error: DISCONNECT 0x82."""
    c = v5.connect(broker, "au-re")
    c.send(m.auth(0x19, [(m.AUTHENTICATION_METHOD, "X")]))
    v5.expect_disconnect(c, 0x82)
    v5.assert_serving(broker)


def test_auth_as_first_packet_closes_without_answer(broker, v5):
    """[MQTT-3.1.0-1] AUTH before CONNECT: the connection is closed and nothing is sent."""
    c = v5.client(broker)
    c.send(m.auth(0x18, [(m.AUTHENTICATION_METHOD, "X")]))
    assert c.expect_closed(3) == []


def test_auth_with_reserved_flags_is_protocol_error(broker, v5):
    """[4.12] [3.15] AUTH from a client that used no Authentication Method is a Protocol Error whatever it holds:
    one with reserved flags set (which [MQTT-3.15.1-1] would make malformed during enhanced authentication)
    gets DISCONNECT 0x82, decided from its first byte."""
    c = v5.connect(broker, "au-flags")
    good = m.auth(0x18)
    c.send(bytes([good[0] | 0x01]) + good[1:])
    v5.expect_disconnect(c, 0x82)
    v5.assert_serving(broker)
