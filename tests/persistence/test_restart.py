"""What the durable store (the default, [store] type = "sqlite") keeps across a restart: retained messages
with their properties, and persistent sessions (MQTT 5 Session Expiry > 0, MQTT 3.1.1 Clean Session 0) with
their subscriptions (options, subscription identifiers) and the QoS 1/2 messages queued for them. Clean
sessions are not kept. Each test runs after a graceful stop (SIGTERM) and, where the store must hold what
was acknowledged, after a crash (SIGKILL)."""
from __future__ import annotations

import pytest

import mqttraw as m

from . import helpers as h

NO_LOCAL, RETAIN_AS_PUBLISHED = 0x04, 0x08
STOPS = pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])

RICH_PROPS = [
    (m.PAYLOAD_FORMAT_INDICATOR, 1),
    (m.CONTENT_TYPE, "application/json; charset=utf-8"),
    (m.RESPONSE_TOPIC, "rt/reply"),
    (m.CORRELATION_DATA, b"\x00\x01corr\xff"),
    (m.USER_PROPERTY, ("k", "v1")),
    (m.USER_PROPERTY, ("a", "b")),
    (m.USER_PROPERTY, ("k", "v2")),
]


def _retained(b, client_id: str, filt: str, end: bytes) -> dict[str, m.Packet]:
    """Subscribes `client_id` (clean) to `filt` at QoS 2 and returns the retained messages it gets, by topic
    (a sentinel published on `end` afterwards marks the end)."""
    s = h.connect(b, client_id)
    assert h.subscribe(s, filt, 2) == [2]
    h.sentinel(b, end, b"end-" + client_id.encode())
    got = h.receive_until(s, b"end-" + client_id.encode())
    h.leave(s)
    assert all(p.fields["retain"] for p in got[:-1]), got
    return {p.fields["topic"]: p for p in got[:-1]}


@STOPS
def test_retained_messages_survive(petrel, crash):
    """Retained messages (v5 with Content Type, Payload Format Indicator, Response Topic, Correlation Data and
    repeated User Properties in order; 3.1.1 at QoS 2) come back with payload, QoS and properties; a retained
    message deleted by an empty payload before the stop stays deleted."""
    b = petrel.start()
    p5 = h.connect(b, "rt-pub5")
    assert h.publish(p5, "rt/v5", b'{"v": 1}', qos=1, retain=True, properties=RICH_PROPS) == 0x10
    assert h.publish(p5, "rt/gone", b"doomed", qos=1, packet_id=2, retain=True) == 0x10
    assert h.publish(p5, "rt/gone", b"", qos=1, packet_id=3, retain=True) == 0x10
    p3 = h.connect(b, "rt-pub3", version=4)
    h.publish(p3, "rt/v311", b"plain", qos=2, retain=True)

    b = petrel.restart(b, crash=crash)
    assert h.store_summary(b)["retained"] == 2
    got = _retained(b, "rt-sub", "rt/#", "rt/end")
    assert sorted(got) == ["rt/v311", "rt/v5"]
    v5 = got["rt/v5"].fields
    assert (v5["payload"], v5["qos"]) == (b'{"v": 1}', 1)
    props = v5["props"]
    assert props[m.PAYLOAD_FORMAT_INDICATOR] == 1
    assert props[m.CONTENT_TYPE] == "application/json; charset=utf-8"
    assert props[m.RESPONSE_TOPIC] == "rt/reply"
    assert props[m.CORRELATION_DATA] == b"\x00\x01corr\xff"
    assert props[m.USER_PROPERTY] == [("k", "v1"), ("a", "b"), ("k", "v2")]
    v311 = got["rt/v311"].fields
    assert (v311["payload"], v311["qos"], v311["props"]) == (b"plain", 2, {})


@STOPS
def test_retained_delete_survives(petrel, crash):
    """A retained message stored by an earlier run and deleted (empty payload, QoS 1) in this one stays
    deleted after the next restart."""
    b = petrel.start()
    p = h.connect(b, "rd-pub")
    assert h.publish(p, "rd/x", b"old", qos=1, retain=True) == 0x10
    b = petrel.restart(b)
    assert h.store_summary(b)["retained"] == 1
    assert sorted(_retained(b, "rd-sub1", "rd/#", "rd/end")) == ["rd/x"]
    p = h.connect(b, "rd-pub")
    assert h.publish(p, "rd/x", b"", qos=1, retain=True) == 0x10

    b = petrel.restart(b, crash=crash)
    assert h.store_summary(b)["retained"] == 0
    assert _retained(b, "rd-sub2", "rd/#", "rd/end") == {}


@STOPS
def test_v5_session_restored(petrel, crash):
    """A v5 session with Session Expiry 300: its subscriptions (QoS 2 + No Local with subscription identifier
    17, QoS 1 + Retain As Published with identifier 42; one unsubscribed before the stop) and the QoS 1 and
    QoS 2 messages queued while it was offline survive: Session Present 1, the queued messages arrive with
    their identifiers and options applied, and messages published after the restart arrive without a new
    SUBSCRIBE."""
    b = petrel.start()
    s = h.connect(b, "rs5-sub", expiry=300)
    assert h.subscribe(s, "rs5/a/#", 2 | NO_LOCAL, packet_id=1, properties=[(m.SUBSCRIPTION_IDENTIFIER, 17)]) == [2]
    assert h.subscribe(s, "rs5/b", 1 | RETAIN_AS_PUBLISHED, packet_id=2,
                       properties=[(m.SUBSCRIPTION_IDENTIFIER, 42)]) == [1]
    assert h.subscribe(s, "rs5/gone", 1, packet_id=3) == [1]
    assert h.unsubscribe(s, ["rs5/gone"], packet_id=4) == [0x00]
    h.leave(s)
    p = h.connect(b, "rs5-pub")
    assert h.publish(p, "rs5/a/1", b"q2-offline", qos=2, packet_id=1) == 0x00
    assert h.publish(p, "rs5/b", b"q1-offline", qos=1, packet_id=2, retain=True) == 0x00

    b = petrel.restart(b, crash=crash)
    summary = h.store_summary(b)
    assert (summary["sessions"], summary["subscriptions"], summary["queued"], summary["inflight"]) == (1, 2, 2, 0)
    s = h.connect(b, "rs5-sub", clean=False, expiry=300)
    assert h.session_present(s) == 1
    q2, q1 = h.receive(s), h.receive(s)
    assert (q2.fields["topic"], q2.fields["payload"], q2.fields["qos"], q2.fields["retain"]) == \
        ("rs5/a/1", b"q2-offline", 2, False)
    assert q2.fields["props"][m.SUBSCRIPTION_IDENTIFIER] == [17]
    assert (q1.fields["topic"], q1.fields["payload"], q1.fields["qos"], q1.fields["retain"]) == \
        ("rs5/b", b"q1-offline", 1, True)
    assert q1.fields["props"][m.SUBSCRIPTION_IDENTIFIER] == [42]

    # No Local still applies: its own message finds no other subscriber (PUBACK 0x10 No matching subscribers).
    assert h.publish(s, "rs5/a/self", b"own", qos=1, packet_id=9) == 0x10
    # The unsubscribed filter stays unsubscribed.
    p = h.connect(b, "rs5-pub")
    assert h.publish(p, "rs5/gone", b"x", qos=1, packet_id=1) == 0x10
    assert h.publish(p, "rs5/a/2", b"after", qos=2, packet_id=2) == 0x00
    assert h.publish(p, "rs5/b", b"live", qos=1, packet_id=3) == 0x00
    a2, b2 = h.receive(s), h.receive(s)
    assert (a2.fields["payload"], a2.fields["qos"], a2.fields["props"][m.SUBSCRIPTION_IDENTIFIER]) == \
        (b"after", 2, [17])
    assert (b2.fields["payload"], b2.fields["retain"], b2.fields["props"][m.SUBSCRIPTION_IDENTIFIER]) == \
        (b"live", False, [42])


@STOPS
def test_v311_session_restored(petrel, crash):
    """A 3.1.1 session with Clean Session 0: its subscriptions and the QoS 1 and QoS 2 messages queued while it
    was offline survive; a message published after the restart, before it reconnects, is queued too; on
    reconnect Session Present is 1 and all three arrive in order at their QoS."""
    b = petrel.start()
    s = h.connect(b, "rs3-sub", version=4, clean=False)
    assert h.subscribe(s, [("rs3/one", 1), ("rs3/two/+", 2)]) == [1, 2]
    h.leave(s)
    p = h.connect(b, "rs3-pub", version=4)
    h.publish(p, "rs3/one", b"first", qos=1, packet_id=1)
    h.publish(p, "rs3/two/x", b"second", qos=2, packet_id=2)

    b = petrel.restart(b, crash=crash)
    summary = h.store_summary(b)
    assert (summary["sessions"], summary["subscriptions"], summary["queued"]) == (1, 2, 2)
    p = h.connect(b, "rs3-pub", version=4)
    h.publish(p, "rs3/two/y", b"third", qos=2, packet_id=3)
    s = h.connect(b, "rs3-sub", version=4, clean=False)
    assert h.session_present(s) == 1
    got = [h.receive(s) for _ in range(3)]
    assert [(g.fields["topic"], g.fields["payload"], g.fields["qos"]) for g in got] == \
        [("rs3/one", b"first", 1), ("rs3/two/x", b"second", 2), ("rs3/two/y", b"third", 2)]


def test_session_connected_at_crash_is_restored_offline(petrel):
    """A persistent session whose connection was open when petrel crashed counts as disconnected at the
    restart: its subscription is live (a message published before it reconnects is queued for it) and it
    resumes with Session Present 1, getting first the message that was in flight at the crash."""
    b = petrel.start()
    s5 = h.connect(b, "cc-v5", expiry=300)
    assert h.subscribe(s5, "cc/v5", 2) == [2]
    s3 = h.connect(b, "cc-v3", version=4, clean=False)
    assert h.subscribe(s3, [("cc/v3", 1)]) == [1]
    # Sent to the subscribers and left unacknowledged; their PUBACKs also mean the sessions and
    # subscriptions reported before are committed (see test_crash.py for SUBACKs).
    p = h.connect(b, "cc-pub")
    assert h.publish(p, "cc/v5", b"before", qos=1, packet_id=1) == 0x00
    assert h.publish(p, "cc/v3", b"before", qos=1, packet_id=2) == 0x00
    assert s5.expect(m.PUBLISH).fields["payload"] == b"before"
    assert s3.expect(m.PUBLISH).fields["payload"] == b"before"

    b = petrel.restart(b, crash=True)
    assert h.store_summary(b)["sessions"] == 2
    p = h.connect(b, "cc-pub")
    assert h.publish(p, "cc/v5", b"after", qos=2, packet_id=1) == 0x00
    assert h.publish(p, "cc/v3", b"after", qos=1, packet_id=2) == 0x00
    s5 = h.connect(b, "cc-v5", clean=False, expiry=300)
    s3 = h.connect(b, "cc-v3", version=4, clean=False)
    assert (h.session_present(s5), h.session_present(s3)) == (1, 1)
    assert [h.receive(s5).fields["payload"] for _ in range(2)] == [b"before", b"after"]
    assert [h.receive(s3).fields["payload"] for _ in range(2)] == [b"before", b"after"]


def test_clean_sessions_not_restored(petrel):
    """Sessions that end with their connection are not stored: v5 with Session Expiry 0 (absent), 3.1.1 with
    Clean Session 1, and a v5 session resumed with Session Expiry 0 (stored before, deleted then). After a
    restart none exists: publishes to their filters find no subscriber and reconnecting with Clean Start 0
    gets Session Present 0."""
    b = petrel.start()
    v5 = h.connect(b, "cl-v5", clean=False)
    assert h.subscribe(v5, "cl/v5", 1) == [1]
    v3 = h.connect(b, "cl-v3", version=4, clean=True)
    assert h.subscribe(v3, [("cl/v3", 1)]) == [1]
    r = h.connect(b, "cl-resumed", expiry=300)
    assert h.subscribe(r, "cl/resumed", 1) == [1]
    h.leave(r)
    r = h.connect(b, "cl-resumed", clean=False, expiry=0)
    assert h.session_present(r) == 1
    h.leave(r)

    b = petrel.restart(b)
    summary = h.store_summary(b)
    assert (summary["sessions"], summary["subscriptions"]) == (0, 0)
    p = h.connect(b, "cl-pub")
    for i, topic in enumerate(["cl/v5", "cl/v3", "cl/resumed"], 1):
        assert h.publish(p, topic, b"x", qos=1, packet_id=i) == 0x10, topic
    assert h.session_present(h.connect(b, "cl-v5", clean=False, expiry=300)) == 0
    assert h.session_present(h.connect(b, "cl-v3", version=4, clean=False)) == 0
    assert h.session_present(h.connect(b, "cl-resumed", clean=False, expiry=300)) == 0


def test_periodic_durability_commits_on_graceful_stop(petrel, tmp_path):
    """durability = "periodic" (flush_interval 200 ms): acknowledgements do not wait for commits, and a
    SIGTERM stop commits everything, so a retained message and a queued message acknowledged just before
    the stop survive."""
    db = tmp_path / "periodic.db"
    config = f'[store]\npath = "{db}"\ndurability = "periodic"\nflush_interval = 200\n'
    b = petrel.start(config)
    summary = h.store_summary(b)
    assert (summary["mode"], summary["path"]) == ("periodic", str(db))
    s = h.connect(b, "pd-sub", expiry=300)
    assert h.subscribe(s, "pd/q", 1) == [1]
    h.leave(s)
    p = h.connect(b, "pd-pub")
    assert h.publish(p, "pd/r", b"kept", qos=1, packet_id=1, retain=True) == 0x10
    assert h.publish(p, "pd/q", b"queued", qos=1, packet_id=2) == 0x00

    b = petrel.restart(b)
    summary = h.store_summary(b)
    assert (summary["mode"], summary["retained"], summary["sessions"], summary["queued"]) == ("periodic", 1, 1, 1)
    got = _retained(b, "pd-rsub", "pd/r", "pd/r")
    assert got["pd/r"].fields["payload"] == b"kept"
    s = h.connect(b, "pd-sub", clean=False, expiry=300)
    assert h.receive(s).fields["payload"] == b"queued"
