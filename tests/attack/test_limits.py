"""petrel's configurable resource limits ([mqtt] and [[listener]] keys), one test per limit.

Each test configures a small limit so it runs fast, checks the answer at the limit (MQTT 5 reason codes, and
the MQTT 3.1.1 behaviour where it differs), and checks that the broker keeps serving other clients. Reason
codes: MQTT 5.0 section 2.4 (0x85 Client Identifier not valid, 0x8D Keep Alive timeout, 0x8F Topic Filter
invalid, 0x90 Topic Name invalid, 0x93 Receive Maximum exceeded, 0x95 Packet too large, 0x97 Quota exceeded);
MQTT 3.1.1: CONNACK 0x02 Identifier rejected, SUBACK 0x80 Failure, otherwise the connection is closed
[MQTT-4.8.0-1].
"""
from __future__ import annotations

import select
import socket
import threading
import time

import pytest

import mqttraw as m

from .tools import (MIB, RSS_FACTOR, abort, assert_serving, connected, free_port, round_trip, rss_bytes,
                    sys_config, wait_closed)

pytestmark = pytest.mark.timeout(30)
T = 3.0  # bound for any single expected event


def second_listener(port: int, max_connections: int = 0) -> str:
    return (f'[[listener]]\nname = "second"\nbind = "127.0.0.1"\nport = {port}\n'
            f"max_connections = {max_connections}\n")


def expect_refused_silently(port: int) -> None:
    """A TCP connection that the broker closes at once: a CONNECT sent on it gets no byte back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=T)
    try:
        try:
            s.sendall(m.connect("refused-probe"))
        except OSError:
            pass  # already reset
        got = wait_closed(s, T)
        assert got == b"", f"a connection over the limit got bytes back: {got[:40]!r}"
    finally:
        s.close()


def connect_when_admitted(port: int, client_id: str, timeout: float = T) -> m.RawClient:
    """Connects, retrying while the broker still refuses (a slot just freed is released asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connected(port, client_id)
        except (m.Closed, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def v5_disconnect_reason(c: m.RawClient) -> int:
    """The broker sends DISCONNECT and closes: returns its reason code."""
    got = c.expect_closed(T)
    assert got and got[-1].type == m.DISCONNECT, f"expected a DISCONNECT then a close, got {got!r}"
    return got[-1].fields["reason"]


def refused_connack(port: int, version: int, data: bytes) -> int:
    """Sends a CONNECT; the broker must answer CONNACK (refusal) and close: returns the reason/return code."""
    with m.RawClient(port, version=version, timeout=T) as c:
        c.send(data)
        ack = c.expect(m.CONNACK)
        assert ack.fields["session_present"] == 0
        assert c.expect_closed(T) == [], "packets after a refusing CONNACK"
        return ack.fields["reason"]


def offline_session(broker, cid: str, filter_: str, version: int = 5) -> None:
    """A session that stays after its connection: subscribed to `filter_` at QoS 1, then disconnected
    normally; returns when the broker has processed the DISCONNECT."""
    props = [(m.SESSION_EXPIRY_INTERVAL, 300)] if version == 5 else None
    with connected(broker.port, cid, version=version, clean=False, properties=props) as c:
        c.send(m.subscribe(1, [(filter_, 1)], version=version))
        assert c.expect(m.SUBACK).fields["reasons"] == [1]
        c.send(m.disconnect())
        assert c.expect_closed(T) == []
    broker.wait_log(f"client disconnected: id={cid} ")


def publish_acked(c: m.RawClient, topic: str, payload: bytes, qos: int, packet_id: int = 1,
                  retain: bool = False) -> int | None:
    """PUBLISH and complete the publisher's side; returns the PUBACK/PUBREC reason (None for QoS 0)."""
    c.send(m.publish(topic, payload, qos=qos, packet_id=packet_id, retain=retain, version=c.version))
    if qos == 0:
        return None
    if qos == 1:
        ack = c.expect(m.PUBACK)
        assert ack.fields["packet_id"] == packet_id
        return ack.fields["reason"]
    rec = c.expect(m.PUBREC)
    assert rec.fields["packet_id"] == packet_id
    if rec.fields["reason"] < 0x80:
        c.send(m.ack(m.PUBREL, packet_id))
        assert c.expect(m.PUBCOMP).fields["packet_id"] == packet_id
    return rec.fields["reason"]


def next_publish(c: m.RawClient) -> m.Packet:
    p = c.expect(m.PUBLISH)
    if p.fields["qos"] == 1:
        c.send(m.ack(m.PUBACK, p.fields["packet_id"]))
    return p


def assert_only_sentinel(pub: m.RawClient, sub: m.RawClient, topic: str) -> None:
    """Nothing else is pending for `sub`: a QoS 1 marker published now on `topic` (which `sub` matches) is
    the very next packet `sub` receives."""
    publish_acked(pub, topic, b"sentinel", qos=1, packet_id=999)
    p = next_publish(sub)
    assert (p.fields["topic"], p.fields["payload"]) == (topic, b"sentinel"), f"expected only the sentinel, got {p!r}"


# ------------------------------------------------------------ connections --

def test_max_connections_counts_all_listeners(make_broker, sys_watch):
    """[mqtt] max_connections = 3 counts open connections over all listeners: with one on each listener plus
    the $SYS watcher, a new TCP connection on either listener is closed at once (no CONNACK, nothing read),
    logged ("connection limit reached") and counted in $SYS/broker/listeners/<name>/failures/max_connections;
    the admitted clients keep working, and a freed slot admits a new client."""
    p2 = free_port()
    broker = make_broker(config=sys_config("max_connections = 3", listener=second_listener(p2)))
    watch = sys_watch(broker, ["listeners/test/failures/max_connections",
                               "listeners/second/failures/max_connections"])
    a = connected(broker.port, "mc-a")
    b = connected(p2, "mc-b")
    try:
        expect_refused_silently(broker.port)
        expect_refused_silently(p2)
        broker.wait_log("connection limit reached")
        watch.wait("listeners/test/failures/max_connections", lambda v: v >= 1, ">= 1")
        watch.wait("listeners/second/failures/max_connections", lambda v: v >= 1, ">= 1")
        a.send(m.subscribe(1, [("mc/a", 1)], version=5))
        a.expect(m.SUBACK)
        round_trip(a, "mc/a", b"admitted", packet_id=2)
        b.send(m.pingreq())
        b.expect(m.PINGRESP)
        b.send(m.disconnect())
        assert b.expect_closed(T) == []
        with connect_when_admitted(p2, "mc-c") as c:
            c.send(m.pingreq())
            c.expect(m.PINGRESP)
    finally:
        a.close()
        b.close()


def test_listener_max_connections(make_broker):
    """[[listener]] max_connections = 2 limits that listener only: a third connection to it is closed at once
    and counted in $SYS .../listeners/test/failures/max_connections, while another listener still admits
    clients."""
    p2 = free_port()
    broker = make_broker(config=sys_config(listener="max_connections = 2\n" + second_listener(p2)))
    a = connected(broker.port, "lmc-a")
    b = connected(broker.port, "lmc-b")
    try:
        expect_refused_silently(broker.port)
        broker.wait_log("connection limit reached")
        with connected(p2, "lmc-other") as other:
            other.send(m.subscribe(1, [("$SYS/broker/listeners/test/failures/max_connections", 0)], version=5))
            assert other.expect(m.SUBACK).fields["reasons"] == [0]
            deadline = time.monotonic() + T
            while True:  # the retained value, then one every second
                remaining = deadline - time.monotonic()
                assert remaining > 0, "$SYS .../listeners/test/failures/max_connections never reached 1"
                p = other.expect(m.PUBLISH, timeout=remaining)
                if int(p.fields["payload"]) >= 1:
                    break
        a.send(m.pingreq())
        a.expect(m.PINGRESP)
        a.close()
        with connect_when_admitted(broker.port, "lmc-c") as c:
            c.send(m.pingreq())
            c.expect(m.PINGRESP)
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------- client id --

def test_client_id_above_max_length_v5(make_broker):
    """[MQTT-3.1.3-8] petrel [mqtt] max_client_id_length = 23: a v5 client id of 24 bytes gets CONNACK 0x85
    (Client Identifier not valid) and the connection is closed; 23 bytes are accepted."""
    broker = make_broker(config="[mqtt]\nmax_client_id_length = 23\n")
    assert refused_connack(broker.port, 5, m.connect("c" * 24, version=5)) == 0x85
    connected(broker.port, "c" * 23).close()
    assert_serving(broker)


def test_client_id_above_max_length_v311(make_broker):
    """[MQTT-3.1.3-9] (3.1.1) a rejected client id gets CONNACK return code 0x02 (Identifier rejected) and the
    connection is closed: max_client_id_length = 23, a 24-byte client id."""
    broker = make_broker(config="[mqtt]\nmax_client_id_length = 23\n")
    assert refused_connack(broker.port, 4, m.connect("d" * 24, version=4)) == 0x02
    connected(broker.port, "d" * 23, version=4).close()
    assert_serving(broker, version=4)


def test_client_id_default_max_length_is_256(broker):
    """petrel default max_client_id_length = 256: 256 bytes accepted, 257 refused with CONNACK 0x85."""
    connected(broker.port, "e" * 256).close()
    assert refused_connack(broker.port, 5, m.connect("e" * 257, version=5)) == 0x85
    assert_serving(broker)


def test_client_id_limit_below_23_rejected_by_config(make_broker):
    """[MQTT-3.1.3-5] a server must accept client ids of 1 to 23 bytes, so max_client_id_length below 23 is a
    configuration error: petrel refuses to start."""
    with pytest.raises(RuntimeError, match="max_client_id_length"):
        make_broker(config="[mqtt]\nmax_client_id_length = 22\n")


# ----------------------------------------------------------------- topics --

TOPIC_LIMITS = "[mqtt]\nmax_topic_length = 16\nmax_topic_levels = 3\n"


def test_publish_topic_above_max_length_v5(make_broker):
    """petrel max_topic_length = 16: a v5 PUBLISH whose topic has 17 bytes gets DISCONNECT 0x90 (Topic Name
    invalid); 16 bytes are accepted."""
    broker = make_broker(config=TOPIC_LIMITS)
    with connected(broker.port, "tl-pub") as c:
        assert publish_acked(c, "tl/" + "x" * 13, b"ok", qos=1) == 0x10  # 16 bytes: no subscribers
        c.send(m.publish("tl/" + "x" * 14, b"too long", qos=1, version=5))
        assert v5_disconnect_reason(c) == 0x90
    assert_serving(broker)


def test_publish_topic_above_max_levels_v5(make_broker):
    """petrel max_topic_levels = 3: a v5 PUBLISH to "a/b/c/d" (4 levels) gets DISCONNECT 0x90; "a/b/c" is
    accepted."""
    broker = make_broker(config=TOPIC_LIMITS)
    with connected(broker.port, "tlv-pub") as c:
        assert publish_acked(c, "a/b/c", b"ok", qos=1) == 0x10
        c.send(m.publish("a/b/c/d", b"too deep", qos=1, version=5))
        assert v5_disconnect_reason(c) == 0x90
    assert_serving(broker)


def test_default_max_topic_levels_is_128(broker):
    """petrel default max_topic_levels = 128: a PUBLISH to a topic of 128 levels is accepted, 129 levels get
    DISCONNECT 0x90."""
    with connected(broker.port, "tl-default") as c:
        assert publish_acked(c, "/".join(["l"] * 128), b"ok", qos=1) == 0x10
        c.send(m.publish("/".join(["l"] * 129), b"too deep", qos=1, packet_id=2, version=5))
        assert v5_disconnect_reason(c) == 0x90
    assert_serving(broker)


@pytest.mark.parametrize("topic", ["tl/" + "x" * 14, "a/b/c/d"], ids=["length", "levels"])
def test_publish_topic_above_limits_v311_closed(make_broker, topic):
    """[MQTT-4.8.0-1] 3.1.1 has no DISCONNECT from the server: a PUBLISH topic above max_topic_length (16) or
    max_topic_levels (3) closes the connection without any packet."""
    broker = make_broker(config=TOPIC_LIMITS)
    with connected(broker.port, "tl3-pub", version=4) as c:
        c.send(m.publish(topic, b"x", qos=1))
        assert c.expect_closed(T) == []
    assert_serving(broker, version=4)


@pytest.mark.parametrize("version,refused", [(5, 0x8F), (4, 0x80)], ids=["v5", "v311"])
def test_subscribe_filter_above_limits(make_broker, version, refused):
    """[MQTT-3.9.3-1] one SUBACK code per filter: a filter above max_topic_length (16) or max_topic_levels (3)
    gets 0x8F Topic Filter invalid (v5) / 0x80 Failure (3.1.1) while the others of the same SUBSCRIBE are
    granted, and the connection stays usable."""
    broker = make_broker(config=TOPIC_LIMITS)
    with connected(broker.port, f"tf-{version}", version=version) as c:
        filters = [("tf/ok", 1), ("tf/" + "y" * 14, 1), ("a/b/c/d", 1), ("a/b/#", 1), ("+/+/+/+", 1)]
        c.send(m.subscribe(7, filters, version=version))
        ack = c.expect(m.SUBACK)
        assert ack.fields["packet_id"] == 7
        assert ack.fields["reasons"] == [1, refused, refused, 1, refused]
        round_trip(c, "tf/ok", b"still subscribed", packet_id=8)
    assert_serving(broker)


@pytest.mark.parametrize("will_topic", ["wl/" + "z" * 14, "a/b/c/d"], ids=["length", "levels"])
def test_will_topic_above_limits_v5(make_broker, will_topic):
    """[3.1.2.9] petrel: a will topic above max_topic_length (16) or max_topic_levels (3) gets CONNACK 0x90
    (Topic Name invalid) and the connection is closed."""
    broker = make_broker(config=TOPIC_LIMITS)
    assert refused_connack(broker.port, 5, m.connect("wl-5", version=5, will_topic=will_topic,
                                                     will_payload=b"w")) == 0x90
    assert_serving(broker)


def test_will_topic_above_limits_v311_refused(make_broker):
    """3.1.1: a will topic above max_topic_levels (3) is refused (a CONNACK with a non-zero return code, or a
    close without CONNACK) and the connection is closed."""
    broker = make_broker(config=TOPIC_LIMITS)
    with m.RawClient(broker.port, version=4, timeout=T) as c:
        c.send(m.connect("wl-3", version=4, will_topic="a/b/c/d", will_payload=b"w"))
        got = c.expect_closed(T)
        assert all(p.type == m.CONNACK for p in got) and len(got) <= 1, got
        assert not got or got[0].fields["reason"] != 0, f"accepted: {got!r}"
    assert_serving(broker, version=4)


# ---------------------------------------------------------- subscriptions --

@pytest.mark.parametrize("version,refused", [(5, 0x97), (4, 0x80)], ids=["v5", "v311"])
def test_max_subscriptions(make_broker, version, refused):
    """petrel max_subscriptions = 3 per session: the filter that would be the 4th gets 0x97 Quota exceeded
    (v5) / 0x80 Failure (3.1.1) and receives nothing; resubscribing an existing filter is still granted; after
    an UNSUBSCRIBE a new filter fits again."""
    broker = make_broker(config="[mqtt]\nmax_subscriptions = 3\n")
    with connected(broker.port, f"ms-{version}", version=version) as c, \
            connected(broker.port, f"ms-pub-{version}", version=version) as pub:
        c.send(m.subscribe(1, [("ms/1", 1), ("ms/2", 1), ("ms/3", 1), ("ms/4", 1)], version=version))
        assert c.expect(m.SUBACK).fields["reasons"] == [1, 1, 1, refused]
        c.send(m.subscribe(2, [("ms/1", 0)], version=version))  # resubscribe: replaces, always allowed
        assert c.expect(m.SUBACK).fields["reasons"] == [0]
        c.send(m.subscribe(3, [("ms/5", 1)], version=version))
        assert c.expect(m.SUBACK).fields["reasons"] == [refused]
        publish_acked(pub, "ms/4", b"not subscribed", qos=1)
        publish_acked(pub, "ms/5", b"not subscribed", qos=1, packet_id=2)
        assert_only_sentinel(pub, c, "ms/2")
        c.send(m.unsubscribe(4, ["ms/3"], version=version))
        c.expect(m.UNSUBACK)
        c.send(m.subscribe(5, [("ms/5", 1)], version=version))
        assert c.expect(m.SUBACK).fields["reasons"] == [1]
        publish_acked(pub, "ms/5", b"now subscribed", qos=1, packet_id=3)
        assert next_publish(c).fields["payload"] == b"now subscribed"
    assert_serving(broker)


# ----------------------------------------------------------------- queues --

def test_max_queued_messages_qos0_goes_first(make_broker, sys_watch):
    """petrel max_queued_messages = 4 (queue_qos0_offline = true): with a full queue a new QoS 0 message is
    dropped, a new QoS 1 message evicts the oldest queued QoS 0 one, and with no QoS 0 left a new QoS 1
    message is dropped. The session receives exactly what was kept, in order, and
    $SYS/broker/publish/messages/dropped counts each of the 4 dropped messages."""
    broker = make_broker(config=sys_config("max_queued_messages = 4\nqueue_qos0_offline = true"))
    watch = sys_watch(broker, ["publish/messages/dropped"])
    before = watch.wait("publish/messages/dropped", lambda v: True, "published")[0]
    offline_session(broker, "qm-sub", "qm/#")
    with connected(broker.port, "qm-pub") as pub:
        for i, (name, qos) in enumerate([("q0-a", 0), ("q0-b", 0), ("q1-a", 1), ("q1-b", 1),  # full
                                         ("q0-c", 0),                 # dropped
                                         ("q1-c", 1), ("q1-d", 1),    # evict q0-a, q0-b
                                         ("q1-e", 1)], start=1):      # dropped: no QoS 0 left
            publish_acked(pub, "qm/t", name.encode(), qos=qos, packet_id=i)
        with connected(broker.port, "qm-sub", clean=False, properties=[(m.SESSION_EXPIRY_INTERVAL, 300)]) as sub:
            got = [next_publish(sub).fields["payload"] for _ in range(4)]
            assert got == [b"q1-a", b"q1-b", b"q1-c", b"q1-d"], got
            assert_only_sentinel(pub, sub, "qm/end")
    # q0-c, q0-a, q0-b (evicted), q1-e.
    value = watch.settled("publish/messages/dropped")
    assert value == before + 4, f"dropped counter {value}, expected {before + 4}"
    assert_serving(broker)


BYTES_PLAN = [("q0-a", 0, 300), ("q0-b", 0, 300), ("q1-a", 1, 300),  # 900 bytes queued
              ("q1-big", 1, 600),  # needs both QoS 0 out: 300 + 600 = 900
              ("q1-c", 1, 300),    # 1200 > 1000 and no QoS 0 left: dropped
              ("q0-c", 0, 100),    # exactly 1000: kept
              ("q0-d", 0, 5)]      # 1005: dropped


def run_bytes_plan(broker, prefix: str) -> None:
    """max_queued_bytes = 1000: fills the offline session <prefix>-sub with BYTES_PLAN (topic + payload bytes
    as given), then reconnects it and checks that exactly q1-a, q1-big, q0-c arrive, in order."""
    offline_session(broker, f"{prefix}-sub", f"{prefix}/#")
    topic = f"{prefix}/t"
    with connected(broker.port, f"{prefix}-pub") as pub:
        for i, (name, qos, cost) in enumerate(BYTES_PLAN, start=1):
            payload = name.encode().ljust(cost - len(topic), b".")
            publish_acked(pub, topic, payload, qos=qos, packet_id=i)
        # The plan ends with QoS 0, which nothing acknowledges: a QoS 1 PUBLISH after it on the same
        # connection (to a topic the session does not match) is acknowledged only once the plan is routed,
        # so the session reconnects to the queue the plan left, not to one still filling.
        assert publish_acked(pub, f"{prefix}-barrier", b"", qos=1, packet_id=100) == 0x10
        with connected(broker.port, f"{prefix}-sub", clean=False,
                       properties=[(m.SESSION_EXPIRY_INTERVAL, 300)]) as sub:
            got = [next_publish(sub).fields["payload"].rstrip(b".") for _ in range(3)]
            assert got == [b"q1-a", b"q1-big", b"q0-c"], got
            assert_only_sentinel(pub, sub, f"{prefix}/end")


def test_max_queued_bytes_counts_topic_and_payload(make_broker):
    """petrel max_queued_bytes = 1000 (topic + payload bytes per session, queue_qos0_offline = true): a QoS 1
    message needing room evicts as many of the oldest QoS 0 messages as it takes; a message that does not fit
    otherwise is dropped; the queue may be filled to exactly the limit. The session then receives exactly
    the messages kept, in order."""
    broker = make_broker(config="[mqtt]\nmax_queued_bytes = 1000\nqueue_qos0_offline = true\n")
    run_bytes_plan(broker, "qb")
    assert_serving(broker)


def test_dropped_counter_counts_every_evicted_message(make_broker, sys_watch):
    """petrel: $SYS/broker/publish/messages/dropped counts every dropped message, including each QoS 0
    message evicted to make room: the max_queued_bytes plan above drops 4 messages (q0-a and q0-b evicted by
    the one publish of q1-big, q1-c and q0-d refused)."""
    broker = make_broker(config=sys_config("max_queued_bytes = 1000\nqueue_qos0_offline = true"))
    watch = sys_watch(broker, ["publish/messages/dropped"])
    before = watch.wait("publish/messages/dropped", lambda v: True, "published")[0]
    run_bytes_plan(broker, "qd")
    value = watch.settled("publish/messages/dropped")
    assert value == before + 4, f"dropped counter {value}, expected {before + 4}"


# --------------------------------------------------------------- retained --

# These run with $SYS off, so that the store holds only the test's own retained topics.
NO_SYS_RETAINED_2 = "[mqtt]\nmax_retained_messages = 2\n[sys]\ninterval = 0\n"


def test_max_retained_messages_refuses_new_topic_v5(make_broker):
    """petrel max_retained_messages = 2: with 2 retained topics stored, a retained PUBLISH on a new topic gets
    PUBACK / PUBREC 0x97 (Quota exceeded), is not routed to the subscribers and not stored (QoS 0: silently
    refused); a non-retained PUBLISH on that topic is routed as usual."""
    broker = make_broker(config=NO_SYS_RETAINED_2)
    with connected(broker.port, "rm-sub") as sub, connected(broker.port, "rm-pub") as pub:
        sub.send(m.subscribe(1, [("rm/#", 1)], version=5))
        sub.expect(m.SUBACK)
        for i, t in enumerate(["rm/1", "rm/2"], start=1):
            assert publish_acked(pub, t, t.encode(), qos=1, packet_id=i, retain=True) == 0
            assert next_publish(sub).fields["topic"] == t
        assert publish_acked(pub, "rm/3", b"q1", qos=1, packet_id=3, retain=True) == 0x97
        assert publish_acked(pub, "rm/3", b"q2", qos=2, packet_id=4, retain=True) == 0x97
        publish_acked(pub, "rm/3", b"q0", qos=0, retain=True)
        assert_only_sentinel(pub, sub, "rm/sentinel")
        assert publish_acked(pub, "rm/3", b"plain", qos=1, packet_id=5) == 0
        p = next_publish(sub)
        assert (p.fields["topic"], p.fields["payload"]) == ("rm/3", b"plain")
    with connected(broker.port, "rm-late") as late, connected(broker.port, "rm-pub2") as pub:
        late.send(m.subscribe(1, [("rm/#", 1)], version=5))
        late.expect(m.SUBACK)
        got = sorted(next_publish(late).fields["topic"] for _ in range(2))
        assert got == ["rm/1", "rm/2"]
        assert_only_sentinel(pub, late, "rm/sentinel2")
    assert_serving(broker)


def test_max_retained_messages_replace_and_delete_still_work(make_broker):
    """petrel max_retained_messages = 2, store full: replacing a stored retained topic is accepted, deleting
    one (empty payload) is accepted and frees room, after which a new topic is stored."""
    broker = make_broker(config=NO_SYS_RETAINED_2)
    with connected(broker.port, "rr-pub") as pub:
        assert publish_acked(pub, "rr/1", b"one", qos=1, packet_id=1, retain=True) == 0x10
        assert publish_acked(pub, "rr/2", b"two", qos=1, packet_id=2, retain=True) == 0x10
        assert publish_acked(pub, "rr/1", b"one again", qos=1, packet_id=3, retain=True) == 0x10
        assert publish_acked(pub, "rr/2", b"", qos=1, packet_id=4, retain=True) == 0x10
        assert publish_acked(pub, "rr/3", b"three", qos=1, packet_id=5, retain=True) == 0x10
        assert publish_acked(pub, "rr/4", b"four", qos=1, packet_id=6, retain=True) == 0x97
        with connected(broker.port, "rr-late") as late:
            late.send(m.subscribe(1, [("rr/#", 1)], version=5))
            late.expect(m.SUBACK)
            got = sorted((p.fields["topic"], p.fields["payload"]) for p in (next_publish(late), next_publish(late)))
            assert got == [("rr/1", b"one again"), ("rr/3", b"three")]
            assert_only_sentinel(pub, late, "rr/sentinel")
    assert_serving(broker)


def test_max_retained_messages_v311_not_routed_nor_stored(make_broker):
    """3.1.1 (no reason codes): with max_retained_messages = 1 full, a retained QoS 1 PUBLISH on a new topic
    is acknowledged (PUBACK) but neither routed nor stored."""
    broker = make_broker(config="[mqtt]\nmax_retained_messages = 1\n[sys]\ninterval = 0\n")
    with connected(broker.port, "r3-sub", version=4) as sub, connected(broker.port, "r3-pub", version=4) as pub:
        sub.send(m.subscribe(1, [("r3/#", 1)]))
        sub.expect(m.SUBACK)
        publish_acked(pub, "r3/1", b"stored", qos=1, packet_id=1, retain=True)
        assert next_publish(sub).fields["topic"] == "r3/1"
        publish_acked(pub, "r3/2", b"refused", qos=1, packet_id=2, retain=True)
        assert_only_sentinel(pub, sub, "r3/sentinel")
        with connected(broker.port, "r3-late", version=4) as late:
            late.send(m.subscribe(1, [("r3/#", 1)]))
            late.expect(m.SUBACK)
            assert next_publish(late).fields["topic"] == "r3/1"
            assert_only_sentinel(pub, late, "r3/sentinel2")
    assert_serving(broker, version=4)


def test_max_retained_messages_does_not_count_sys_topics(make_broker):
    """petrel max_retained_messages = 2 limits the retained topics clients store: the broker's own retained
    $SYS/broker/... topics ([sys] interval = 1 publishes some 20 of them) do not use up the quota, so two
    client topics are stored (PUBACK 0x10, no subscribers) and only a third one gets 0x97."""
    broker = make_broker(config=sys_config("max_retained_messages = 2"))
    with connected(broker.port, "rs-watch") as w:
        w.send(m.subscribe(1, [("$SYS/broker/uptime", 0)], version=5))
        w.expect(m.SUBACK)
        assert w.expect(m.PUBLISH).fields["retain"]  # $SYS topics are in the retained store
    with connected(broker.port, "rs-pub") as pub:
        assert publish_acked(pub, "rs/1", b"one", qos=1, packet_id=1, retain=True) == 0x10
        assert publish_acked(pub, "rs/2", b"two", qos=1, packet_id=2, retain=True) == 0x10
        assert publish_acked(pub, "rs/3", b"three", qos=1, packet_id=3, retain=True) == 0x97
    assert_serving(broker)


# -------------------------------------------------------- user properties --

def user_props(n: int) -> list:
    return [(m.USER_PROPERTY, (f"k{i}", "v")) for i in range(n)]


def test_max_user_properties_in_publish_and_subscribe(make_broker):
    """petrel max_user_properties = 2 per packet: a PUBLISH with 2 is accepted; a PUBLISH or a SUBSCRIBE with
    3 gets DISCONNECT 0x97 (Quota exceeded)."""
    broker = make_broker(config="[mqtt]\nmax_user_properties = 2\n")
    with connected(broker.port, "up-pub") as c:
        c.send(m.publish("up/t", b"x", qos=1, version=5, properties=user_props(2)))
        assert c.expect(m.PUBACK).fields["reason"] == 0x10
        c.send(m.publish("up/t", b"x", qos=1, packet_id=2, version=5, properties=user_props(3)))
        assert v5_disconnect_reason(c) == 0x97
    with connected(broker.port, "up-sub") as c:
        c.send(m.subscribe(1, [("up/#", 1)], version=5, properties=user_props(3)))
        assert v5_disconnect_reason(c) == 0x97
    assert_serving(broker)


def test_default_max_user_properties_is_128(broker):
    """petrel default max_user_properties = 128: a PUBLISH with 128 user properties is accepted, 129 get
    DISCONNECT 0x97."""
    with connected(broker.port, "up-default") as c:
        c.send(m.publish("up/d", b"x", qos=1, version=5, properties=user_props(128)))
        assert c.expect(m.PUBACK).fields["reason"] == 0x10
        c.send(m.publish("up/d", b"x", qos=1, packet_id=2, version=5, properties=user_props(129)))
        assert v5_disconnect_reason(c) == 0x97
    assert_serving(broker)


@pytest.mark.parametrize("where", ["connect", "will"])
def test_max_user_properties_in_connect(make_broker, where):
    """petrel max_user_properties = 2: a CONNECT with 3 user properties (in its own properties or in the will
    properties) gets CONNACK 0x97 and the connection is closed."""
    broker = make_broker(config="[mqtt]\nmax_user_properties = 2\n")
    if where == "connect":
        data = m.connect("upc", version=5, properties=user_props(3))
    else:
        data = m.connect("upc", version=5, will_topic="upc/will", will_payload=b"w", will_properties=user_props(3))
    assert refused_connack(broker.port, 5, data) == 0x97
    assert_serving(broker)


# ------------------------------------------------------- existing limits --

def test_max_packet_size(make_broker):
    """[MQTT-3.2.2-15] [3.2.2.3.6] petrel max_packet_size = 256, announced in CONNACK (Maximum Packet Size): a 257-byte
    PUBLISH gets DISCONNECT 0x95 (Packet too large); 256 bytes are accepted."""
    broker = make_broker(config="[mqtt]\nmax_packet_size = 256\n")
    with connected(broker.port, "mp") as c:
        topic = "mp/t"
        fit = m.publish(topic, b"f" * (256 - 3 - 2 - len(topic) - 2 - 1), qos=1, version=5)
        assert len(fit) == 256
        c.send(fit)
        assert c.expect(m.PUBACK).fields["reason"] == 0x10
        big = m.publish(topic, b"f" * (257 - 3 - 2 - len(topic) - 2 - 1), qos=1, version=5)
        assert len(big) == 257
        c.send(big)
        assert v5_disconnect_reason(c) == 0x95
    with m.RawClient(broker.port, version=5) as c:
        assert c.connect("mp2").fields["props"][m.MAXIMUM_PACKET_SIZE] == 256
    assert_serving(broker)


def test_connect_timeout(make_broker):
    """petrel connect_timeout = 1: a connection that sends nothing is closed by the broker (no bytes) after
    about 1 s -- not at once, not much later -- while other clients are served meanwhile."""
    broker = make_broker(config="[mqtt]\nconnect_timeout = 1\n")
    s = socket.create_connection(("127.0.0.1", broker.port))
    t0 = time.monotonic()
    try:
        assert_serving(broker)
        assert wait_closed(s, 4) == b""
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert 0.8 <= elapsed <= 3.0, f"closed after {elapsed:.2f} s with connect_timeout = 1"
    broker.wait_log("no CONNECT within 1000 ms")


@pytest.mark.parametrize("version", [5, 4], ids=["v5", "v311"])
def test_keep_alive_one_and_a_half(make_broker, version):
    """[MQTT-3.1.2-22] (v5) / [MQTT-3.1.2-24] (3.1.1) keep alive 1 s, nothing sent: the broker closes the
    connection after 1.5 s (v5: DISCONNECT 0x8D Keep Alive timeout first; 3.1.1: just closed)."""
    broker = make_broker()
    with connected(broker.port, f"ka-{version}", version=version, keepalive=1) as c:
        t0 = time.monotonic()
        got = c.expect_closed(4)
        elapsed = time.monotonic() - t0
        if version == 5:
            assert [(p.type, p.fields["reason"]) for p in got] == [(m.DISCONNECT, 0x8D)]
        else:
            assert got == []
    assert 1.2 <= elapsed <= 3.0, f"closed after {elapsed:.2f} s with keep alive 1"
    assert_serving(broker)


def test_receive_maximum_exceeded(make_broker):
    """[3.2.2.3.3] [4.9] petrel receive_maximum = 2, announced in CONNACK: a third QoS 2 PUBLISH while two
    await their PUBREL gets DISCONNECT 0x93 (Receive Maximum exceeded)."""
    broker = make_broker(config="[mqtt]\nreceive_maximum = 2\n")
    with m.RawClient(broker.port, version=5) as c:
        assert c.connect("rx").fields["props"][m.RECEIVE_MAXIMUM] == 2
        for pid in (1, 2):
            c.send(m.publish("rx/t", b"x", qos=2, packet_id=pid, version=5))
            assert c.expect(m.PUBREC).fields["packet_id"] == pid
        c.send(m.publish("rx/t", b"x", qos=2, packet_id=3, version=5))
        assert v5_disconnect_reason(c) == 0x93
    assert_serving(broker)


def test_max_inflight(make_broker):
    """[4.9] petrel max_inflight = 2 (below the client's Receive Maximum): at most 2 unacknowledged QoS 1
    messages are sent to a client; the next one follows a PUBACK."""
    broker = make_broker(config="[mqtt]\nmax_inflight = 2\n")
    with connected(broker.port, "mi-sub") as sub, connected(broker.port, "mi-pub") as pub:
        sub.send(m.subscribe(1, [("mi/t", 1)], version=5))
        sub.expect(m.SUBACK)
        for i in range(1, 5):
            publish_acked(pub, "mi/t", b"%d" % i, qos=1, packet_id=i)
        first = [sub.expect(m.PUBLISH) for _ in range(2)]
        assert [p.fields["payload"] for p in first] == [b"1", b"2"]
        sub.expect_nothing(0.3)
        sub.send(m.ack(m.PUBACK, first[0].fields["packet_id"]))
        assert sub.expect(m.PUBLISH).fields["payload"] == b"3"
        sub.expect_nothing(0.3)
    assert_serving(broker)


# ------------------------------------------------ back-pressure, fairness --

def test_back_pressure_on_a_client_that_does_not_read(make_broker):
    """petrel: a client that floods PINGREQs without reading its PINGRESPs stops being read once 4 MiB of
    answers are queued for it: its sends stall after a bounded number of bytes (here < 80 MiB, socket
    buffers included), the broker's RSS stays under 200 MiB (x PETREL_RSS_FACTOR), other clients are served
    meanwhile, and when the client reads again the broker resumes: every PINGREQ gets its PINGRESP."""
    broker = make_broker()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # no receive-buffer autotuning
    s.connect(("127.0.0.1", broker.port))
    try:
        c = m.RawClient.over(s, version=4, timeout=T)
        assert c.connect("bp", version=4).fields["reason"] == 0
        s.setblocking(False)
        block = m.pingreq() * 32768  # 64 KiB
        sent, stalled, rss_max = 0, False, 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sent < 400 * MIB:
            _, writable, _ = select.select([], [s], [], 1.0)
            if not writable:
                stalled = True
                break
            try:
                sent += s.send(block[sent % len(block):])
            except BlockingIOError:
                continue
            if sent // MIB % 4 == 0:
                rss_max = max(rss_max, rss_bytes(broker.proc.pid))
        rss_max = max(rss_max, rss_bytes(broker.proc.pid))
        print(f"\nBACK-PRESSURE {sent / MIB:.1f} MiB sent, stalled={stalled}, broker RSS max {rss_max / MIB:.1f} MiB")
        assert stalled, f"the broker kept reading {sent / MIB:.0f} MiB from a client that reads nothing"
        assert sent < 80 * MIB, f"{sent / MIB:.0f} MiB were accepted before the sends stalled"
        assert rss_max <= 200 * RSS_FACTOR * MIB, f"broker RSS {rss_max / MIB:.0f} MiB"
        assert_serving(broker)
        # Read again: the broker resumes reading; every PINGREQ (completed if cut in half) gets a PINGRESP.
        rest = b"\x00" if sent % 2 else b""
        want = sent + len(rest)
        got, other, carry = 0, False, b""
        deadline = time.monotonic() + 20
        while got < want and time.monotonic() < deadline:
            readable, writable, _ = select.select([s], [s] if rest else [], [], 1.0)
            if writable and rest:
                rest = rest[s.send(rest):]
            if readable:
                chunk = s.recv(1 << 20)
                assert chunk, f"closed by the broker after {got} of {want} bytes of PINGRESP"
                got += len(chunk)
                buf = carry + chunk
                n = len(buf) - len(buf) % 2
                other = other or buf[:n] != b"\xd0\x00" * (n // 2)
                carry = buf[n:]
        assert got == want, f"{got} bytes of PINGRESP came back, expected {want}"
        assert not other, "something other than PINGRESP came back"
    finally:
        abort(s)


def test_read_budget_keeps_a_shared_event_loop_fair(make_broker):
    """petrel reads at most 256 KiB per connection per event-loop turn: with a single event loop (threads =
    1), a client streaming QoS 0 PUBLISHes as fast as its socket allows does not starve another client on
    the same loop, which keeps completing QoS 1 round trips (at least 10 during a 2 s flood)."""
    broker = make_broker(threads=1)
    stop = threading.Event()
    sent = [0]
    flood_error: list[str] = []

    def flood():
        try:
            with connected(broker.port, "fair-flood", version=4) as f:
                block = m.publish("fair/nobody", b"p" * 100) * ((1 << 20) // 110)
                while not stop.is_set():
                    f.sock.sendall(block)
                    sent[0] += len(block)
        except OSError as e:
            flood_error.append(repr(e))

    with connected(broker.port, "fair-rt") as c:
        c.send(m.subscribe(1, [("fair/rt", 1)], version=5))
        c.expect(m.SUBACK)
        t = threading.Thread(target=flood, daemon=True)
        t.start()
        while sent[0] < 4 * MIB and t.is_alive():  # the flood is under way
            time.sleep(0.01)
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 2.0:
            n += 1
            round_trip(c, "fair/rt", b"%d" % n, packet_id=n)
        flooded = sent[0]
        stop.set()
        t.join(T)
    print(f"\nFAIRNESS {n} round trips during the flood; {flooded / MIB:.0f} MiB flooded")
    assert not flood_error, flood_error
    assert n >= 10, f"only {n} round trips in 2 s next to a flooding client on the same loop"
    assert_serving(broker)
