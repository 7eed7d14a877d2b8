"""Times are absolute in the store: session expiry and message expiry keep counting while petrel is down.
Here letting wall-clock time pass while the broker is stopped is the point, so these tests wait (bounded)
for the clock rather than for an event."""
from __future__ import annotations

import time

import mqttraw as m

from . import helpers as h

SHORT = 2  # seconds: expires while petrel is down
LONG = 60  # seconds: does not


def test_session_expires_while_down(petrel):
    """A v5 session with Session Expiry 2 s disconnects; petrel is stopped before the 2 s are up and started
    again after: the log counts 1 session dropped, the session is gone (Session Present 0, its subscription
    with it). A session with Session Expiry 60 stopped alongside it survives."""
    b = petrel.start()
    short = h.connect(b, "ex-short", expiry=SHORT)
    assert h.subscribe(short, "ex/short", 1) == [1]
    long_ = h.connect(b, "ex-long", expiry=LONG)
    assert h.subscribe(long_, "ex/long", 1) == [1]
    h.leave(long_)
    before = time.time()
    h.leave(short)
    after = time.time()  # the session's 2 s started in between

    def down():
        assert time.time() < before + SHORT, "petrel took longer to stop than the session expiry"
        h.wait_until(after + SHORT + 0.2)

    b = petrel.restart(b, while_down=down)
    summary = h.store_summary(b)
    assert (summary["dropped_sessions"], summary["sessions"], summary["subscriptions"]) == (1, 1, 1)
    p = h.connect(b, "ex-pub")
    assert h.publish(p, "ex/short", b"x", qos=1, packet_id=1) == 0x10
    assert h.publish(p, "ex/long", b"y", qos=1, packet_id=2) == 0x00
    assert h.session_present(h.connect(b, "ex-short", clean=False, expiry=SHORT)) == 0
    s = h.connect(b, "ex-long", clean=False, expiry=LONG)
    assert h.session_present(s) == 1
    assert h.receive(s).fields["payload"] == b"y"


def test_messages_expire_while_down(petrel):
    """Message Expiry Interval 2 s on a QoS 1 message queued for an offline persistent session and on a
    retained message: after a restart that comes once they expired, both are gone (the log counts the queued
    one as dropped). The same with expiry 60 survive, delivered with a Message Expiry Interval below 60 (the
    time they were held, including the time petrel was down, is subtracted)."""
    b = petrel.start()
    s = h.connect(b, "me-sub", expiry=300)
    assert h.subscribe(s, "me/q", 1) == [1]
    h.leave(s)
    p = h.connect(b, "me-pub")
    assert h.publish(p, "me/q", b"short", qos=1, packet_id=1, properties=[(m.MESSAGE_EXPIRY_INTERVAL, SHORT)]) == 0
    assert h.publish(p, "me/q", b"long", qos=1, packet_id=2, properties=[(m.MESSAGE_EXPIRY_INTERVAL, LONG)]) == 0
    assert h.publish(p, "me/r/short", b"short", qos=1, packet_id=3, retain=True,
                     properties=[(m.MESSAGE_EXPIRY_INTERVAL, SHORT)]) == 0x10
    assert h.publish(p, "me/r/long", b"long", qos=1, packet_id=4, retain=True,
                     properties=[(m.MESSAGE_EXPIRY_INTERVAL, LONG)]) == 0x10
    published = time.time()

    b = petrel.restart(b, while_down=lambda: h.wait_until(published + SHORT + 0.2))
    summary = h.store_summary(b)
    # The queued message is counted as dropped (whether the retained one is counted too, the log line
    # does not say).
    assert summary["dropped_messages"] >= 1
    assert (summary["queued"], summary["retained"]) == (1, 1)
    s = h.connect(b, "me-sub", clean=False, expiry=300)
    assert h.session_present(s) == 1
    h.sentinel(b, "me/q", b"end-q")
    got = h.receive_until(s, b"end-q")
    assert [g.fields["payload"] for g in got] == [b"long", b"end-q"]
    assert 0 < got[0].fields["props"][m.MESSAGE_EXPIRY_INTERVAL] <= LONG - SHORT

    assert h.subscribe(s, "me/r/+", 1, packet_id=5) == [1]
    h.sentinel(b, "me/r/end", b"end-r")
    got = h.receive_until(s, b"end-r")
    assert [(g.fields["topic"], g.fields["retain"]) for g in got[:-1]] == [("me/r/long", True)]
    assert 0 < got[0].fields["props"][m.MESSAGE_EXPIRY_INTERVAL] <= LONG - SHORT


def test_inflight_qos2_completes_though_expired_while_down(petrel):
    """[MQTT-4.3.3-7] Message expiry does not apply once a QoS 2 PUBLISH was sent: after a restart that comes
    when their Message Expiry Interval (2 s) has passed, petrel still finishes the flows in flight - PUBREL
    for the message the subscriber had sent PUBREC for, the PUBLISH again (DUP=1, same identifier) for the one
    it had not - as it does on a reconnect without a restart. (Dropping them would also let petrel reuse a
    packet identifier the subscriber still holds awaiting PUBREL, and the new message would be taken for a
    retransmission and lost.)"""
    b = petrel.start()
    s = h.connect(b, "ei-sub", expiry=300)
    assert h.subscribe(s, "ei/#", 2) == [2]
    p = h.connect(b, "ei-pub")
    expiry = [(m.MESSAGE_EXPIRY_INTERVAL, SHORT)]
    assert h.publish(p, "ei/rel", b"rel", qos=2, packet_id=1, properties=expiry) == 0x00
    assert h.publish(p, "ei/rec", b"rec", qos=2, packet_id=2, properties=expiry) == 0x00
    published = time.time()
    first, second = s.expect(m.PUBLISH), s.expect(m.PUBLISH)
    assert (first.fields["payload"], second.fields["payload"]) == (b"rel", b"rec")
    s.send(m.ack(m.PUBREC, first.fields["packet_id"]))
    assert s.expect(m.PUBREL).fields["packet_id"] == first.fields["packet_id"]

    b = petrel.restart(b, while_down=lambda: h.wait_until(published + SHORT + 0.2))
    summary = h.store_summary(b)
    assert (summary["inflight"], summary["dropped_messages"]) == (2, 0), \
        f"the two QoS 2 messages in flight were not restored as such: {summary}"
    s = h.connect(b, "ei-sub", clean=False, expiry=300)
    assert h.session_present(s) == 1
    rel, pub = s.recv(), s.recv()
    assert (rel.type, rel.fields["packet_id"]) == (m.PUBREL, first.fields["packet_id"]), rel
    assert pub.type == m.PUBLISH, pub
    assert (pub.fields["packet_id"], pub.fields["dup"], pub.fields["payload"]) == \
        (second.fields["packet_id"], True, b"rec")
