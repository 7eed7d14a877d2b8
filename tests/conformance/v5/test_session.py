"""MQTT 5.0 section 4.1 Session State, 3.1.2.4 Clean Start, 3.1.2.11.2 Session Expiry Interval, 3.1.4 takeover."""
import time

import mqttraw as m


def _expiry(seconds):
    return [(m.SESSION_EXPIRY_INTERVAL, seconds)]


def _leave(c):
    """Normal DISCONNECT; returns when the broker has closed the connection (the session is detached by then)."""
    c.send(m.disconnect())
    assert c.expect_closed(3) == []


def test_first_connect_with_clean_start_0_has_no_session(broker, v5):
    """[MQTT-3.2.2-3] Clean Start 0 with no stored session: Session Present 0."""
    c = v5.connect(broker, "ss-new", clean=False, properties=_expiry(60))
    assert c.connack.fields["session_present"] == 0


def test_session_kept_after_disconnect_when_expiry_positive(broker, v5):
    """[MQTT-3.1.2-23] [MQTT-3.2.2-3] Session Expiry 60: after a disconnect the session (with its subscription)
    is resumed by Clean Start 0, Session Present 1."""
    c = v5.connect(broker, "ss-keep", properties=_expiry(60))
    v5.subscribe(c, "ss/keep", 1)
    _leave(c)
    c2 = v5.connect(broker, "ss-keep", clean=False, properties=_expiry(60))
    assert c2.connack.fields["session_present"] == 1
    p = v5.connect(broker, "ss-pkeep")
    v5.publish(p, "ss/keep", b"still-subscribed", qos=1)
    assert v5.receive(c2).fields["payload"] == b"still-subscribed"


def test_messages_queued_while_offline_delivered(broker, v5):
    """[MQTT-3.1.2-23] [4.1] QoS 1 messages published while the session is offline are delivered on resume."""
    c = v5.connect(broker, "ss-queue", properties=_expiry(60))
    v5.subscribe(c, "ss/queue", 1)
    _leave(c)
    p = v5.connect(broker, "ss-pqueue")
    assert v5.publish(p, "ss/queue", b"m1", qos=1, packet_id=1) == 0x00
    assert v5.publish(p, "ss/queue", b"m2", qos=1, packet_id=2) == 0x00
    c2 = v5.connect(broker, "ss-queue", clean=False, properties=_expiry(60))
    assert [v5.receive(c2).fields["payload"] for _ in range(2)] == [b"m1", b"m2"]


def test_qos0_not_queued_for_offline_session(broker, v5):
    """[3.1.2.4] (petrel default queue_qos0_offline = false) QoS 0 messages are not kept for an offline session."""
    c = v5.connect(broker, "ss-q0", properties=_expiry(60))
    v5.subscribe(c, "ss/q0", 1)
    _leave(c)
    p = v5.connect(broker, "ss-pq0")
    v5.publish(p, "ss/q0", b"dropped", qos=0)
    v5.publish(p, "ss/q0", b"kept", qos=1)
    c2 = v5.connect(broker, "ss-q0", clean=False, properties=_expiry(60))
    assert v5.receive(c2).fields["payload"] == b"kept"


def test_session_discarded_when_expiry_zero(broker, v5):
    """[3.1.2.11.2] Session Expiry absent (0): the session ends with the connection; Session Present 0 afterwards,
    and its subscription is gone (PUBACK 0x10)."""
    c = v5.connect(broker, "ss-zero", clean=False)
    v5.subscribe(c, "ss/zero", 1)
    _leave(c)
    p = v5.connect(broker, "ss-pzero")
    assert v5.publish(p, "ss/zero", b"x", qos=1) == 0x10
    c2 = v5.connect(broker, "ss-zero", clean=False)
    assert c2.connack.fields["session_present"] == 0


def test_session_expires_after_interval(broker, v5):
    """[MQTT-3.1.2-23] [4.1] Session Expiry 1 s: the session ends 1 s after the disconnect. Observed without
    touching the session: a prober publishes QoS 1 to its subscription until the PUBACK says 0x10 (No matching
    subscribers), within a bounded deadline; then a reconnect gets Session Present 0."""
    c = v5.connect(broker, "ss-exp", properties=_expiry(1))
    v5.subscribe(c, "ss/exp", 1)
    disconnected = time.monotonic()
    _leave(c)
    p = v5.connect(broker, "ss-pexp")
    deadline = disconnected + 4.0
    pid = 0
    while True:
        pid += 1
        reason = v5.publish(p, "ss/exp", b"probe", qos=1, packet_id=pid)
        if reason == 0x10:
            break
        assert reason == 0x00
        assert time.monotonic() < deadline, "session did not expire within 4 s"
        time.sleep(0.05)
    assert time.monotonic() - disconnected >= 0.95, "session ended before its 1 s expiry"
    c2 = v5.connect(broker, "ss-exp", clean=False, properties=_expiry(1))
    assert c2.connack.fields["session_present"] == 0


def test_clean_start_discards_existing_session(broker, v5):
    """[MQTT-3.1.2-4] [MQTT-3.2.2-2] Clean Start 1 discards the stored session: Session Present 0, the old
    subscription and queued messages are gone."""
    c = v5.connect(broker, "ss-clean", properties=_expiry(60))
    v5.subscribe(c, "ss/clean", 1)
    _leave(c)
    p = v5.connect(broker, "ss-pclean")
    v5.publish(p, "ss/clean", b"old", qos=1, packet_id=1)
    c2 = v5.connect(broker, "ss-clean", clean=True, properties=_expiry(60))
    assert c2.connack.fields["session_present"] == 0
    assert v5.publish(p, "ss/clean", b"x", qos=1, packet_id=2) == 0x10
    v5.subscribe(c2, "ss/other", 1)
    v5.publish(p, "ss/other", b"sentinel", qos=1, packet_id=3)
    assert v5.receive(c2).fields["payload"] == b"sentinel"


def test_takeover_old_connection_gets_disconnect_0x8e(broker, v5):
    """[MQTT-3.1.4-3] A second connection with the same ClientID: the old one receives DISCONNECT 0x8E
    (Session taken over) and is closed."""
    old = v5.connect(broker, "ss-take")
    new = v5.connect(broker, "ss-take")
    v5.expect_disconnect(old, 0x8E)
    new.send(m.pingreq())
    new.expect(m.PINGRESP)


def test_takeover_resumes_session(broker, v5):
    """[MQTT-3.1.4-3] [MQTT-3.2.2-3] Takeover with Clean Start 0 keeps the session: Session Present 1 and the
    subscription made on the old connection delivers to the new one."""
    old = v5.connect(broker, "ss-take2", properties=_expiry(60))
    v5.subscribe(old, "ss/take2", 1)
    new = v5.connect(broker, "ss-take2", clean=False, properties=_expiry(60))
    assert new.connack.fields["session_present"] == 1
    v5.expect_disconnect(old, 0x8E)
    p = v5.connect(broker, "ss-ptake2")
    v5.publish(p, "ss/take2", b"to-new", qos=1)
    assert v5.receive(new).fields["payload"] == b"to-new"


def test_queue_limit_drops_new_messages(make_broker, v5):
    """[4.1] (petrel max_queued_messages) With a queue of 2, a third message for an offline session is dropped;
    the first two are delivered."""
    b = make_broker("[mqtt]\nmax_queued_messages = 2\n")
    c = v5.connect(b, "ss-full", properties=_expiry(60))
    v5.subscribe(c, "ss/full", 1)
    _leave(c)
    p = v5.connect(b, "ss-pfull")
    for i in range(3):
        v5.publish(p, "ss/full", b"m%d" % i, qos=1, packet_id=i + 1)
    c2 = v5.connect(b, "ss-full", clean=False, properties=_expiry(60))
    assert [v5.receive(c2).fields["payload"] for _ in range(2)] == [b"m0", b"m1"]
    v5.publish(p, "ss/full", b"sentinel", qos=1, packet_id=9)
    assert v5.receive(c2).fields["payload"] == b"sentinel"
