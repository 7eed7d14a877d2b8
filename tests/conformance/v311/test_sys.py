"""$SYS topics (petrel behaviour; MQTT 3.1.1 section 4.7.2 for '$' matching). [sys] interval = 1 s."""
import time

import pytest

import mqttraw as m

from .helpers import TIMEOUT, connected, disconnect, drop, expect_publish, publish_acked, subscribe, subscriber

SYS = "[sys]\ninterval = 1\n"
DOCUMENTED = ["version", "uptime", "clients/connected", "clients/total", "messages/received", "messages/sent",
              "publish/messages/received", "publish/messages/sent", "publish/messages/dropped", "bytes/received",
              "bytes/sent", "subscriptions/count", "retained messages/count"]


@pytest.fixture
def sys_broker(make_broker):
    return make_broker(SYS)


def next_live(c: m.RawClient, topic: str, timeout: float = 3.0) -> m.Packet:
    """The next non-retained (periodic) PUBLISH on `topic`; other $SYS messages are skipped."""
    deadline = time.monotonic() + timeout
    while True:
        p = c.expect(m.PUBLISH, max(0.01, deadline - time.monotonic()))
        if p.fields["topic"] == topic and not p.fields["retain"]:
            return p


def test_sys_version_starts_with_petrel(sys_broker):
    """$SYS/broker/version is retained and starts with "petrel"."""
    c = subscriber(sys_broker, "sy1", [("$SYS/broker/version", 0)])
    p = expect_publish(c, "$SYS/broker/version")
    assert p.fields["retain"] is True
    assert p.fields["payload"].startswith(b"petrel"), p


def test_sys_clients_connected_is_a_number(sys_broker):
    """$SYS/broker/clients/connected is a decimal number; its next periodic value counts this client."""
    c = subscriber(sys_broker, "sy2", [("$SYS/broker/clients/connected", 0)])
    p = expect_publish(c, "$SYS/broker/clients/connected")
    assert p.fields["payload"].isdigit(), p
    live = next_live(c, "$SYS/broker/clients/connected")
    assert live.fields["payload"].isdigit() and int(live.fields["payload"]) >= 1, live


def test_sys_uptime_published_every_interval(sys_broker):
    """$SYS/broker/uptime ("<n> seconds") is republished every [sys] interval (1 s), not decreasing."""
    c = subscriber(sys_broker, "sy3", [("$SYS/broker/uptime", 0)])
    first = expect_publish(c, "$SYS/broker/uptime")
    live = next_live(c, "$SYS/broker/uptime")

    def seconds(p):
        value, unit = p.fields["payload"].split(b" ")
        assert unit == b"seconds", p
        return int(value)

    assert seconds(live) >= seconds(first)


def test_sys_all_documented_topics_published(sys_broker):
    """Every documented $SYS/broker/... topic is published (retained, so a new "$SYS/#" subscriber gets it)."""
    c = subscriber(sys_broker, "sy4", [("$SYS/#", 0)])
    seen = set()
    deadline = time.monotonic() + TIMEOUT
    wanted = {"$SYS/broker/" + t for t in DOCUMENTED}
    while not wanted <= seen:
        p = c.expect(m.PUBLISH, max(0.01, deadline - time.monotonic()))
        seen.add(p.fields["topic"])
    assert wanted <= seen


def test_sys_not_matched_by_hash(sys_broker):
    """[MQTT-4.7.2-1] "#" does not match $SYS topics: when a "$SYS/broker/uptime" subscriber gets a periodic
    value, the "#" subscriber got nothing before a marker published afterwards."""
    everything = subscriber(sys_broker, "sy5-all", [("#", 0)])
    watcher = subscriber(sys_broker, "sy5-w", [("$SYS/broker/uptime", 0)])
    expect_publish(watcher, "$SYS/broker/uptime")  # retained
    next_live(watcher, "$SYS/broker/uptime")
    pub = connected(sys_broker, "sy5-p")
    publish_acked(pub, "sy5/marker", b"marker", qos=1, packet_id=1)
    p = everything.recv()
    assert p.fields.get("topic") == "sy5/marker", p


def test_client_publish_to_sys_acknowledged_but_not_routed(sys_broker):
    """petrel: a client's PUBLISH to "$SYS/..." is acknowledged but neither routed nor retained."""
    c = subscriber(sys_broker, "sy6", [("$SYS/sy6/#", 0), ("$SYS/broker/uptime", 0)])
    expect_publish(c, "$SYS/broker/uptime")  # retained
    pub = connected(sys_broker, "sy6-p")
    publish_acked(pub, "$SYS/sy6/fake", b"forged", qos=1, packet_id=1, retain=True)
    # Two periodic uptime values later, anything routed for the forged PUBLISH would have arrived.
    for _ in range(2):
        p = c.expect(m.PUBLISH)
        assert p.fields["topic"] == "$SYS/broker/uptime", p
    late = connected(sys_broker, "sy6-late")
    assert subscribe(late, [("$SYS/sy6/#", 0), ("$SYS/broker/version", 0)]) == [0, 0]
    p = late.expect(m.PUBLISH)
    assert p.fields["topic"] == "$SYS/broker/version", p


def test_sys_disabled_with_interval_0(make_broker):
    """[sys] interval = 0 disables $SYS: nothing is retained under $SYS (a later retained marker is the first
    message the subscriber gets)."""
    broker = make_broker("[sys]\ninterval = 0\n")
    pub = connected(broker, "sy7-p")
    publish_acked(pub, "sy7/marker", b"marker", qos=1, packet_id=1, retain=True)
    c = connected(broker, "sy7")
    assert subscribe(c, [("$SYS/#", 0)]) == [0]
    assert subscribe(c, [("sy7/marker", 0)], packet_id=2) == [0]
    p = c.recv()
    assert p.fields.get("topic") == "sy7/marker", p


def test_sys_clients_connected_after_takeover(sys_broker):
    """$SYS/broker/clients/connected counts connections: after a takeover of client "sy8" by a new connection,
    2 are connected (the watcher and the new "sy8"), not 3."""
    watcher = subscriber(sys_broker, "sy8-w", [("$SYS/broker/clients/connected", 0)])
    expect_publish(watcher, "$SYS/broker/clients/connected")  # retained
    old = connected(sys_broker, "sy8")
    new = connected(sys_broker, "sy8")
    old.expect_closed()
    # The first periodic value may predate the takeover; the one after it cannot.
    next_live(watcher, "$SYS/broker/clients/connected")
    p = next_live(watcher, "$SYS/broker/clients/connected")
    assert p.fields["payload"] == b"2", p
    new.send(m.pingreq())
    new.expect(m.PINGRESP)


def test_sys_clients_connected_after_disconnects(sys_broker):
    """$SYS/broker/clients/connected goes down when clients disconnect: watcher + 3 clients, 2 of which
    disconnect (one normally, one abnormally) -> 2."""
    watcher = subscriber(sys_broker, "sy9-w", [("$SYS/broker/clients/connected", 0)])
    expect_publish(watcher, "$SYS/broker/clients/connected")  # retained
    a = connected(sys_broker, "sy9-a")
    b = connected(sys_broker, "sy9-b")
    connected(sys_broker, "sy9-c")
    disconnect(sys_broker, a, "sy9-a")
    drop(sys_broker, b, "sy9-b")
    next_live(watcher, "$SYS/broker/clients/connected")
    p = next_live(watcher, "$SYS/broker/clients/connected")
    assert p.fields["payload"] == b"2", p


def test_sys_subscriptions_count(sys_broker):
    """$SYS/broker/subscriptions/count counts subscriptions: the watcher's 1 + 3 - 1 unsubscribed = 3."""
    watcher = subscriber(sys_broker, "sy10-w", [("$SYS/broker/subscriptions/count", 0)])
    expect_publish(watcher, "$SYS/broker/subscriptions/count")  # retained
    c = subscriber(sys_broker, "sy10", [("sy10/a", 0), ("sy10/b/#", 1), ("$share/g/sy10/c", 2)])
    c.send(m.unsubscribe(2, ["sy10/a"]))
    c.expect(m.UNSUBACK)
    next_live(watcher, "$SYS/broker/subscriptions/count")
    p = next_live(watcher, "$SYS/broker/subscriptions/count")
    assert p.fields["payload"] == b"3", p
