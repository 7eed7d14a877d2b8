"""Interoperability: paho-mqtt 1.6.1 speaking MQTT 3.1.1 to petrel.

Every wait is on a paho callback (queue with a timeout) or on the broker's log; absence of a message is
checked by sending a marker afterwards that would arrive behind it.
"""
from __future__ import annotations

import queue
import time

import pytest

import mqttclients as mc

PAYLOAD = bytes(range(256)) * 4  # every byte value, including 0x00 and 0xFF


def connected(paho, broker, client_id, **kw) -> mc.Paho:
    c = paho(broker.port, client_id, **kw)
    _flags, rc, _ = c.connect()
    assert rc == 0
    return c


def test_connect_accepted_without_session(broker, paho):
    """A clean-session CONNECT is accepted with return code 0 and Session Present 0 [MQTT-3.2.2-1,
    MQTT-3.2.2-3 (return code 0)]."""
    c = paho(broker.port, "p3conn")
    flags, rc, _ = c.connect()
    assert rc == 0
    assert flags["session present"] == 0


def test_subscribe_granted_qos(broker, paho):
    """SUBACK carries one return code per filter, in order, each the granted QoS [MQTT-3.8.4-5, MQTT-3.9.3-1]."""
    c = connected(paho, broker, "p3sub")
    assert c.subscribe([("g/0", 0), ("g/1", 1), ("g/2", 2)]) == [0, 1, 2]


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_roundtrip(broker, paho, qos):
    """A message round-trips at QoS 0/1/2 with its exact binary payload, topic and QoS, RETAIN=0 and DUP=0
    [MQTT-4.3.1, MQTT-4.3.2, MQTT-4.3.3; MQTT-3.3.1-9 RETAIN=0 on an established subscription]."""
    sub = connected(paho, broker, f"p3rs{qos}")
    assert sub.subscribe("rt/x", 2) == [2]
    pub = connected(paho, broker, f"p3rp{qos}")
    pub.publish("rt/x", PAYLOAD, qos=qos)
    msg = sub.message()
    assert (msg.topic, msg.payload, msg.qos, msg.retain, msg.dup) == ("rt/x", PAYLOAD, qos, False, False)


def test_retain_flag_cleared_for_established_subscription(broker, paho):
    """A retained PUBLISH forwarded to an already established subscription has RETAIN=0 [MQTT-3.3.1-9]; a
    subscription made afterwards gets it with RETAIN=1 [MQTT-3.3.1-8]."""
    sub = connected(paho, broker, "p3rets")
    assert sub.subscribe("rf/x", 1) == [1]
    pub = connected(paho, broker, "p3retp")
    pub.publish("rf/x", b"r", qos=1, retain=True)
    msg = sub.message()
    assert (msg.payload, msg.retain) == (b"r", False)
    late = connected(paho, broker, "p3retl")
    assert late.subscribe("rf/x", 1) == [1]
    msg = late.message()
    assert (msg.payload, msg.retain) == (b"r", True)


@pytest.mark.parametrize("qos", [1, 2])
def test_persistent_session_receives_queued_messages(broker, paho, qos):
    """With Clean Session 0 the subscription and the QoS 1/2 messages published while the client was away are
    kept, and delivered after it reconnects with Session Present 1 [MQTT-3.1.2-4, MQTT-3.1.2-5, MQTT-3.2.2-2]."""
    first = paho(broker.port, f"p3ps{qos}", clean_session=False)
    assert first.connect()[1] == 0
    assert first.subscribe("ps/t", qos) == [qos]
    first.disconnect()
    broker.wait_log(f"client disconnected: id=p3ps{qos} ")
    pub = connected(paho, broker, f"p3pp{qos}")
    pub.publish("ps/t", b"queued-1", qos=qos)
    pub.publish("ps/t", b"queued-2", qos=qos)
    again = paho(broker.port, f"p3ps{qos}", clean_session=False)
    flags, rc, _ = again.connect()
    assert (rc, flags["session present"]) == (0, 1)
    got = [again.message(), again.message()]
    assert [(m.topic, m.payload, m.qos) for m in got] == [("ps/t", b"queued-1", qos), ("ps/t", b"queued-2", qos)]


def test_persistent_session_keeps_subscription(broker, paho):
    """After resuming a session the client still receives live messages without subscribing again
    [MQTT-3.1.2-4: the session state includes the subscriptions]."""
    first = paho(broker.port, "p3keep", clean_session=False)
    assert first.connect()[1] == 0
    assert first.subscribe("keep/t", 1) == [1]
    first.disconnect()
    broker.wait_log("client disconnected: id=p3keep ")
    again = paho(broker.port, "p3keep", clean_session=False)
    assert again.connect()[0]["session present"] == 1
    pub = connected(paho, broker, "p3keepp")
    pub.publish("keep/t", b"live", qos=1)
    assert again.message().payload == b"live"


def test_qos0_not_queued_for_offline_session(broker, paho):
    """petrel's default (queue_qos0_offline = false): QoS 0 messages are not stored for an offline session,
    QoS 1 ones are [MQTT-3.1.2-5: QoS 0 messages MAY be stored]."""
    first = paho(broker.port, "p3q0", clean_session=False)
    assert first.connect()[1] == 0
    assert first.subscribe("q0/t", 1) == [1]
    first.disconnect()
    broker.wait_log("client disconnected: id=p3q0 ")
    pub = connected(paho, broker, "p3q0p")
    pub.publish("q0/t", b"qos0", qos=0)
    pub.publish("q0/t", b"qos1", qos=1)
    again = paho(broker.port, "p3q0", clean_session=False)
    assert again.connect()[0]["session present"] == 1
    assert again.message().payload == b"qos1"


def test_clean_session_discards_previous_session(broker, paho):
    """Connecting with Clean Session 1 discards the stored session: Session Present 0, no queued message, no
    subscription [MQTT-3.1.2-6, MQTT-3.2.2-1]."""
    first = paho(broker.port, "p3cs", clean_session=False)
    assert first.connect()[1] == 0
    assert first.subscribe("cs/t", 1) == [1]
    first.disconnect()
    broker.wait_log("client disconnected: id=p3cs ")
    pub = connected(paho, broker, "p3csp")
    pub.publish("cs/t", b"stale", qos=1)
    again = paho(broker.port, "p3cs", clean_session=True)
    flags, rc, _ = again.connect()
    assert (rc, flags["session present"]) == (0, 0)
    assert again.subscribe("cs/marker", 1) == [1]
    pub.publish("cs/t", b"not subscribed any more", qos=1)
    pub.publish("cs/marker", b"marker", qos=1)
    msg = again.message()
    assert (msg.topic, msg.payload) == ("cs/marker", b"marker")


def test_will_published_on_abrupt_close(broker, paho):
    """When the network connection closes without DISCONNECT the Will Message is published [MQTT-3.1.2-8]
    at the will QoS, to another client."""
    watcher = connected(paho, broker, "p3watch")
    assert watcher.subscribe("will/t", 2) == [2]
    dying = paho(broker.port, "p3dying")
    dying.client.will_set("will/t", b"gone away", qos=1, retain=False)
    assert dying.connect(threaded=False)[1] == 0
    dying.abort()
    msg = watcher.message()
    assert (msg.topic, msg.payload, msg.qos, msg.retain) == ("will/t", b"gone away", 1, False)


def test_retained_will_published_on_abrupt_close(broker, paho):
    """A will with Will Retain 1 is published as a retained message [MQTT-3.1.2-17]: a later subscriber gets
    it with RETAIN=1."""
    watcher = connected(paho, broker, "p3watchr")
    assert watcher.subscribe("willr/t", 1) == [1]
    dying = paho(broker.port, "p3dyingr")
    dying.client.will_set("willr/t", b"last words", qos=1, retain=True)
    assert dying.connect(threaded=False)[1] == 0
    dying.abort()
    assert watcher.message().payload == b"last words"  # published, so stored as retained by now
    late = connected(paho, broker, "p3later")
    assert late.subscribe("willr/t", 1) == [1]
    msg = late.message()
    assert (msg.payload, msg.retain) == (b"last words", True)


def test_no_will_after_normal_disconnect(broker, paho):
    """A DISCONNECT deletes the Will Message: it is not published [MQTT-3.1.2-10, MQTT-3.14.4-3]."""
    watcher = connected(paho, broker, "p3watch2")
    assert watcher.subscribe("will/n", 1) == [1]
    polite = paho(broker.port, "p3polite")
    polite.client.will_set("will/n", b"should not appear", qos=1)
    assert polite.connect()[1] == 0
    polite.disconnect()
    broker.wait_log("client disconnected: id=p3polite ")
    watcher.publish("will/n", b"marker", qos=1)
    assert watcher.message().payload == b"marker"


def test_unsubscribe_stops_delivery(broker, paho):
    """After UNSUBACK the broker no longer sends messages for that filter; other subscriptions are unaffected
    [MQTT-3.10.4-1, MQTT-3.10.4-4 (UNSUBACK), MQTT-3.10.4-2]."""
    c = connected(paho, broker, "p3unsub")
    assert c.subscribe([("us/a", 1), ("us/b", 1)]) == [1, 1]
    c.unsubscribe("us/a")
    pub = connected(paho, broker, "p3unsubp")
    pub.publish("us/a", b"dropped", qos=1)
    pub.publish("us/b", b"kept", qos=1)
    msg = c.message()
    assert (msg.topic, msg.payload) == ("us/b", b"kept")


def test_shared_subscription_v311(broker, paho):
    """$share/group/filter also works for 3.1.1 clients (petrel's documented choice): each message goes to one
    member only, round-robin [5.0 section 4.8.2]."""
    a = connected(paho, broker, "p3sha")
    b = connected(paho, broker, "p3shb")
    for c in (a, b):
        assert c.subscribe([("$share/g/sh3/t", 1), ("sh3/end", 1)]) == [1, 1]
    pub = connected(paho, broker, "p3shp")
    sent = [f"m{i}".encode() for i in range(6)]
    for p in sent:
        pub.publish("sh3/t", p, qos=1)
    pub.publish("sh3/end", b"end", qos=1)
    got = {}
    for c in (a, b):
        got[c] = []
        while (m := c.message()).topic != "sh3/end":
            got[c].append(m.payload)
    assert sorted(got[a] + got[b]) == sorted(sent)
    assert got[a] and got[b]


def test_keepalive_pings_answered(broker, paho):
    """With keep alive 1 s paho sends PINGREQ when idle and the broker answers PINGRESP [MQTT-3.12.4-1]."""
    c = paho(broker.port, "p3ping")
    logs: "queue.Queue[str]" = queue.Queue()
    c.client.on_log = lambda _c, _u, _level, text: logs.put(text)
    assert c.connect(keepalive=1)[1] == 0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        try:
            if logs.get(timeout=0.5).startswith("Received PINGRESP"):
                break
        except queue.Empty:
            pass
    else:
        raise AssertionError("no PINGRESP")
    assert c.connected


def test_keepalive_above_maximum_refused(make_broker, paho):
    """petrel's documented choice (like Mosquitto): a 3.1.1 keep alive above [mqtt] max_keep_alive is refused
    with CONNACK return code 0x02 [MQTT-3.2.2-5: refused connection return code]."""
    broker = make_broker("[mqtt]\nmax_keep_alive = 10\n")
    c = paho(broker.port, "p3kamax")
    assert c.connect(keepalive=60)[1] == 2


def test_client_takeover(broker, paho):
    """A second connection with the same Client Identifier takes over: the first network connection is closed
    [MQTT-3.1.4-2] and the new one works."""
    first = connected(paho, broker, "p3same")
    second = connected(paho, broker, "p3same")
    first.disconnects.get(timeout=mc.TIMEOUT)
    assert second.subscribe("to/t", 1) == [1]
    second.publish("to/t", b"still here", qos=1)
    assert second.message().payload == b"still here"


def test_burst_through_small_inflight_window(make_broker, paho):
    """300 QoS 1 and QoS 2 messages to one subscriber through an outbound window of 5 (max_inflight = 5) all
    arrive exactly once, in order for each QoS [MQTT-4.6.0-6: same topic and QoS keep their order; paho only
    hands a QoS 2 message over at PUBREL, so the two QoS levels interleave differently]."""
    broker = make_broker("[mqtt]\nmax_inflight = 5\n")
    sub = connected(paho, broker, "p3burst")
    assert sub.subscribe("burst/t", 2) == [2]
    pub = connected(paho, broker, "p3burstp")
    sent = []
    for i in range(300):
        qos = 1 + i % 2
        sent.append((f"m{i}".encode(), qos))
        pub.client.publish("burst/t", sent[-1][0], qos)
    got = [(m.payload, m.qos) for m in (sub.message() for _ in sent)]
    for qos in (1, 2):
        assert [g for g in got if g[1] == qos] == [s for s in sent if s[1] == qos]


def test_offline_queue_limit_drops_new_messages(make_broker, paho):
    """petrel's documented choice: with max_queued_messages = 3 an offline session keeps the first 3 messages
    and drops newer ones; delivery resumes normally afterwards [MQTT-3.1.2-5 storage limits are allowed]."""
    broker = make_broker("[mqtt]\nmax_queued_messages = 3\n")
    first = paho(broker.port, "p3ql", clean_session=False)
    assert first.connect()[1] == 0
    assert first.subscribe("ql/t", 1) == [1]
    first.disconnect()
    broker.wait_log("client disconnected: id=p3ql ")
    pub = connected(paho, broker, "p3qlp")
    for i in range(6):
        pub.publish("ql/t", f"m{i}".encode(), qos=1)
    again = paho(broker.port, "p3ql", clean_session=False)
    assert again.connect()[0]["session present"] == 1
    assert [again.message().payload for _ in range(3)] == [b"m0", b"m1", b"m2"]
    pub.publish("ql/t", b"live", qos=1)
    assert again.message().payload == b"live"


@pytest.mark.parametrize("qos", [1, 2])
def test_unacknowledged_message_redelivered_with_dup(broker, paho, qos):
    """A QoS 1/2 PUBLISH the client never acknowledged (its connection dropped with the packet unread) is sent
    again with DUP=1 when the session resumes [MQTT-4.4.0-1, MQTT-3.3.1-1]."""
    sub = paho(broker.port, f"p3dup{qos}", clean_session=False)
    assert sub.connect(threaded=False)[1] == 0
    sub.client.subscribe("dup/t", qos)
    assert sub.pump(sub.subacks)[1] == [qos]
    pub = connected(paho, broker, f"p3dupp{qos}")
    pub.publish("dup/t", b"again", qos=qos)
    sub.wait_readable()  # the PUBLISH is in the subscriber's socket, unread and so unacknowledged
    sub.abort()
    broker.wait_log(f"client disconnected: id=p3dup{qos} ")
    again = paho(broker.port, f"p3dup{qos}", clean_session=False)
    assert again.connect()[0]["session present"] == 1
    msg = again.message()
    assert (msg.topic, msg.payload, msg.qos, bool(msg.dup)) == ("dup/t", b"again", qos, True)
