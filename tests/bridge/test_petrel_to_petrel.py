"""petrel bridged to petrel, both ways over one bridge: forward and subscribe rules on the same topics. A
message never comes back over the bridge it arrived on: v5 No Local on the remote subscription, and locally
the bridge's own session does not receive what the bridge published (its origin). With MQTT 3.1.1 (no No
Local) the remote echoes a forwarded message once; petrel publishes the echo locally and never forwards it
again (docs/bridges.md, "Loops")."""
from __future__ import annotations

import pytest

from persistence import helpers

from .conftest import bridge_status, bridge_toml, connected, wait_api


def collect(c, sentinels: set[bytes]) -> dict[str, int]:
    """Topic -> count of what `c` receives until every sentinel payload has arrived."""
    counts: dict[str, int] = {}
    pending = set(sentinels)
    while pending:
        p = helpers.receive(c)
        counts[p.fields["topic"]] = counts.get(p.fields["topic"], 0) + 1
        pending.discard(p.fields["payload"])
    return counts


@pytest.mark.parametrize("version", [5, 4])
def test_both_directions_no_loop(make_broker, version):
    remote = make_broker()
    local = make_broker(bridge_toml("peer", remote.port, version=version, forward=[("shared/#", "", 1)],
                                    subscribe=[("shared/#", "", 1)]))
    connected(local, "peer")
    wait_api(local, "peer", lambda s: s["connected"], "connected")
    on_local = helpers.connect(local, "app-local", version=version)
    on_remote = helpers.connect(remote, "app-remote", version=version)
    helpers.subscribe(on_local, "shared/#", 1)
    helpers.subscribe(on_remote, "shared/#", 1)
    # The bridge's SUBSCRIBE on the remote is in place once a message from the remote comes through.
    helpers.sentinel(remote, "shared/ready", b"ready")
    helpers.receive(on_remote)
    helpers.receive(on_local)

    helpers.sentinel(local, "shared/from-local", b"a1")
    helpers.sentinel(remote, "shared/from-remote", b"b1")
    helpers.sentinel(local, "shared/end-local", b"end-a")
    helpers.sentinel(remote, "shared/end-remote", b"end-b")
    got_local = collect(on_local, {b"end-a", b"end-b"})
    got_remote = collect(on_remote, {b"end-a", b"end-b"})
    # A second round behind the first: anything still circling would show up in the counts.
    helpers.sentinel(local, "shared/end2-local", b"end2-a")
    helpers.sentinel(remote, "shared/end2-remote", b"end2-b")
    for c, counts in ((on_local, got_local), (on_remote, got_remote)):
        for topic, n in collect(c, {b"end2-a", b"end2-b"}).items():
            counts[topic] = counts.get(topic, 0) + n
    remote_view = {t: got_remote.get(t, 0) for t in ("shared/from-local", "shared/from-remote", "shared/end-local")}
    assert remote_view == {"shared/from-local": 1, "shared/from-remote": 1, "shared/end-local": 1}, got_remote
    # forwarded: acknowledged by the remote, received: published locally; either may lag behind what the
    # subscribers saw. v5: ready + 3 from the remote; 3.1.1: and each forwarded message's echo.
    expected = (3, 4) if version == 5 else (3, 4 + 3)
    wait_api(local, "peer", lambda s: (s["forwarded"], s["received"]) == expected, f"forwarded, received {expected}")
    if version == 5:
        assert got_local == {t: 1 for t in ("shared/from-local", "shared/from-remote", "shared/end-local",
                                             "shared/end-remote", "shared/end2-local", "shared/end2-remote")}
    else:
        # 3.1.1: each forwarded message comes back once, and stops there (the last echo may still be on its way
        # to the local subscriber).
        while got_local.get("shared/end2-local", 0) < 2:
            topic = helpers.receive(on_local).fields["topic"]
            got_local[topic] = got_local.get(topic, 0) + 1
        assert got_local == {"shared/from-local": 2, "shared/end-local": 2, "shared/end2-local": 2,
                             "shared/from-remote": 1, "shared/end-remote": 1, "shared/end2-remote": 1}, got_local
        assert got_remote["shared/from-local"] == 1, got_remote
    on_local.expect_nothing(0.3)
    on_remote.expect_nothing(0.3)
    status = bridge_status(local, "peer")
    assert (status["forwarded"], status["received"]) == expected, status


def test_a_bridge_on_each_side_with_disjoint_topics(make_broker):
    """Two petrels each with a bridge to the other (docs/bridges.md, "Loops", way 2): A forwards sensors/# as
    from-a/..., B forwards commands/# as from-b/...; neither forwards what the other sent, so every message
    arrives once on each side and nothing circles (a second round of sentinels finds nothing else)."""
    from petrel_paths import free_port
    port_b = free_port()
    a = make_broker(bridge_toml("to-b", port_b, forward=[("sensors/#", "from-a/", 1)]))
    b = make_broker(bridge_toml("to-a", a.port, forward=[("commands/#", "from-b/", 1)]), port=port_b)
    connected(a, "to-b")
    connected(b, "to-a")
    on_a = helpers.connect(a, "app-a")
    on_b = helpers.connect(b, "app-b")
    helpers.subscribe(on_a, "#", 1)
    helpers.subscribe(on_b, "#", 1)
    helpers.sentinel(a, "sensors/1", b"s1")
    helpers.sentinel(b, "commands/1", b"c1")
    helpers.sentinel(a, "sensors/end", b"end-a")
    helpers.sentinel(b, "commands/end", b"end-b")
    got_a = collect(on_a, {b"end-a", b"end-b"})
    got_b = collect(on_b, {b"end-a", b"end-b"})
    helpers.sentinel(a, "sensors/end2", b"end2-a")
    helpers.sentinel(b, "commands/end2", b"end2-b")
    for c, counts in ((on_a, got_a), (on_b, got_b)):
        for topic, n in collect(c, {b"end2-a", b"end2-b"}).items():
            counts[topic] = counts.get(topic, 0) + n
    assert got_a == {t: 1 for t in ("sensors/1", "sensors/end", "sensors/end2", "from-b/commands/1",
                                     "from-b/commands/end", "from-b/commands/end2")}, got_a
    assert got_b == {t: 1 for t in ("commands/1", "commands/end", "commands/end2", "from-a/sensors/1",
                                     "from-a/sensors/end", "from-a/sensors/end2")}, got_b
    for broker, name in ((a, "to-b"), (b, "to-a")):
        wait_api(broker, name, lambda s: s["forwarded"] == 3 and s["queued"] == 0 and s["inflight"] == 0,
                 "3 forwarded")
    on_a.expect_nothing(0.3)
    on_b.expect_nothing(0.3)


def test_bridge_sessions_are_reserved(make_broker, mosquitto):
    """A network client cannot take a bridge's session (CONNACK 0x85)."""
    import mqttraw as m
    remote = mosquitto("allow_anonymous true")
    b = make_broker(bridge_toml("cloud", remote.port, forward=[("a/#", "", 1)]))
    c = helpers.raw(b, 5)
    c.send(m.connect("$bridge/cloud", version=5))
    assert c.expect(m.CONNACK).fields["reason"] == 0x85
    assert "client identifier of a bridge" in b.log_text()


def test_backlog_drains_within_the_remotes_receive_maximum(make_broker):
    """300 QoS 2 messages queued while the remote (petrel, Receive Maximum 4) is down drain in order once it is
    back, never more than 4 unacknowledged: the remote would end the bridge's connection with DISCONNECT 0x93
    (Receive Maximum exceeded) otherwise."""
    remote_config = "[mqtt]\nreceive_maximum = 4\n"
    remote = make_broker(remote_config)
    app = helpers.connect(remote, "app", expiry=3600, clean=False)
    assert helpers.subscribe(app, "s/#", 2) == [2]
    helpers.leave(app)
    local = make_broker(bridge_toml("peer", remote.port, forward=[("s/#", "", 2)]))
    connected(local, "peer")
    assert remote.stop() == 0
    stream = helpers.Stream(local, "device", "s/t", 2, window=32, limit=300)
    stream.wait_acked(300)
    wait_api(local, "peer", lambda s: s["queued"] + s["inflight"] == 300, "300 queued")
    remote = make_broker(remote_config, port=remote.port, db_path=remote.db_path)
    connected(local, "peer", 2)
    status = wait_api(local, "peer", lambda s: s["queued"] == 0 and s["inflight"] == 0, "the backlog drained")
    # One connection before the outage, one after: the window never made the remote end it.
    assert status["remote_receive_maximum"] == 4 and status["connects"] == 2 and status["dropped"] == 0, status
    app = helpers.connect(remote, "app", expiry=3600, clean=False)
    helpers.sentinel(local, "s/t", b"999999", qos=2)
    got = [int(p.fields["payload"]) for p in helpers.receive_until(app, b"999999")]
    assert got == list(range(1, 301)) + [999999], got[:20]
    assert "more QoS 2 messages in flight than Receive Maximum" not in remote.log_text()
