"""The durability promise end to end: a QoS 1/2 message petrel acknowledged to a local publisher reaches the
remote broker at least once (QoS 2 to QoS 2: exactly once), whether the remote goes away in the middle of a
stream or petrel is killed (SIGKILL) while its bridge queue holds messages. The outage is short here; what
holds for seconds holds for an hour, because nothing in the path has a time limit: the queue is bounded by
count and bytes only, and the bridge's session never expires (docs/bridges.md)."""
from __future__ import annotations

import mqttraw as m
from persistence import helpers

from .conftest import TIMEOUT, bridge_toml, connected, wait_api

SESSION = [(m.SESSION_EXPIRY_INTERVAL, 3600)]


def remote_subscriber(port: int, client_id: str, topic: str, qos: int, hub: m.Hub | None = None,
                      first: bool = True) -> m.AsyncClient:
    """A v5 subscriber with a persistent session on the remote (it outlives the remote's restarts)."""
    c = helpers.track(m.AsyncClient(port, version=5, name=client_id, timeout=TIMEOUT, hub=hub))
    # Clean Start 0 even the first time: mosquitto persists no session that began with Clean Start 1.
    c.connect(client_id, clean=False, properties=SESSION)
    if first:
        assert c.subscribe(1, [(topic, qos)]) == [qos]
    return c


def numbers(publishes) -> list[int]:
    return [int(p.fields["payload"][:6]) for p in publishes if p.fields["payload"][:6].isdigit()]


def stop(stream: helpers.Stream) -> None:
    """Stops a stream whose broker is still running; waits until everything it sent was acknowledged."""
    stream._stop.set()
    stream._thread.join(3 * TIMEOUT)
    assert not stream._thread.is_alive() and stream.error is None, stream.error
    stream.wait_acked(stream.sent)


def check_delivery(acked: set[int], got: list[int], exactly_once: bool) -> int:
    """Every acknowledged message arrived; first arrivals are in publishing order; returns the duplicates."""
    missing = sorted(acked - set(got))
    assert not missing, f"{len(missing)} acknowledged messages never reached the remote subscriber: {missing[:20]}"
    firsts: list[int] = []
    seen: set[int] = set()
    for n in got:
        if n not in seen:
            seen.add(n)
            firsts.append(n)
    assert firsts == sorted(firsts), "messages of one topic arrived out of order"
    duplicates = len(got) - len(seen)
    if exactly_once:
        assert duplicates == 0, f"{duplicates} duplicates with QoS 2 end to end"
    return duplicates


def test_remote_stopped_in_a_qos1_stream_and_restarted(make_broker, mosquitto):
    remote = mosquitto("allow_anonymous true")
    hub = m.Hub()
    sub = remote_subscriber(remote.port, "cloud-app", "edge/#", 1, hub)
    b = make_broker(bridge_toml("cloud", remote.port, forward=[("sensors/#", "edge/", 1)], session_expiry=3600))
    connected(b, "cloud")
    stream = helpers.Stream(b, "device", "sensors/s1", 1, window=32)
    stream.wait_acked(200)
    remote.stop()  # in the middle of the stream; the subscriber's session and queue are saved
    sub.wait_for(lambda: sub.closed, "the remote to go")
    # petrel goes on acknowledging: the messages wait in its bridge queue (SQLite).
    acked_before = len(stream.acked())
    stream.wait_acked(acked_before + 300)
    status = wait_api(b, "cloud", lambda s: not s["connected"] and s["queued"] > 0, "messages queued while down")
    assert status["state"] in ("waiting", "connecting") and status["last_error"]
    remote.start()
    connected(b, "cloud", 2)
    stream.wait_acked(len(stream.acked()) + 100)
    stop(stream)
    helpers.sentinel(b, "sensors/s1", b"999999")
    sub2 = remote_subscriber(remote.port, "cloud-app", "edge/#", 1, hub, first=False)
    sub2.wait_for(lambda: any(p.fields["payload"] == b"999999" for p in sub2.publishes), "the sentinel", 6 * TIMEOUT)
    got = numbers(sub.received() + sub2.received())
    dups = check_delivery(set(stream.acked()), [n for n in got if n != 999999], exactly_once=False)
    status = wait_api(b, "cloud", lambda s: s["queued"] == 0 and s["inflight"] == 0, "the queue drained")
    print(f"acked {len(stream.acked())}, received {len(got)}, duplicates {dups}, resent {status['resent']}")
    assert status["dropped"] == 0 and status["connects"] == 2


def test_petrel_killed_while_its_queue_holds_messages(make_broker, mosquitto, petrel_restart):
    remote = mosquitto("allow_anonymous true")
    hub = m.Hub()
    sub = remote_subscriber(remote.port, "cloud-app", "edge/#", 1, hub)
    remote.stop()
    sub.wait_for(lambda: sub.closed, "the remote to go")
    config = bridge_toml("cloud", remote.port, forward=[("sensors/#", "edge/", 1)], session_expiry=3600)
    b = make_broker(config)
    stream = helpers.Stream(b, "device", "sensors/s1", 1, window=32, limit=500)
    stream.wait_acked(500)
    acked = set(stream.acked())
    assert wait_api(b, "cloud", lambda s: s["queued"] == 500, "500 queued")["dropped"] == 0
    b2 = petrel_restart(b, config, crash=True)
    summary = helpers.store_summary(b2)
    assert summary["queued"] + summary["inflight"] >= 500, summary
    # Logged just after the store's line: wait for it rather than read the log once.
    b2.wait_log("bridge 'cloud': local session '$bridge/cloud' resumed (500 queued")
    remote.start()
    connected(b2, "cloud")
    helpers.sentinel(b2, "sensors/s1", b"999999")
    sub2 = remote_subscriber(remote.port, "cloud-app", "edge/#", 1, hub, first=False)
    sub2.wait_for(lambda: any(p.fields["payload"] == b"999999" for p in sub2.publishes), "the sentinel", 6 * TIMEOUT)
    check_delivery(acked, [n for n in numbers(sub2.received()) if n != 999999], exactly_once=False)
    wait_api(b2, "cloud", lambda s: s["queued"] == 0 and s["inflight"] == 0, "the queue drained")


def test_qos2_to_qos2_exactly_once_across_sigkill(make_broker, mosquitto, petrel_restart):
    """SIGKILL while QoS 2 deliveries are in flight to the remote: after the restart they are sent again with
    the same packet ids (the remote, which kept its session, knows them), so nothing arrives twice."""
    remote = mosquitto("allow_anonymous true")
    hub = m.Hub()
    sub = remote_subscriber(remote.port, "cloud-app", "edge/#", 2, hub)
    config = bridge_toml("cloud", remote.port, forward=[("sensors/#", "edge/", 2)], session_expiry=3600)
    b = make_broker(config)
    connected(b, "cloud")
    stream = helpers.Stream(b, "device", "sensors/s1", 2, window=32)
    stream.wait_acked(300)
    b2 = petrel_restart(b, config, crash=True)
    stream.join()
    acked = set(stream.acked())
    connected(b2, "cloud")
    helpers.sentinel(b2, "sensors/s1", b"999999", qos=2)
    sub.wait_for(lambda: any(p.fields["payload"] == b"999999" for p in sub.publishes), "the sentinel", 6 * TIMEOUT)
    got = [n for n in numbers(sub.received()) if n != 999999]
    check_delivery(acked, got, exactly_once=True)
    assert not sub.errors, sub.errors
    wait_api(b2, "cloud", lambda s: s["queued"] == 0 and s["inflight"] == 0, "the queue drained")
