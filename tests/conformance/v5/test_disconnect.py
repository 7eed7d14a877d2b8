"""MQTT 5.0 section 3.14 DISCONNECT (both directions) and 3.1.2.10 Keep Alive."""
import time

import mqttraw as m


def _expiry(seconds):
    return [(m.SESSION_EXPIRY_INTERVAL, seconds)]


def test_client_disconnect_closes_connection_without_answer(broker, v5):
    """[3.14.4] After a client's DISCONNECT the broker closes the connection; it sends
    nothing back."""
    c = v5.connect(broker, "dc-plain")
    c.send(m.disconnect())
    assert c.expect_closed(3) == []


def test_client_disconnect_with_properties_accepted(broker, v5):
    """[3.14.2.2] DISCONNECT may carry a Reason String and User Properties: a normal close, no error."""
    c = v5.connect(broker, "dc-props")
    c.send(m.disconnect(0x00, [(m.REASON_STRING, "bye"), (m.USER_PROPERTY, ("a", "b"))]))
    assert c.expect_closed(3) == []


def test_disconnect_raising_session_expiry_from_zero_is_protocol_error(broker, v5):
    """[3.14.2.2.2] Session Expiry 0 at CONNECT, nonzero in DISCONNECT: Protocol Error, the broker sends
    DISCONNECT 0x82."""
    c = v5.connect(broker, "dc-raise")
    c.send(m.disconnect(0x00, _expiry(30)))
    v5.expect_disconnect(c, 0x82)
    v5.assert_serving(broker)


def test_disconnect_raising_session_expiry_from_zero_keeps_no_session(broker, v5):
    """[3.14.2.2.2] The refused raise is not applied: the session still ends with the connection."""
    c = v5.connect(broker, "dc-raise2", clean=False)
    v5.subscribe(c, "dc/raise2", 1)
    c.send(m.disconnect(0x00, _expiry(30)))
    v5.expect_disconnect(c, 0x82)
    c2 = v5.connect(broker, "dc-raise2", clean=False)
    assert c2.connack.fields["session_present"] == 0


def test_disconnect_can_lower_session_expiry_to_zero(broker, v5):
    """[3.14.2.2.2] Session Expiry 60 at CONNECT, 0 in DISCONNECT: the session ends at the close."""
    c = v5.connect(broker, "dc-lower", properties=_expiry(60))
    v5.subscribe(c, "dc/lower", 1)
    c.send(m.disconnect(0x00, _expiry(0)))
    assert c.expect_closed(3) == []
    p = v5.connect(broker, "dc-plower")
    assert v5.publish(p, "dc/lower", b"x", qos=1) == 0x10
    c2 = v5.connect(broker, "dc-lower", clean=False, properties=_expiry(60))
    assert c2.connack.fields["session_present"] == 0


def test_disconnect_can_change_nonzero_session_expiry(broker, v5):
    """[3.14.2.2.2] Session Expiry 10 at CONNECT, 60 in DISCONNECT: allowed (no error), the session is kept."""
    c = v5.connect(broker, "dc-change", properties=_expiry(10))
    c.send(m.disconnect(0x00, _expiry(60)))
    assert c.expect_closed(3) == []
    c2 = v5.connect(broker, "dc-change", clean=False, properties=_expiry(60))
    assert c2.connack.fields["session_present"] == 1


def test_keep_alive_timeout_disconnect_0x8d(broker, v5):
    """[MQTT-3.1.2-22] No packet for 1.5 x Keep Alive (1 s): DISCONNECT 0x8D (Keep Alive timeout), then close."""
    c = v5.connect(broker, "dc-ka", keepalive=1)
    start = time.monotonic()
    v5.expect_disconnect(c, 0x8D, timeout=4)
    assert 1.2 <= time.monotonic() - start <= 3.0


def test_pingreq_keeps_connection_alive(broker, v5):
    """[MQTT-3.1.2-22] [3.12] PINGREQs within the Keep Alive keep the connection open past 1.5 x Keep Alive."""
    c = v5.connect(broker, "dc-ping", keepalive=1)
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        c.send(m.pingreq())
        assert c.expect(m.PINGRESP, timeout=1).type == m.PINGRESP
        time.sleep(0.4)
    c.send(m.pingreq())
    c.expect(m.PINGRESP)


def test_keep_alive_zero_never_times_out(broker, v5):
    """[3.1.2.10] Keep Alive 0 (and no broker maximum): the connection is not closed for silence."""
    c = v5.connect(broker, "dc-ka0", keepalive=0)
    assert m.SERVER_KEEP_ALIVE not in c.connack.fields["props"]
    c.expect_nothing(1.6)
    c.send(m.pingreq())
    c.expect(m.PINGRESP)


def test_server_shutdown_sends_disconnect_0x8b(broker, v5):
    """[3.14.2.1] When the broker shuts down (SIGTERM) connected v5 clients get DISCONNECT 0x8B
    (Server shutting down) before the close."""
    c = v5.connect(broker, "dc-shut")
    broker.proc.send_signal(15)
    v5.expect_disconnect(c, 0x8B, timeout=5)


def test_disconnect_expiry_allowed_when_connect_expiry_was_capped(make_broker, v5):
    """[3.14.2.2.2] The Protocol Error is for a CONNECT whose Session Expiry Interval *was* zero. A client that
    sent 60 (capped to 0 by max_session_expiry = 0) may send a nonzero value in DISCONNECT: a normal close."""
    b = make_broker("[mqtt]\nmax_session_expiry = 0\n")
    c = v5.connect(b, "dc-capped", properties=_expiry(60))
    assert c.connack.fields["props"].get(m.SESSION_EXPIRY_INTERVAL) == 0
    c.send(m.disconnect(0x00, _expiry(60)))
    assert c.expect_closed(3) == []


def test_server_disconnect_respects_client_maximum_packet_size(broker, v5):
    """[MQTT-3.14.2-3] [MQTT-3.1.2-24] A DISCONNECT the broker sends must not exceed the client's Maximum Packet
    Size (16 bytes): a Reason String is left out if it would not fit. Triggered by a QoS 3 PUBLISH (0x81)."""
    c = v5.connect(broker, "dc-small", properties=[(m.MAXIMUM_PACKET_SIZE, 16)])
    good = m.publish("a/b", b"x", qos=2, packet_id=1, version=5)
    c.send(bytes([good[0] | 0x06]) + good[1:])
    d = v5.expect_disconnect(c, 0x81)
    size = 1 + len(m.varint(len(d.body))) + len(d.body)
    assert size <= 16, f"{size}-byte DISCONNECT sent to a client with Maximum Packet Size 16: {d!r}"
