"""Black-box concurrency tests: many clients at once, spread over the broker's event loops.

petrel hands accepted connections to its event loops round-robin, so consecutive connections live on
different threads and every message between them crosses a thread (session queues, the subscription
tree, the shared encoding cache, takeover kicks, $SYS counters). These tests also run against the
ThreadSanitizer build (~5-10x slower): message counts are moderate and every wait is bounded but generous.

Clients are mqttraw.AsyncClient: a reader thread per connection records what arrives and acknowledges
QoS 1/2 itself. Nothing sleeps to synchronise: the tests wait for acknowledgements, for a marker message
that a subscriber's FIFO session queue delivers after everything published before it, or for closes.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict

import pytest

import mqttraw as m

pytestmark = [pytest.mark.concurrency, pytest.mark.timeout(300)]

WAIT = 60.0  # bound for any single wait; normally they end within milliseconds


# ------------------------------------------------------------------ helpers --

@pytest.fixture
def clients(make_broker):
    """Factory clients(broker, version, hub, name) -> AsyncClient; all closed before the broker stops."""
    made: list[m.AsyncClient] = []

    def make(broker, version: int = 4, hub: m.Hub | None = None, name: str = "") -> m.AsyncClient:
        c = m.AsyncClient(broker.port, version=version, hub=hub, timeout=WAIT, name=name)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def connected(clients, broker, client_id: str, version: int = 4, hub: m.Hub | None = None, **kw) -> m.AsyncClient:
    c = clients(broker, version, hub, client_id)
    c.connect(client_id, **kw)
    return c


def parallel(fns, timeout: float = WAIT) -> None:
    """Runs the callables on their own threads; re-raises the first failure."""
    errors: list[BaseException] = []

    def run(fn):
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(fn,), daemon=True) for fn in fns]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads), f"worker threads still running after {timeout} s"


class Background:
    """One callable on a thread; result() joins it and re-raises its failure."""

    def __init__(self, fn):
        self.error: BaseException | None = None
        self.value = None

        def run():
            try:
                self.value = fn()
            except BaseException as e:  # noqa: BLE001
                self.error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self, timeout: float = WAIT):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"background thread still running after {timeout} s"
        if self.error is not None:
            raise self.error
        return self.value


def payload(pub: int, seq: int) -> bytes:
    return f"{pub}:{seq}".encode()


def unpack(p: m.Packet) -> tuple[int, int]:
    pub, seq = p.fields["payload"].decode().split(":")
    return int(pub), int(seq)


def sequence_problems(seqs: list[int], n: int) -> str:
    """'' if seqs == [0 .. n-1]; otherwise what is wrong (missing, duplicated, first reordering)."""
    if seqs == list(range(n)):
        return ""
    counts = Counter(seqs)
    missing = sorted(set(range(n)) - set(counts))
    dups = sorted(s for s, k in counts.items() if k > 1)
    unordered = next((i for i in range(1, len(seqs)) if seqs[i] < seqs[i - 1]), None)
    return (f"{len(seqs)} received of {n}; missing {missing[:10]}{'...' if len(missing) > 10 else ''} "
            f"({len(missing)}); duplicated {dups[:10]} ({len(dups)}); "
            f"first out of order at index {unordered}: {seqs[unordered - 1:unordered + 2] if unordered else ''}")


def publish_pipelined(c: m.AsyncClient, topic: str, pub: int, n: int, qos: int) -> None:
    """Sends n PUBLISHes (packet ids 1..n) without waiting, then waits for every flow to complete
    (PUBACK, or PUBREC -> PUBREL (sent by the reader) -> PUBCOMP) and checks the acknowledgements."""
    for seq in range(n):
        c.send(m.publish(topic, payload(pub, seq), qos=qos, packet_id=seq + 1, version=c.version))
    done = m.PUBACK if qos == 1 else m.PUBCOMP
    c.wait_for(lambda: c.counts[done] >= n or c.closed, f"{n} x {m.NAMES[done]}")
    with c.hub.cond:
        acks = [p for p in c.packets if p.type in (m.PUBACK, m.PUBREC, m.PUBCOMP)]
    kinds = [m.PUBACK] if qos == 1 else [m.PUBREC, m.PUBCOMP]
    for kind in kinds:
        ids = [p.fields["packet_id"] for p in acks if p.type == kind]
        assert sorted(ids) == list(range(1, n + 1)), f"{c.name}: {m.NAMES[kind]} packet ids {sorted(ids)[:20]}..."
        # v5: 0x00 Success, since the topic has matching subscribers (0x10 would mean nobody matched).
        bad = [p for p in acks if p.type == kind and p.fields["reason"] != 0]
        assert not bad, f"{c.name}: {bad[:5]}"
    assert not c.closed, f"{c.name}: the broker closed the publisher"


def stream_qos1(pub: m.AsyncClient, topic: str, stop: threading.Event, progress, window: int = 100,
                lead: int = 500) -> int:
    """Publishes QoS 1 messages 0, 1, 2 ... to `topic` in batches of 10, at most `window` unacknowledged and
    at most `lead` ahead of progress() (the highest sequence number a subscriber got: the broker's session
    queue is bounded and drops new messages when full, so the stream must not outrun the subscriber), until
    `stop` is set; waits for the last PUBACK and returns how many it sent."""
    seq = 0
    while not stop.is_set() and not pub.closed:
        pub.send(b"".join(m.publish(topic, payload(0, seq + k), qos=1, packet_id=(seq + k) % 65535 + 1)
                          for k in range(10)))
        seq += 10
        pub.wait_for(lambda: (pub.counts[m.PUBACK] >= seq - window and progress() >= seq - lead) or pub.closed
                     or stop.is_set(), "PUBACKs and subscriber progress")
    pub.wait_for(lambda: pub.counts[m.PUBACK] >= seq or pub.closed, "every PUBACK")
    assert not pub.closed, f"{pub.name}: closed by the broker: {pub.packets[-2:]!r}"
    return seq


def send_marker(clients, broker, hub, client_id: str, topic: str, qos: int = 1) -> None:
    """Publishes one marker message (after every earlier publish was acknowledged). A session's queue is
    FIFO, so once a subscriber has the marker it has everything routed to it before."""
    c = connected(clients, broker, client_id, hub=hub)
    publish_pipelined(c, topic, 0, 1, qos)


def last_seq(c: m.AsyncClient) -> int:
    """The sequence number of the last PUBLISH c received (-1: none); call with the hub's lock held."""
    return unpack(c.publishes[-1])[1] if c.publishes else -1


def check_clean(c: m.AsyncClient) -> None:
    assert not c.errors, f"{c.name}: {c.errors}"
    assert not c.closed, f"{c.name}: the broker closed the connection"


# -------------------------------------------------------------------- tests --

def test_fan_in_fan_out_qos1_across_loops(make_broker, clients):
    """8 publishers x 200 QoS 1 messages to load/<i>, 4 subscribers on load/# (QoS 1), on 4 event loops, mixed
    3.1.1 and 5: every subscriber receives every message exactly once (no loss, no DUP=0 duplicate) and each
    publisher's messages in the order sent [MQTT-4.3.2-1, MQTT-4.6.0-5, MQTT-4.6.0-6 (3.1.1: ordered topics)]."""
    broker = make_broker(threads=4)
    hub = m.Hub()
    n_pubs, n = 8, 200
    subs = []
    for k in range(4):
        s = connected(clients, broker, f"cc1-sub{k}", version=5 if k % 2 else 4, hub=hub)
        assert s.subscribe(1, [("load/#", 1)]) == [1]
        subs.append(s)
    pubs = [connected(clients, broker, f"cc1-pub{i}", version=5 if i % 2 else 4, hub=hub) for i in range(n_pubs)]
    start = threading.Barrier(n_pubs)

    def run(i):
        start.wait(WAIT)
        publish_pipelined(pubs[i], f"load/{i}", i, n, qos=1)

    parallel([lambda i=i: run(i) for i in range(n_pubs)])
    send_marker(clients, broker, hub, "cc1-mark", "load/end")
    hub.wait_for(lambda: all(s.topic_counts["load/end"] or s.closed for s in subs), "the marker at every subscriber",
                 WAIT)

    for s in subs:
        check_clean(s)
        per_pub: dict[int, list[int]] = defaultdict(list)
        for p in s.received():
            if p.fields["topic"] == "load/end":
                continue
            assert (p.fields["qos"], p.fields["dup"], p.fields["retain"]) == (1, False, False), f"{s.name}: {p!r}"
            i, seq = unpack(p)
            assert p.fields["topic"] == f"load/{i}", p
            per_pub[i].append(seq)
        problems = {i: sequence_problems(per_pub[i], n) for i in range(n_pubs)}
        assert not any(problems.values()), f"{s.name}: {problems}"


def test_qos2_exactly_once_across_loops(make_broker, clients):
    """4 publishers x 100 QoS 2 messages (3.1.1 and 5), 2 subscribers at QoS 2 on other loops: each subscriber
    gets each message exactly once, in order per publisher, and every QoS 2 flow completes in both directions
    (PUBREC/PUBREL/PUBCOMP with matching packet ids) [MQTT-4.3.3-1, MQTT-4.3.3-2, MQTT-4.6.0-6]."""
    broker = make_broker()
    hub = m.Hub()
    n_pubs, n = 4, 100
    subs = []
    for k in range(2):
        s = connected(clients, broker, f"cc2-sub{k}", version=5 if k else 4, hub=hub)
        assert s.subscribe(1, [("exact/#", 2)]) == [2]
        subs.append(s)
    pubs = [connected(clients, broker, f"cc2-pub{i}", version=5 if i % 2 else 4, hub=hub) for i in range(n_pubs)]
    start = threading.Barrier(n_pubs)

    def run(i):
        start.wait(WAIT)
        publish_pipelined(pubs[i], f"exact/{i}", i, n, qos=2)

    parallel([lambda i=i: run(i) for i in range(n_pubs)])
    send_marker(clients, broker, hub, "cc2-mark", "exact/end", qos=2)
    # The marker arrived, and every PUBREC we sent got its PUBREL (the reader answered it with PUBCOMP).
    hub.wait_for(lambda: all(s.closed or (s.topic_counts["exact/end"] and not s.awaiting_pubrel
                                          and s.counts[m.PUBREL] == s.counts[m.PUBLISH]) for s in subs),
                 "the marker and every PUBREL at both subscribers", WAIT)

    for s in subs:
        check_clean(s)
        per_pub: dict[int, list[int]] = defaultdict(list)
        for p in s.received():
            if p.fields["topic"] == "exact/end":
                continue
            assert (p.fields["qos"], p.fields["dup"]) == (2, False), f"{s.name}: {p!r}"
            i, seq = unpack(p)
            per_pub[i].append(seq)
        problems = {i: sequence_problems(per_pub[i], n) for i in range(n_pubs)}
        assert not any(problems.values()), f"{s.name}: {problems}"


def test_takeover_storm(make_broker, clients):
    """20 MQTT 5 connections CONNECT at once with one client id (clean start 0, session expiry 60), three
    rounds: each round, all but the last attached connection get DISCONNECT 0x8E and are closed, exactly one
    stays alive, the session is created once and resumed by every other CONNECT (session present 1), the
    subscriptions made by the short-lived connections stay in the session, and $SYS/broker/clients/connected
    ends at the real number of connections [MQTT-3.1.4-3, MQTT-3.1.2-5, MQTT-3.2.2-3 (5.0); $SYS per petrel's docs]."""
    broker = make_broker(config="[sys]\ninterval = 1\n", threads=4)
    hub = m.Hub()
    n, rounds, cid = 20, 3, "cc3-storm"
    watcher = connected(clients, broker, "cc3-sys", hub=hub)
    assert watcher.subscribe(1, [("$SYS/broker/clients/connected", 0)]) == [0]
    survivor: m.AsyncClient | None = None
    subscribed: list[str] = []  # topics whose SUBSCRIBE got a SUBACK
    attempted: set[str] = set()

    for r in range(rounds):
        socks = [clients(broker, 5, hub, f"cc3-r{r}c{k}") for k in range(n)]
        start = threading.Barrier(n)

        def go(k, r=r, socks=socks):
            c = socks[k]
            start.wait(WAIT)
            c.send(m.connect(cid, version=5, clean=False, properties=[(m.SESSION_EXPIRY_INTERVAL, 60)]))
            c.wait_for(lambda: c.packets or c.closed, "CONNACK")
            try:
                c.send(m.subscribe(1, [(f"storm/{r}/{k}", 1)], version=5))
            except OSError:
                pass  # already taken over and closed

        attempted.update(f"storm/{r}/{k}" for k in range(n))
        parallel([lambda k=k: go(k) for k in range(n)])
        # [MQTT-3.2.0-1] the first packet is CONNACK, and every CONNECT was valid.
        for c in socks:
            assert c.packets and c.packets[0].type == m.CONNACK and c.packets[0].fields["reason"] == 0, \
                f"{c.name}: {c.packets[:3]!r} closed={c.closed}"
        present = [c.packets[0].fields["session_present"] for c in socks]
        if r == 0:
            assert present.count(0) == 1, f"round 0: session present flags {present}: exactly one CONNECT " \
                                          "should have created the session"
        else:
            assert present == [1] * n, f"round {r}: session present flags {present}"

        contenders = socks + ([survivor] if survivor else [])
        hub.wait_for(lambda: sum(c.closed for c in contenders) >= len(contenders) - 1,
                     f"round {r}: {len(contenders) - 1} taken-over connections closed", WAIT)
        alive = [c for c in contenders if not c.closed]
        assert len(alive) == 1, f"round {r}: alive after the storm: {alive}"
        for c in contenders:
            if c.closed:
                # [MQTT-3.1.4-3] v5: DISCONNECT 0x8E Session taken over, then the close. (A RST may overtake the
                # last bytes when our SUBSCRIBE reached an already closed socket; then only the close is seen.)
                last = c.packets[-1]
                if c.reset and last.type != m.DISCONNECT:
                    continue
                assert (last.type, last.fields.get("reason")) == (m.DISCONNECT, 0x8E), f"{c.name}: {c.packets!r}"
        survivor = alive[0]
        assert survivor in socks
        survivor.wait_packet(m.SUBACK, 1)
        survivor.ping()  # it is alive and served
        for c in socks:
            with hub.cond:
                acks = [p for p in c.packets if p.type == m.SUBACK]
            if acks:
                assert acks[0].fields["reasons"] == [1], f"{c.name}: {acks[0]!r}"
                subscribed.append(f"storm/{r}/{socks.index(c)}")

    final = clients(broker, 5, hub, "cc3-final")
    ack = final.connect(cid, clean=False, properties=[(m.SESSION_EXPIRY_INTERVAL, 60)])
    assert ack.fields["session_present"] == 1, ack
    survivor.wait_for(lambda: survivor.closed, "the last survivor taken over")
    assert survivor.packets[-1].type == m.DISCONNECT and survivor.packets[-1].fields["reason"] == 0x8E, \
        survivor.packets[-3:]

    # Every subscription acknowledged to any of the 60 connections is in the session the final client resumed.
    pub = connected(clients, broker, "cc3-pub", hub=hub)
    for pid, topic in enumerate(subscribed, 1):
        pub.send(m.publish(topic, topic.encode(), qos=1, packet_id=pid))
    pub.wait_for(lambda: pub.counts[m.PUBACK] >= len(subscribed), f"{len(subscribed)} PUBACKs")
    final.wait_for(lambda: set(subscribed) <= set(final.topic_counts) or final.closed,
                   f"a message on each of {len(subscribed)} subscribed topics")
    check_clean(final)
    got = final.topic_counts
    assert set(got) <= attempted and all(v == 1 for v in got.values()), got

    # $SYS: the watcher, the final client and the publisher are connected; the 61 others are gone.
    with hub.cond:
        mark = len(watcher.publishes)
    seen: list[bytes] = []

    def reported() -> bool:
        seen[:] = [p.fields["payload"] for p in watcher.publishes[mark:]]
        return b"3" in seen or watcher.closed

    watcher.wait_for(reported, "$SYS/broker/clients/connected = 3", timeout=WAIT)
    assert b"3" in seen, f"$SYS/broker/clients/connected reported {seen}"


def test_subscribe_unsubscribe_churn_while_publishing(make_broker, clients):
    """6 clients (3.1.1 and 5) subscribe/unsubscribe churn/# and churn/+ 40 times each while a publisher
    streams QoS 0 to churn/x: every SUBACK/UNSUBACK answers its own request (v5 UNSUBACK 0x00: each
    subscription existed), each churner sees the stream in order with at most one copy per message
    (petrel: overlapping subscriptions give one copy), afterwards no subscription is left (v5 PUBACK 0x10 No
    matching subscribers), and a fresh subscriber gets the next message [MQTT-3.8.4-1, MQTT-3.10.4-2,
    MQTT-3.10.4-4, MQTT-4.6.0-6]."""
    broker = make_broker(threads=4)
    hub = m.Hub()
    n_churn, iterations = 6, 40
    stop = threading.Event()
    stream = m.RawClient(broker.port, timeout=WAIT)
    stream.connect("cc4-stream")

    def publish_stream() -> int:
        seq = 0
        while not stop.is_set():
            stream.send(b"".join(m.publish("churn/x", payload(0, seq + k)) for k in range(50)))
            seq += 50
            stream.send(m.pingreq())  # pace: PINGRESP means the broker routed the 50 before it
            stream.expect(m.PINGRESP)
        return seq

    churners = [connected(clients, broker, f"cc4-ch{k}", version=5 if k % 2 else 4, hub=hub) for k in range(n_churn)]
    streamer = Background(publish_stream)
    try:
        def churn(c: m.AsyncClient):
            pid = 1
            for it in range(iterations):
                if it % 2:
                    assert c.subscribe(pid, [("churn/#", 1), ("churn/+", 0)]) == [1, 0]
                    pid += 1
                else:
                    assert c.subscribe(pid, [("churn/+", 1)]) == [1]
                    assert c.subscribe(pid + 1, [("churn/#", 0)]) == [0]
                    pid += 2
                reasons = c.unsubscribe(pid, ["churn/#", "churn/+"])
                pid += 1
                if c.version == 5:
                    assert reasons == [0, 0], f"{c.name} iteration {it}: UNSUBACK {reasons}"

        parallel([lambda c=c: churn(c) for c in churners])
    finally:
        stop.set()
        sent = streamer.result()
    assert sent >= 50
    stream.close()

    for c in churners:
        check_clean(c)
        seqs = [unpack(p)[1] for p in c.received()]
        assert all(b > a for a, b in zip(seqs, seqs[1:])), f"{c.name}: not strictly increasing: {seqs[:50]}"
        assert all(p.fields["qos"] == 0 for p in c.received())

    # Every subscription is gone: a v5 QoS 1 PUBLISH to churn/x matches nobody.
    probe = connected(clients, broker, "cc4-probe", version=5, hub=hub)
    probe.send(m.publish("churn/x", b"probe", qos=1, packet_id=1, version=5))
    assert probe.wait_packet(m.PUBACK, 1).fields["reason"] == 0x10
    fresh = connected(clients, broker, "cc4-fresh", hub=hub)
    assert fresh.subscribe(1, [("churn/#", 1)]) == [1]
    probe.send(m.publish("churn/x", b"next", qos=1, packet_id=2, version=5))
    assert probe.wait_packet(m.PUBACK, 2).fields["reason"] == 0
    fresh.wait_for(lambda: fresh.publishes or fresh.closed, "the next message")
    assert [p.fields["payload"] for p in fresh.received()] == [b"next"]


def test_shared_subscription_under_load(make_broker, clients):
    """3 members of $share/g/work/# (3.1.1 and 5) on different event loops, 3 publishers x 100 QoS 1 messages
    at once: each message goes to exactly one member (300 in total, none twice, none lost) and every member
    gets some [MQTT 5.0 section 4.8.2: each message goes to only one session of a share group; MQTT-4.3.2-1]."""
    broker = make_broker(threads=4)
    hub = m.Hub()
    n_pubs, n = 3, 100
    members = []
    for k in range(3):
        c = connected(clients, broker, f"cc5-m{k}", version=5 if k != 1 else 4, hub=hub)
        assert c.subscribe(1, [("$share/g/work/#", 1), ("mark/#", 1)]) == [1, 1]
        members.append(c)
    pubs = [connected(clients, broker, f"cc5-pub{i}", version=5 if i % 2 else 4, hub=hub) for i in range(n_pubs)]
    start = threading.Barrier(n_pubs)

    def run(i):
        start.wait(WAIT)
        publish_pipelined(pubs[i], f"work/{i}", i, n, qos=1)

    parallel([lambda i=i: run(i) for i in range(n_pubs)])
    send_marker(clients, broker, hub, "cc5-mark", "mark/end")
    hub.wait_for(lambda: all(c.topic_counts["mark/end"] or c.closed for c in members), "the marker at every member",
                 WAIT)

    got: Counter = Counter()
    per_member = {}
    for c in members:
        check_clean(c)
        work = [p for p in c.received() if p.fields["topic"].startswith("work/")]
        assert all((p.fields["qos"], p.fields["dup"]) == (1, False) for p in work), c.name
        per_member[c.name] = len(work)
        got.update(unpack(p) for p in work)
        for i in range(n_pubs):  # each member still sees a publisher's messages in order
            seqs = [unpack(p)[1] for p in work if unpack(p)[0] == i]
            assert seqs == sorted(seqs), f"{c.name}: publisher {i} out of order"
    expected = {(i, s) for i in range(n_pubs) for s in range(n)}
    dups = {k: v for k, v in got.items() if v > 1}
    assert not dups, f"delivered to more than one member / twice: {sorted(dups)[:10]} ({len(dups)})"
    assert set(got) == expected, f"missing {sorted(expected - set(got))[:10]} ({len(expected - set(got))})"
    assert sum(per_member.values()) == n_pubs * n
    assert all(v > 0 for v in per_member.values()), per_member


def test_disconnect_while_receiving(make_broker, clients):
    """A QoS 0 subscriber has its socket torn down abruptly (RST, unread data pending) mid-stream, 6 times,
    reconnecting with the same client id (so takeover races the close), while a QoS 1 subscriber on another
    loop receives the same stream: the QoS 1 subscriber gets every message once, in order, and the broker
    keeps routing (a fresh subscriber gets the next message) [MQTT-4.3.2-1, MQTT-4.6.0-6, MQTT-3.1.4-3]."""
    broker = make_broker()
    hub = m.Hub()
    steady = connected(clients, broker, "cc6-steady", version=5, hub=hub)
    assert steady.subscribe(1, [("dc/#", 1)]) == [1]
    pub = connected(clients, broker, "cc6-pub", hub=hub)
    stop = threading.Event()
    streamer = Background(lambda: stream_qos1(pub, "dc/s", stop, lambda: last_seq(steady)))
    try:
        for cycle in range(6):
            version = 5 if cycle % 2 else 4
            a = connected(clients, broker, "cc6-flaky", version=version, hub=hub)
            assert a.subscribe(1, [("dc/#", 0)]) == [0]
            a.wait_for(lambda: a.counts[m.PUBLISH] >= 20 or a.closed, f"cycle {cycle}: 20 messages mid-stream")
            assert not a.closed, f"cycle {cycle}: closed by the broker: {a.packets[-2:]!r}"
            a.abort()
            seqs = [unpack(p)[1] for p in a.received()]
            assert all(b > x for x, b in zip(seqs, seqs[1:])), f"cycle {cycle}: {seqs[:40]}"
            assert all(p.fields["qos"] == 0 for p in a.received())
    finally:
        with hub.cond:
            stop.set()
            hub.cond.notify_all()
        sent = streamer.result()

    send_marker(clients, broker, hub, "cc6-mark", "dc/end")
    steady.wait_for(lambda: steady.topic_counts["dc/end"] or steady.closed, "the marker")
    check_clean(steady)
    stream = [p for p in steady.received() if p.fields["topic"] == "dc/s"]
    assert all((p.fields["qos"], p.fields["dup"]) == (1, False) for p in stream)
    problems = sequence_problems([unpack(p)[1] for p in stream], sent)
    assert not problems, f"steady subscriber: {problems}"

    fresh = connected(clients, broker, "cc6-fresh", hub=hub)
    assert fresh.subscribe(1, [("dc/#", 1)]) == [1]
    send_marker(clients, broker, hub, "cc6-next", "dc/next")
    fresh.wait_for(lambda: fresh.topic_counts["dc/next"] or fresh.closed, "the next message")
    assert [p.fields["topic"] for p in fresh.received()] == ["dc/next"]


def test_persistent_subscriber_reconnects_mid_stream(make_broker, clients):
    """A QoS 1 subscriber with a persistent session (v5, clean start 0, session expiry 60) is torn down
    abruptly mid-stream 6 times and resumes from a new connection (on another event loop each time): across
    its connections it receives every message; a message arrives more than once only as a redelivery with
    DUP=1; each connection receives the stream in order (redeliveries first, in their original order)
    [MQTT-4.3.2-1, MQTT-3.3.1-1, MQTT-4.4.0-1, MQTT-4.6.0-1, MQTT-4.6.0-6, MQTT-3.2.2-3]."""
    broker = make_broker(threads=4)
    hub = m.Hub()
    conns: list[m.AsyncClient] = []

    def attach(first: bool) -> m.AsyncClient:
        c = clients(broker, 5, hub, f"cc7-sub#{len(conns)}")
        ack = c.connect("cc7-sub", clean=first, properties=[(m.SESSION_EXPIRY_INTERVAL, 60)])
        assert ack.fields["session_present"] == (0 if first else 1), ack
        conns.append(c)
        return c

    sub = attach(True)
    assert sub.subscribe(1, [("pers/#", 1)]) == [1]
    pub = connected(clients, broker, "cc7-pub", hub=hub)
    stop = threading.Event()
    streamer = Background(lambda: stream_qos1(pub, "pers/s", stop,
                                              lambda: max((last_seq(c) for c in conns), default=-1)))
    try:
        for cycle in range(6):
            c = sub
            c.wait_for(lambda: c.counts[m.PUBLISH] >= 20 or c.closed, f"cycle {cycle}: 20 messages mid-stream")
            assert not c.closed, f"cycle {cycle}: closed by the broker: {c.packets[-2:]!r}"
            c.abort()
            sub = attach(False)
    finally:
        with hub.cond:
            stop.set()
            hub.cond.notify_all()
        sent = streamer.result()

    send_marker(clients, broker, hub, "cc7-mark", "pers/end")
    sub.wait_for(lambda: sub.topic_counts["pers/end"] or sub.closed, "the marker")
    check_clean(sub)
    copies: Counter = Counter()
    for c in conns:
        stream = [p for p in c.received() if p.fields["topic"] == "pers/s"]
        seqs = [unpack(p)[1] for p in stream]
        assert all(b > a for a, b in zip(seqs, seqs[1:])), f"{c.name}: out of order: {seqs[:40]}"
        for p, seq in zip(stream, seqs):
            assert p.fields["qos"] == 1, p
            # A second copy of a message is a redelivery, which must carry DUP=1 [MQTT-3.3.1-1].
            assert not copies[seq] or p.fields["dup"], f"{c.name}: message {seq} again with DUP=0"
            copies[seq] += 1
    missing = sorted(set(range(sent)) - set(copies))
    assert not missing, f"{len(missing)} of {sent} never delivered, e.g. {missing[:10]}"
    assert set(copies) == set(range(sent)), sorted(set(copies) - set(range(sent)))[:10]
