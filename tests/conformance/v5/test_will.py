"""MQTT 5.0 section 3.1.2.5 Will Flag, 3.1.3.2 Will Properties (Will Delay Interval), 3.14.2.1 DISCONNECT 0x04."""
import time

import mqttraw as m


def _watcher(v5, broker, cid, topic="will/#"):
    w = v5.connect(broker, cid)
    v5.subscribe(w, topic, 1)
    return w


def _will_client(v5, broker, cid, topic, payload=b"gone", expiry=None, delay=None, will_properties=None, **kw):
    props = [(m.SESSION_EXPIRY_INTERVAL, expiry)] if expiry is not None else None
    wprops = list(will_properties or [])
    if delay is not None:
        wprops.append((m.WILL_DELAY_INTERVAL, delay))
    return v5.connect(broker, cid, will_topic=topic, will_payload=payload, will_qos=1, properties=props,
                      will_properties=wprops, **kw)


def test_will_published_on_abnormal_close(broker, v5):
    """[MQTT-3.1.2-8] A connection closed without DISCONNECT: the Will Message is published."""
    w = _watcher(v5, broker, "wl-w1")
    c = _will_client(v5, broker, "wl-c1", "will/c1", b"lost")
    c.close()
    got = v5.receive(w)
    assert (got.fields["topic"], got.fields["payload"]) == ("will/c1", b"lost")


def test_will_not_published_after_normal_disconnect(broker, v5):
    """[MQTT-3.1.2-10] [MQTT-3.14.4-3] DISCONNECT 0x00 deletes the Will Message: it is not published."""
    w = _watcher(v5, broker, "wl-w2")
    c = _will_client(v5, broker, "wl-c2", "will/c2")
    c.send(m.disconnect(0x00))
    assert c.expect_closed(3) == []
    p = v5.connect(broker, "wl-p2")
    v5.publish(p, "will/sentinel", b"sentinel", qos=1)
    assert v5.receive(w).fields["payload"] == b"sentinel"


def test_disconnect_with_will_message_publishes_will(broker, v5):
    """[3.14.2.1] DISCONNECT reason 0x04 (Disconnect with Will Message): the Will Message is published."""
    w = _watcher(v5, broker, "wl-w3")
    c = _will_client(v5, broker, "wl-c3", "will/c3", b"asked")
    c.send(m.disconnect(0x04))
    assert c.expect_closed(3) == []
    got = v5.receive(w)
    assert (got.fields["topic"], got.fields["payload"]) == ("will/c3", b"asked")


def test_will_published_after_protocol_error(broker, v5):
    """[MQTT-3.1.2-8] [4.13] A connection the broker closes for a protocol error publishes its Will Message."""
    w = _watcher(v5, broker, "wl-w4")
    c = _will_client(v5, broker, "wl-c4", "will/c4", b"broken")
    c.send(m.publish("bad/+", b"x", version=5))
    v5.expect_disconnect(c, 0x90)
    assert v5.receive(w).fields["payload"] == b"broken"


def test_will_delay_interval_delays_publication(broker, v5):
    """[MQTT-3.1.3-9] [3.1.3.2.2] Will Delay 2 s, Session Expiry 10 s: the will is published about 2 s after the
    abnormal close, not before 1 s."""
    w = _watcher(v5, broker, "wl-w5")
    c = _will_client(v5, broker, "wl-c5", "will/c5", b"late", expiry=10, delay=2)
    c.close()
    start = time.monotonic()
    w.expect_nothing(1.0)
    got = v5.receive(w, timeout=3.0)
    elapsed = time.monotonic() - start
    assert got.fields["payload"] == b"late"
    assert 1.5 <= elapsed <= 3.5, elapsed


def test_reconnect_before_will_delay_cancels_will(broker, v5):
    """[MQTT-3.1.3-9] A new connection to the session before the Will Delay (1 s) passes: no Will Message."""
    w = _watcher(v5, broker, "wl-w6")
    c = _will_client(v5, broker, "wl-c6", "will/c6", b"cancelled", expiry=10, delay=1)
    c.close()
    broker.wait_log("client disconnected: id=wl-c6 ")
    c2 = v5.connect(broker, "wl-c6", clean=False, properties=[(m.SESSION_EXPIRY_INTERVAL, 10)])
    assert c2.connack.fields["session_present"] == 1
    w.expect_nothing(1.5)  # past the original 1 s delay


def test_will_published_when_session_ends_before_delay(broker, v5):
    """[3.1.3.2.2] [MQTT-3.1.2-8] Session Expiry 1 s, Will Delay 30 s: the will is published when the session
    ends (about 1 s after the close), not after 30 s."""
    w = _watcher(v5, broker, "wl-w7")
    c = _will_client(v5, broker, "wl-c7", "will/c7", b"session-ended", expiry=1, delay=30)
    c.close()
    start = time.monotonic()
    w.expect_nothing(0.5)
    got = v5.receive(w, timeout=3.0)
    assert got.fields["payload"] == b"session-ended"
    assert time.monotonic() - start <= 3.0


def test_will_delay_longer_than_zero_expiry_publishes_at_close(broker, v5):
    """[3.1.3.2.2] Session Expiry 0 (session ends at close) with Will Delay 30: will published at once."""
    w = _watcher(v5, broker, "wl-w8")
    c = _will_client(v5, broker, "wl-c8", "will/c8", b"now", delay=30)
    c.close()
    assert v5.receive(w, timeout=1.5).fields["payload"] == b"now"


def test_will_properties_passed_through(broker, v5):
    """[3.1.3.2] Will Properties (Content Type, Response Topic, Correlation Data, Payload Format Indicator,
    User Properties) are sent with the Will Message; Will Delay Interval is not a PUBLISH property."""
    w = _watcher(v5, broker, "wl-w9")
    wprops = [(m.PAYLOAD_FORMAT_INDICATOR, 1), (m.CONTENT_TYPE, "text/plain"), (m.RESPONSE_TOPIC, "will/reply"),
              (m.CORRELATION_DATA, b"\x00\x01"), (m.USER_PROPERTY, ("k", "v1")), (m.USER_PROPERTY, ("k", "v2"))]
    c = _will_client(v5, broker, "wl-c9", "will/c9", b"props", will_properties=wprops)
    c.close()
    props = v5.receive(w).fields["props"]
    assert props.get(m.PAYLOAD_FORMAT_INDICATOR) == 1
    assert props.get(m.CONTENT_TYPE) == "text/plain"
    assert props.get(m.RESPONSE_TOPIC) == "will/reply"
    assert props.get(m.CORRELATION_DATA) == b"\x00\x01"
    assert props.get(m.USER_PROPERTY) == [("k", "v1"), ("k", "v2")]
    assert m.WILL_DELAY_INTERVAL not in props


def test_will_retain_stores_retained_message(broker, v5):
    """[MQTT-3.1.2-15] Will Retain 1: the Will Message is published as a retained message."""
    w = _watcher(v5, broker, "wl-w10")
    c = _will_client(v5, broker, "wl-c10", "will/c10", b"kept", will_retain=True)
    c.close()
    v5.receive(w)  # published
    late = v5.connect(broker, "wl-late")
    v5.subscribe(late, "will/c10", 1)
    got = v5.receive(late)
    assert (got.fields["payload"], got.fields["retain"]) == (b"kept", True)


def test_will_qos_honoured(broker, v5):
    """[3.1.2.6] The Will Message is published with the Will QoS (2 here, to a QoS 2 subscriber)."""
    w = v5.connect(broker, "wl-w11")
    v5.subscribe(w, "will/#", 2)
    c = v5.connect(broker, "wl-c11", will_topic="will/c11", will_payload=b"q2", will_qos=2)
    c.close()
    assert v5.receive(w).fields["qos"] == 2


def test_takeover_publishes_will_without_delay(broker, v5):
    """[MQTT-3.1.4-3] [MQTT-3.1.2-8] A client taken over by a new connection with the same ClientID: the old
    connection's Will Message (no delay) is published."""
    w = _watcher(v5, broker, "wl-w12")
    old = _will_client(v5, broker, "wl-c12", "will/c12", b"replaced")
    v5.connect(broker, "wl-c12")
    v5.expect_disconnect(old, 0x8E)
    assert v5.receive(w).fields["payload"] == b"replaced"


def test_will_message_expiry_starts_when_will_is_published(broker, v5):
    """[3.1.3.2.4] The will's Message Expiry Interval (1 s) "is sent as the Publication Expiry Interval when the
    Server publishes the Will Message": a client connected for longer than that still has its will delivered,
    with an expiry of at most 1 s. (The 1.2 s wait while connected is the point of the test: no event to await.)"""
    w = _watcher(v5, broker, "wl-w13")
    c = _will_client(v5, broker, "wl-c13", "will/c13", b"fresh", will_properties=[(m.MESSAGE_EXPIRY_INTERVAL, 1)])
    time.sleep(1.2)
    c.close()
    got = v5.receive(w, timeout=2)
    assert got.fields["payload"] == b"fresh"
    assert 0 < got.fields["props"].get(m.MESSAGE_EXPIRY_INTERVAL, 0) <= 1
