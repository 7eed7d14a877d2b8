"""Crashes (SIGKILL) under load: with durability = "sync" (the default) nothing petrel acknowledged may be
lost, and QoS 2 stays exactly once across the crash, in both directions.

The streams send numbered messages whose packet identifier is their number, so every acknowledgement names
the message. The broker is killed from the test thread while a stream's own thread is still sending.
"""
from __future__ import annotations

import pytest

import mqttraw as m

from . import helpers as h

KILL_AFTER = 300  # acknowledgements before the crash
ATTEMPTS = 5      # race-window tests: each attempt is one crash


def _number(payload: bytes) -> int:
    return int(payload[:6])


def _resume_publisher(b, stream: h.Stream, acked: dict[int, int]) -> None:
    """The stream's publisher reconnects (Clean Start 0: Session Present 1) and finishes every flow the crash
    interrupted, as MQTT 5.0 section 4.4 asks: an unacknowledged PUBLISH is resent with DUP=1 and the same
    packet identifier; a QoS 2 message whose PUBREC it had goes on with PUBREL."""
    pub = h.connect(b, stream.client.name, clean=False, expiry=300)
    assert h.session_present(pub) == 1
    completed = stream.completed() if stream.qos == 2 else set()
    for n in range(1, stream.sent + 1):
        if n in acked:
            if stream.qos == 2 and n not in completed:
                pub.send(m.ack(m.PUBREL, n))
                comp = pub.expect(m.PUBCOMP)
                # 0x92: the broker had completed it before the crash; the flow is finished either way.
                assert comp.fields["packet_id"] == n and comp.fields["reason"] in (0x00, 0x92), comp
            continue
        pub.send(m.publish(stream.topic, stream.payload(n), qos=stream.qos, dup=True, packet_id=n, version=5))
        ack = pub.expect(m.PUBACK if stream.qos == 1 else m.PUBREC)
        assert ack.fields["packet_id"] == n and ack.fields["reason"] == 0x00, ack
        if stream.qos == 2:
            pub.send(m.ack(m.PUBREL, n))
            comp = pub.expect(m.PUBCOMP)
            assert comp.fields["packet_id"] == n and comp.fields["reason"] == 0x00, comp
    h.leave(pub)


@pytest.mark.parametrize("qos", [1, 2], ids=["qos1", "qos2"])
def test_offline_subscriber_gets_every_acknowledged_message(petrel, qos):
    """A publisher streams numbered QoS 1 (QoS 2) messages to an offline persistent subscriber and petrel is
    killed mid-stream. After the restart the subscriber gets every message whose PUBACK (PUBREC) the
    publisher had received, and for QoS 2 none twice. Then the publisher resumes its own session and finishes
    the interrupted flows: in the end every message sent is delivered, and for QoS 2 exactly once."""
    topic = f"crash/q{qos}"
    b = petrel.start()
    s = h.connect(b, f"crash-sub{qos}", expiry=300)
    assert h.subscribe(s, topic, qos) == [qos]
    h.leave(s)
    stream = h.Stream(b, f"crash-pub{qos}", topic, qos)
    stream.wait_acked(KILL_AFTER)

    b = petrel.restart(b, crash=True)
    stream.join()
    acked = stream.acked()
    assert len(acked) >= KILL_AFTER
    assert set(acked.values()) == {0x00}, f"acknowledged with reasons {set(acked.values())}"
    summary = h.store_summary(b)
    assert summary["sessions"] == 2
    assert summary["queued"] + summary["inflight"] >= len(acked)

    s = h.connect(b, f"crash-sub{qos}", clean=False, expiry=300)
    assert h.session_present(s) == 1
    h.sentinel(b, topic, b"sentinel-1", qos=qos)
    first = [p.fields["payload"] for p in h.receive_until(s, b"sentinel-1")][:-1]
    numbers = [_number(p) for p in first]
    lost = sorted(set(acked) - set(numbers))
    assert not lost, f"{len(lost)} acknowledged messages lost in the crash: {lost[:20]}"
    assert set(numbers) <= set(range(1, stream.sent + 1))
    if qos == 2:
        assert len(numbers) == len(set(numbers)), "QoS 2 messages delivered twice"

    _resume_publisher(b, stream, acked)
    h.sentinel(b, topic, b"sentinel-2", qos=qos)
    second = [_number(p.fields["payload"]) for p in h.receive_until(s, b"sentinel-2")[:-1]]
    everything = numbers + second
    assert set(everything) == set(range(1, stream.sent + 1)), \
        f"never delivered: {sorted(set(range(1, stream.sent + 1)) - set(everything))[:20]}"
    if qos == 2:
        assert sorted(everything) == list(range(1, stream.sent + 1)), "QoS 2 messages delivered twice"


def test_online_qos2_subscriber_exactly_once_across_crash(petrel):
    """An online persistent QoS 2 subscriber that keeps its receiver state (MQTT 5.0 4.3.3, delivering on
    PUBLISH, identifiers awaiting PUBREL) across connections, and a QoS 2 stream; petrel is killed
    mid-stream. After the restart and a reconnect with Clean Start 0: every PUBLISH resent for an identifier
    awaiting PUBREL has DUP=1 and the same message; every message the publisher had a PUBREC for is
    delivered; counting before and after the crash, no message reaches the application twice; and once the
    publisher finished its interrupted flows, every message sent was delivered exactly once."""
    topic = "crash/online"
    b = petrel.start()
    r = h.ExactlyOnceReceiver("crash-online-sub")
    r.connect(b, clean=True)
    assert r.conn.subscribe(1, [(topic, 2)]) == [2]
    stream = h.Stream(b, "crash-online-pub", topic, 2)
    stream.wait_acked(KILL_AFTER)
    r.wait_for(lambda: len(r.delivered) >= KILL_AFTER // 2, "deliveries before the crash")

    b = petrel.restart(b, crash=True)
    stream.join()
    r.wait_closed()
    acked = stream.acked()
    before = len(r.delivered)

    assert r.connect(b, clean=False).fields["session_present"] == 1
    h.sentinel(b, topic, b"sentinel-1", qos=2)
    r.drain(b"sentinel-1")
    assert not r.errors, r.errors
    numbers = [_number(p) for p in r.delivered if p != b"sentinel-1"]
    twice = sorted(n for n in set(numbers) if numbers.count(n) > 1)
    assert not twice, f"{len(twice)} messages delivered twice ({before} before the crash): {twice[:20]}; " \
        f"what the subscriber got for the first: {r.history(twice[0])}"
    lost = sorted(set(acked) - set(numbers))
    assert not lost, f"{len(lost)} acknowledged messages lost in the crash: {lost[:20]}"

    _resume_publisher(b, stream, acked)
    h.sentinel(b, topic, b"sentinel-2", qos=2)
    r.drain(b"sentinel-2")
    assert not r.errors, r.errors
    numbers = [_number(p) for p in r.delivered if not p.startswith(b"sentinel")]
    assert sorted(numbers) == list(range(1, stream.sent + 1)), \
        f"missing {sorted(set(range(1, stream.sent + 1)) - set(numbers))[:20]}, " \
        f"twice {sorted(n for n in set(numbers) if numbers.count(n) > 1)[:20]}"


def test_publisher_qos2_flows_resume_after_crash(petrel):
    """The publisher's side of QoS 2 across a crash, for a persistent publisher session: a message whose
    PUBREC it had goes on with PUBREL and gets PUBCOMP Success (the packet identifier was restored); one whose
    PUBREC it did not take in, resent with DUP=1 and the same identifier, gets PUBREC and is not delivered
    again; one sent just before the crash, resent likewise, is delivered once."""
    b = petrel.start()
    s = h.connect(b, "pq-sub", expiry=300)
    assert h.subscribe(s, "pq/t", 2) == [2]
    h.leave(s)
    p = h.connect(b, "pq-pub", expiry=300)
    p.send(m.publish("pq/t", b"recd", qos=2, packet_id=1, version=5))
    assert p.expect(m.PUBREC).fields["reason"] == 0x00
    p.send(m.publish("pq/t", b"rec-lost", qos=2, packet_id=2, version=5))
    assert p.expect(m.PUBREC).fields["reason"] == 0x00  # as if the publisher crashed before reading it
    p.send(m.publish("pq/t", b"unanswered", qos=2, packet_id=3, version=5))

    b = petrel.restart(b, crash=True)
    assert h.store_summary(b)["sessions"] == 2
    p = h.connect(b, "pq-pub", clean=False, expiry=300)
    assert h.session_present(p) == 1
    p.send(m.ack(m.PUBREL, 1))
    comp = p.expect(m.PUBCOMP)
    assert (comp.fields["packet_id"], comp.fields["reason"]) == (1, 0x00)
    for pid, payload in [(2, b"rec-lost"), (3, b"unanswered")]:
        p.send(m.publish("pq/t", payload, qos=2, dup=True, packet_id=pid, version=5))
        rec = p.expect(m.PUBREC)
        assert (rec.fields["packet_id"], rec.fields["reason"]) == (pid, 0x00)
        p.send(m.ack(m.PUBREL, pid))
        comp = p.expect(m.PUBCOMP)
        assert (comp.fields["packet_id"], comp.fields["reason"]) == (pid, 0x00)
    h.sentinel(b, "pq/t", b"sentinel", qos=2)
    s = h.connect(b, "pq-sub", clean=False, expiry=300)
    got = [g.fields["payload"] for g in h.receive_until(s, b"sentinel")]
    assert got == [b"recd", b"rec-lost", b"unanswered", b"sentinel"]


def test_pubrel_is_final_across_crash(petrel):
    """[MQTT-4.3.3-6] Once petrel has sent PUBREL for a QoS 2 delivery it must not send that PUBLISH again,
    not even after a crash: the subscriber has released the packet identifier and would take a resent
    PUBLISH for a new message (delivered twice). Petrel is killed as soon as the PUBREL reaches the
    subscriber, while another client keeps the store's writer busy; after the restart the subscriber must get
    the PUBREL again, and never the PUBLISH. A race window: repeated, one crash per attempt."""
    b = petrel.start()
    s = h.connect(b, "pr-sub", expiry=300)
    assert h.subscribe(s, "pr/t", 2) == [2]
    for i in range(ATTEMPTS):
        load = h.WriteLoad(b, f"pr-sink{i}", f"pr/load{i}")
        p = h.connect(b, f"pr-pub{i}")
        assert h.publish(p, "pr/t", b"m%d" % i, qos=2) == 0x00
        got = s.expect(m.PUBLISH)
        pid = got.fields["packet_id"]
        s.send(m.ack(m.PUBREC, pid))
        rel = s.expect(m.PUBREL)
        assert rel.fields["packet_id"] == pid, rel

        b = petrel.restart(b, crash=True)
        load.join()
        s = h.connect(b, "pr-sub", clean=False, expiry=300)
        assert h.session_present(s) == 1
        again = s.recv()
        assert (again.type, again.fields.get("packet_id")) == (m.PUBREL, pid), \
            f"attempt {i}: PUBREL {pid} had been received before the crash; after it petrel sent {again!r}"
        s.send(m.ack(m.PUBCOMP, pid))
        h.sentinel(b, "pr/t", b"sentinel-%d" % i, qos=2)
        assert [g.fields["payload"] for g in h.receive_until(s, b"sentinel-%d" % i)] == [b"sentinel-%d" % i]


def test_packet_id_is_free_after_pubcomp_across_crash(petrel):
    """[MQTT-4.3.3-12] Once petrel has sent PUBCOMP, a new PUBLISH with that packet identifier is a new
    message, also after a crash. A persistent publisher completes a QoS 2 flow (PUBCOMP received), petrel is
    killed at once while another client keeps the store's writer busy, and after the restart the publisher
    sends a new message with the same identifier: it must be delivered. A race window: repeated, one crash
    per attempt."""
    b = petrel.start()
    s = h.connect(b, "pc-sub", expiry=300)
    assert h.subscribe(s, "pc/t", 2) == [2]
    h.leave(s)
    for i in range(ATTEMPTS):
        load = h.WriteLoad(b, f"pc-sink{i}", f"pc/load{i}")
        p = h.connect(b, "pc-pub", clean=i == 0, expiry=300)
        assert h.publish(p, "pc/t", b"first-%d" % i, qos=2, packet_id=7) == 0x00

        b = petrel.restart(b, crash=True)
        load.join()
        p = h.connect(b, "pc-pub", clean=False, expiry=300)
        assert h.publish(p, "pc/t", b"second-%d" % i, qos=2, packet_id=7) == 0x00
        h.leave(p)
        h.sentinel(b, "pc/t", b"sentinel-%d" % i, qos=2)
        s = h.connect(b, "pc-sub", clean=False, expiry=300)
        got = [g.fields["payload"] for g in h.receive_until(s, b"sentinel-%d" % i)]
        assert got == [b"first-%d" % i, b"second-%d" % i, b"sentinel-%d" % i], f"attempt {i}: got {got}"
        h.leave(s)


def test_acknowledged_subscription_survives_crash(petrel):
    """A SUBACK is an acknowledgement too: a subscription petrel granted to a persistent session before a
    crash is there after the restart. (Otherwise the session resumes with Session Present 1 but without the
    subscription, and the client, which has no reason to subscribe again, silently gets nothing.) Petrel is
    killed right after the SUBACK while another client keeps the store's writer busy. A race window: repeated,
    one crash per attempt."""
    b = petrel.start()
    s = h.connect(b, "sa-sub", expiry=300)
    assert h.subscribe(s, "sa/base", 1) == [1]
    p = h.connect(b, "sa-pub")
    assert h.publish(p, "sa/base", b"base", qos=1) == 0x00  # its PUBACK: the session is committed
    assert h.receive(s).fields["payload"] == b"base"
    for i in range(ATTEMPTS):
        load = h.WriteLoad(b, f"sa-sink{i}", f"sa/load{i}")
        assert h.subscribe(s, f"sa/t{i}", 1, packet_id=10 + i) == [1]

        b = petrel.restart(b, crash=True)
        load.join()
        s = h.connect(b, "sa-sub", clean=False, expiry=300)
        assert h.session_present(s) == 1
        p = h.connect(b, "sa-pub")
        assert h.publish(p, f"sa/t{i}", b"t%d" % i, qos=1) == 0x00, \
            f"attempt {i}: the subscription to sa/t{i} acknowledged before the crash is gone"
        assert h.receive(s).fields["payload"] == b"t%d" % i


def test_online_qos1_subscriber_keeps_what_it_did_not_acknowledge(petrel):
    """An online persistent QoS 1 subscriber acknowledges every message but every 20th. The store drops a
    delivery whose acknowledgement arrives before its row is committed (within the writer's batch, or while
    the writer is writing it, across batches), so most of these never reach the disk. petrel is killed
    mid-stream (SIGKILL). After the restart the subscriber resumes its session: every message the publisher
    had a PUBACK for and the subscriber had not acknowledged comes to it (again): an acknowledgement cancels
    its own delivery's row and nothing else."""
    topic = "crash/withheld"

    def withheld(payload: bytes) -> bool:
        return payload[:6].isdigit() and _number(payload) % 20 == 0

    class Subscriber(m.AsyncClient):
        def _handle(self, p: m.Packet) -> None:
            if p.type == m.PUBLISH and withheld(p.fields["payload"]):
                with self.hub.cond:  # recorded, never acknowledged
                    self.publishes.append(p)
                    self.counts[p.type] += 1
                    self.hub.cond.notify_all()
                return
            super()._handle(p)

    b = petrel.start()
    sub = h.track(Subscriber(b.port, version=5, name="withheld-sub", timeout=h.TIMEOUT))
    sub.connect("withheld-sub", clean=True, properties=h.SESSION)
    assert sub.subscribe(1, [(topic, 1)]) == [1]
    stream = h.Stream(b, "withheld-pub", topic, 1)
    stream.wait_acked(KILL_AFTER)

    b = petrel.restart(b, crash=True)
    stream.join()
    sub.wait_for(lambda: sub.closed, "the subscriber's connection to end", 3 * h.TIMEOUT)
    acked = stream.acked()
    with sub.hub.cond:
        before = {_number(p.fields["payload"]) for p in sub.publishes}
    acknowledged = {n for n in before if n % 20}
    assert any(n % 20 == 0 for n in acked), "nothing the subscriber withheld was acknowledged to the publisher"

    s = h.connect(b, "withheld-sub", clean=False, expiry=300)
    assert h.session_present(s) == 1
    h.sentinel(b, topic, b"sentinel-1")
    after = {_number(p.fields["payload"]) for p in h.receive_until(s, b"sentinel-1")[:-1]}
    lost = sorted(set(acked) - acknowledged - after)
    assert not lost, f"{len(lost)} messages acknowledged to the publisher and not by the subscriber lost: " \
        f"{lost[:20]}"
