"""Sessions (MQTT 3.1.1 sections 3.1.2.4 Clean Session, 3.2.2.2 Session Present, 3.1.4 takeover,
4.4 message delivery retry)."""
import mqttraw as m

from .helpers import (connected, disconnect, drop, expect_closed_silently, expect_publish, publish_acked, raw,
                      sentinel, subscribe, subscriber)


def reconnect(broker, client_id: str, clean: bool = False, **kw) -> tuple[m.RawClient, m.Packet]:
    c = raw(broker)
    ack = c.connect(client_id, clean=clean, **kw)
    assert ack.fields["reason"] == 0, ack
    return c, ack


def test_first_persistent_connect_session_present_0(broker):
    """[MQTT-3.2.2-3] Clean session 0 without a stored session: Session Present 0."""
    _, ack = reconnect(broker, "ss-new", clean=False)
    assert ack.fields["session_present"] == 0


def test_clean_session_gives_session_present_0(broker):
    """[MQTT-3.2.2-1] Clean session 1 gets Session Present 0, even if a stored session existed."""
    c = connected(broker, "ss-clean", clean=False)
    disconnect(broker, c, "ss-clean")
    _, ack = reconnect(broker, "ss-clean", clean=True)
    assert ack.fields["session_present"] == 0


def test_persistent_reconnect_session_present_1(broker):
    """[MQTT-3.2.2-2] Clean session 0 with a stored session: Session Present 1."""
    c = connected(broker, "ss-keep", clean=False)
    disconnect(broker, c, "ss-keep")
    _, ack = reconnect(broker, "ss-keep", clean=False)
    assert ack.fields["session_present"] == 1


def test_persistent_session_keeps_subscriptions(broker):
    """[MQTT-3.1.2-4] The session of a clean-session-0 client keeps its subscriptions across connections."""
    c = subscriber(broker, "ss-subs", [("ss/keep", 1)], clean=False)
    disconnect(broker, c, "ss-subs")
    c2, _ = reconnect(broker, "ss-subs", clean=False)
    pub = connected(broker, "ss-subs-pub")
    publish_acked(pub, "ss/keep", b"still subscribed", qos=1, packet_id=5)
    expect_publish(c2, "ss/keep", b"still subscribed")


def test_clean_session_discards_previous_subscriptions(broker):
    """[MQTT-3.1.2-6] Clean session 1 discards the previous session: its subscriptions no longer deliver."""
    c = subscriber(broker, "ss-disc", [("ss/old", 1)], clean=False)
    disconnect(broker, c, "ss-disc")
    c2, _ = reconnect(broker, "ss-disc", clean=True)
    assert subscribe(c2, [("ss/marker", 1)]) == [1]
    pub = connected(broker, "ss-disc-pub")
    publish_acked(pub, "ss/old", b"must not arrive", qos=1, packet_id=1)
    sentinel(pub, c2, "ss/marker")


def test_clean_session_state_not_reused_after_disconnect(broker):
    """[MQTT-3.1.2-6] The state of a clean-session-1 connection is not reused by a later clean-session-0
    connection: Session Present 0 and no subscriptions."""
    c = subscriber(broker, "ss-tmp", [("ss/tmp", 1)], clean=True)
    disconnect(broker, c, "ss-tmp")
    c2, ack = reconnect(broker, "ss-tmp", clean=False)
    assert ack.fields["session_present"] == 0
    assert subscribe(c2, [("ss/tmp-marker", 1)]) == [1]
    pub = connected(broker, "ss-tmp-pub")
    publish_acked(pub, "ss/tmp", b"must not arrive", qos=1, packet_id=1)
    sentinel(pub, c2, "ss/tmp-marker")


def test_qos1_queued_offline_delivered_on_reconnect(broker):
    """[MQTT-3.1.2-5] QoS 1 messages published while a clean-session-0 client is offline are delivered
    when it reconnects."""
    c = subscriber(broker, "ss-q1", [("ss/q1", 1)], clean=False)
    disconnect(broker, c, "ss-q1")
    pub = connected(broker, "ss-q1-pub")
    publish_acked(pub, "ss/q1", b"while away", qos=1, packet_id=9)
    c2, ack = reconnect(broker, "ss-q1", clean=False)
    assert ack.fields["session_present"] == 1
    p = expect_publish(c2, "ss/q1", b"while away")
    assert p.fields["qos"] == 1
    assert p.fields["dup"] is False  # [MQTT-3.3.1-1]: never sent before, so not a re-delivery


def test_qos2_queued_offline_delivered_on_reconnect(broker):
    """[MQTT-3.1.2-5] QoS 2 messages published while a clean-session-0 client is offline are delivered
    (at QoS 2) when it reconnects."""
    c = subscriber(broker, "ss-q2", [("ss/q2", 2)], clean=False)
    disconnect(broker, c, "ss-q2")
    pub = connected(broker, "ss-q2-pub")
    publish_acked(pub, "ss/q2", b"exactly once", qos=2, packet_id=9)
    c2, _ = reconnect(broker, "ss-q2", clean=False)
    p = expect_publish(c2, "ss/q2", b"exactly once", ack=False)
    assert p.fields["qos"] == 2


def test_qos0_not_queued_offline(broker):
    """[MQTT-3.1.2-5] (QoS 0 MAY be stored) petrel default: QoS 0 messages are not queued for an offline
    session."""
    c = subscriber(broker, "ss-q0", [("ss/q0", 0), ("ss/q0-marker", 1)], clean=False)
    disconnect(broker, c, "ss-q0")
    pub = connected(broker, "ss-q0-pub")
    pub.send(m.publish("ss/q0", b"fire and forget", qos=0))
    c2, _ = reconnect(broker, "ss-q0", clean=False)
    sentinel(pub, c2, "ss/q0-marker")


def test_unacked_qos1_redelivered_with_dup_on_reconnect(broker):
    """[MQTT-4.4.0-1] [MQTT-3.3.1-1] An unacknowledged QoS 1 PUBLISH is re-sent on reconnect with DUP=1,
    the same packet identifier and the same payload."""
    c = subscriber(broker, "ss-re1", [("ss/re1", 1)], clean=False)
    pub = connected(broker, "ss-re1-pub")
    publish_acked(pub, "ss/re1", b"ack me", qos=1, packet_id=4)
    first = expect_publish(c, "ss/re1", b"ack me", ack=False)
    assert first.fields["dup"] is False
    drop(broker, c, "ss-re1")
    c2, ack = reconnect(broker, "ss-re1", clean=False)
    assert ack.fields["session_present"] == 1
    again = expect_publish(c2, "ss/re1", b"ack me", ack=False)
    assert again.fields["dup"] is True
    assert again.fields["qos"] == 1
    assert again.fields["packet_id"] == first.fields["packet_id"]


def test_acknowledged_qos1_not_redelivered(broker):
    """[MQTT-4.3.2-1] A QoS 1 message is unacknowledged only until its PUBACK: nothing is re-sent on reconnect."""
    c = subscriber(broker, "ss-acked", [("ss/acked", 1)], clean=False)
    pub = connected(broker, "ss-acked-pub")
    publish_acked(pub, "ss/acked", b"done", qos=1, packet_id=4)
    expect_publish(c, "ss/acked", b"done", ack=True)
    c.send(m.pingreq())  # the PUBACK is processed before the PINGREQ is answered
    c.expect(m.PINGRESP)
    disconnect(broker, c, "ss-acked")
    c2, _ = reconnect(broker, "ss-acked", clean=False)
    sentinel(pub, c2, "ss/acked", b"marker", packet_id=5)


def test_unacked_qos2_publish_redelivered_with_dup_on_reconnect(broker):
    """[MQTT-4.4.0-1] A QoS 2 PUBLISH without PUBREC is re-sent on reconnect with DUP=1 and the same id."""
    c = subscriber(broker, "ss-re2", [("ss/re2", 2)], clean=False)
    pub = connected(broker, "ss-re2-pub")
    publish_acked(pub, "ss/re2", b"twice?", qos=2, packet_id=4)
    first = expect_publish(c, "ss/re2", b"twice?", ack=False)
    drop(broker, c, "ss-re2")
    c2, _ = reconnect(broker, "ss-re2", clean=False)
    again = expect_publish(c2, "ss/re2", b"twice?", ack=False)
    assert (again.fields["dup"], again.fields["qos"]) == (True, 2)
    assert again.fields["packet_id"] == first.fields["packet_id"]


def test_pubrel_resent_on_reconnect(broker):
    """[MQTT-4.4.0-1] For a QoS 2 message whose PUBREC was received but PUBCOMP not, the PUBREL (not the
    PUBLISH) is re-sent on reconnect, with the same packet identifier."""
    c = subscriber(broker, "ss-rel", [("ss/rel", 2)], clean=False)
    pub = connected(broker, "ss-rel-pub")
    publish_acked(pub, "ss/rel", b"q2", qos=2, packet_id=4)
    p = expect_publish(c, "ss/rel", b"q2", ack=False)
    pid = p.fields["packet_id"]
    c.send(m.ack(m.PUBREC, pid))
    rel = c.expect(m.PUBREL)
    assert (rel.flags, rel.fields["packet_id"]) == (0x02, pid)
    drop(broker, c, "ss-rel")
    c2, _ = reconnect(broker, "ss-rel", clean=False)
    rel2 = c2.expect(m.PUBREL)
    assert (rel2.flags, rel2.fields["packet_id"]) == (0x02, pid)
    c2.send(m.ack(m.PUBCOMP, pid))
    sentinel(pub, c2, "ss/rel", b"marker", packet_id=5)


def test_takeover_closes_old_connection(broker):
    """[MQTT-3.1.4-2] A CONNECT with the client id of a connected client closes the existing connection."""
    old = connected(broker, "ss-take")
    new = raw(broker)
    assert new.connect("ss-take").fields["reason"] == 0
    expect_closed_silently(old)


def test_takeover_new_connection_works(broker):
    """[MQTT-3.1.4-2] After a takeover the new connection is served normally."""
    old = connected(broker, "ss-take2")
    new = raw(broker)
    assert new.connect("ss-take2").fields["reason"] == 0
    expect_closed_silently(old)
    assert subscribe(new, [("ss/take2", 1)]) == [1]
    pub = connected(broker, "ss-take2-pub")
    publish_acked(pub, "ss/take2", b"to the new one", qos=1, packet_id=2)
    expect_publish(new, "ss/take2", b"to the new one")


def test_takeover_persistent_session_present_and_subscriptions_kept(broker):
    """[MQTT-3.2.2-2] A clean-session-0 takeover of a clean-session-0 connection resumes its session:
    Session Present 1 and its subscriptions still deliver to the new connection."""
    old = subscriber(broker, "ss-take3", [("ss/take3", 1)], clean=False)
    new = raw(broker)
    ack = new.connect("ss-take3", clean=False)
    assert (ack.fields["reason"], ack.fields["session_present"]) == (0, 1)
    expect_closed_silently(old)
    pub = connected(broker, "ss-take3-pub")
    publish_acked(pub, "ss/take3", b"resumed", qos=1, packet_id=2)
    expect_publish(new, "ss/take3", b"resumed")


def test_takeover_of_clean_session_connection_does_not_reuse_its_state(broker):
    """[MQTT-3.1.2-6] The state of a clean-session-1 connection must not be reused by any later session, also
    when a clean-session-0 CONNECT takes that connection over: Session Present 0, no subscriptions."""
    old = subscriber(broker, "ss-take4", [("ss/take4", 1)], clean=True)
    new = raw(broker)
    ack = new.connect("ss-take4", clean=False)
    assert ack.fields["reason"] == 0
    expect_closed_silently(old)
    assert ack.fields["session_present"] == 0
    assert subscribe(new, [("ss/take4-marker", 1)]) == [1]
    pub = connected(broker, "ss-take4-pub")
    publish_acked(pub, "ss/take4", b"must not arrive", qos=1, packet_id=2)
    sentinel(pub, new, "ss/take4-marker")


def test_max_queued_messages_bounds_offline_queue(make_broker):
    """petrel [mqtt] max_queued_messages = 5: of 8 QoS 1 messages sent while the client is offline, exactly the
    first 5 are delivered on reconnect, in order; later ones were dropped."""
    broker = make_broker("[mqtt]\nmax_queued_messages = 5\n")
    c = subscriber(broker, "ss-bound", [("ss/bound", 1)], clean=False)
    disconnect(broker, c, "ss-bound")
    pub = connected(broker, "ss-bound-pub")
    for i in range(8):
        publish_acked(pub, "ss/bound", b"m%d" % i, qos=1, packet_id=i + 1)
    c2, _ = reconnect(broker, "ss-bound", clean=False)
    got = [expect_publish(c2, "ss/bound").fields["payload"] for _ in range(5)]
    assert got == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    sentinel(pub, c2, "ss/bound", b"after", packet_id=100)


def test_inbound_qos2_state_survives_reconnect(broker):
    """[MQTT-4.3.3-2] [MQTT-3.1.2-4] The server's inbound QoS 2 state is session state: a PUBLISH re-sent with
    DUP=1 after a reconnect (clean session 0) before PUBREL is acknowledged but not delivered again."""
    sub = subscriber(broker, "ss-in2-s", [("ss/in2", 1)])
    pub = connected(broker, "ss-in2", clean=False)
    pub.send(m.publish("ss/in2", b"once", qos=2, packet_id=31))
    assert pub.expect(m.PUBREC).fields["packet_id"] == 31
    expect_publish(sub, "ss/in2", b"once")
    drop(broker, pub, "ss-in2")
    pub2, ack = reconnect(broker, "ss-in2", clean=False)
    assert ack.fields["session_present"] == 1
    pub2.send(m.publish("ss/in2", b"once", qos=2, packet_id=31, dup=True))
    assert pub2.expect(m.PUBREC).fields["packet_id"] == 31
    pub2.send(m.ack(m.PUBREL, 31))
    assert pub2.expect(m.PUBCOMP).fields["packet_id"] == 31
    sentinel(pub2, sub, "ss/in2", b"marker", packet_id=32)


def test_takeover_redelivers_unacked_qos1_with_dup(broker):
    """[MQTT-4.4.0-1] A clean-session-0 takeover resumes the session: a QoS 1 message the old connection did
    not acknowledge is re-sent to the new one with DUP=1 and the same packet id."""
    old = subscriber(broker, "ss-take5", [("ss/take5", 1)], clean=False)
    pub = connected(broker, "ss-take5-pub")
    publish_acked(pub, "ss/take5", b"unacked", qos=1, packet_id=1)
    first = expect_publish(old, "ss/take5", b"unacked", ack=False)
    new, ack = reconnect(broker, "ss-take5", clean=False)
    assert ack.fields["session_present"] == 1
    again = expect_publish(new, "ss/take5", b"unacked", ack=False)
    assert (again.fields["dup"], again.fields["packet_id"]) == (True, first.fields["packet_id"])
    expect_closed_silently(old)


def test_qos0_queued_offline_when_configured(make_broker):
    """petrel [mqtt] queue_qos0_offline = true: QoS 0 messages are queued for an offline persistent session
    ([MQTT-3.1.2-5] allows it)."""
    broker = make_broker("[mqtt]\nqueue_qos0_offline = true\n")
    c = subscriber(broker, "ss-q0on", [("ss/q0on", 0)], clean=False)
    disconnect(broker, c, "ss-q0on")
    pub = connected(broker, "ss-q0on-pub")
    pub.send(m.publish("ss/q0on", b"kept", qos=0))
    pub.send(m.pingreq())
    pub.expect(m.PINGRESP)  # the QoS 0 PUBLISH before it has been routed
    c2, _ = reconnect(broker, "ss-q0on", clean=False)
    p = expect_publish(c2, "ss/q0on", b"kept")
    assert p.fields["qos"] == 0


def test_max_inflight_window(make_broker):
    """petrel [mqtt] max_inflight = 2: at most 2 unacknowledged QoS 1 messages are outstanding to a client;
    each PUBACK releases the next one, in order."""
    broker = make_broker("[mqtt]\nmax_inflight = 2\n")
    sub = subscriber(broker, "ss-win", [("ss/win", 1), ("ss/win0", 0)])
    pub = connected(broker, "ss-win-pub")
    for i in range(4):
        publish_acked(pub, "ss/win", b"%d" % i, qos=1, packet_id=i + 1)
    a = expect_publish(sub, "ss/win", b"0", ack=False)
    b = expect_publish(sub, "ss/win", b"1", ack=False)
    # A QoS 0 message queued behind the window does not overtake it either: nothing more may arrive now.
    pub.send(m.publish("ss/win0", b"behind", qos=0))
    pub.send(m.pingreq())
    pub.expect(m.PINGRESP)
    sub.expect_nothing(0.3)
    sub.send(m.ack(m.PUBACK, a.fields["packet_id"]))
    expect_publish(sub, "ss/win", b"2", ack=False)
    sub.send(m.ack(m.PUBACK, b.fields["packet_id"]))
    expect_publish(sub, "ss/win", b"3", ack=True)


def test_unacked_messages_redelivered_in_original_order(broker):
    """[MQTT-4.6.0-1] [MQTT-4.6.0-5] Unacknowledged PUBLISHes are re-sent in the order they were first sent,
    before messages queued while offline (which are new deliveries, DUP=0)."""
    c = subscriber(broker, "ss-order", [("ss/order", 1)], clean=False)
    pub = connected(broker, "ss-order-pub")
    for i in range(3):
        publish_acked(pub, "ss/order", b"inflight%d" % i, qos=1, packet_id=i + 1)
    first = [expect_publish(c, "ss/order", ack=False) for _ in range(3)]
    drop(broker, c, "ss-order")
    for i in range(2):
        publish_acked(pub, "ss/order", b"queued%d" % i, qos=1, packet_id=10 + i)
    c2, _ = reconnect(broker, "ss-order", clean=False)
    got = [expect_publish(c2, "ss/order") for _ in range(5)]
    assert [(p.fields["payload"], p.fields["dup"]) for p in got] == [
        (b"inflight0", True), (b"inflight1", True), (b"inflight2", True), (b"queued0", False), (b"queued1", False)]
    assert [p.fields["packet_id"] for p in got[:3]] == [p.fields["packet_id"] for p in first]
