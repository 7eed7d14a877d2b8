"""A message queued for many offline persistent sessions is stored once, on disk and in memory, also after a
crash and a restart; its row goes when no session needs it any more (issue 16, docs/persistence.md).

What is shared is checked through the store's own numbers (the start-up line counts distinct messages,
$SYS/broker/store/messages the messages on disk) and through memory: 200 sessions with two 64 KiB messages
each would take 25 MiB more after the restart if every delivery had its own copy."""
from __future__ import annotations

import sqlite3
import time

import mqttraw as m

from . import helpers as h

SESSIONS = 200
PAYLOAD = 64 * 1024
MESSAGES = 2
SYS = "[sys]\ninterval = 1\n"


def _rss(b) -> int:
    with open(f"/proc/{b.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _stored_messages(b, done) -> int:
    """$SYS/broker/store/messages, once `done(value)` holds (it is published every second; the last value
    seen after a few seconds otherwise)."""
    c = h.connect(b, "share-sys")
    assert h.subscribe(c, "$SYS/broker/store/messages", 0) == [0]
    deadline = time.monotonic() + 3 * h.TIMEOUT
    while True:
        value = int(h.receive(c).fields["payload"])
        if done(value) or time.monotonic() > deadline:
            h.leave(c)
            return value


def test_fanout_stored_once_and_shared_after_crash(petrel):
    b = petrel.start(SYS)
    for i in range(SESSIONS):
        s = h.connect(b, f"share-{i:03d}", expiry=300)
        assert h.subscribe(s, "share/cmd", 1) == [1]
        h.leave(s)
    p = h.connect(b, "share-pub")
    payloads = [bytes([0x41 + n]) * PAYLOAD for n in range(MESSAGES)]
    for n, payload in enumerate(payloads, 1):
        assert h.publish(p, "share/cmd", payload, qos=1, packet_id=n) == 0x00
    assert _stored_messages(b, lambda v: v == MESSAGES) == MESSAGES
    before = _rss(b)

    b = petrel.restart(b, crash=True)
    summary = h.store_summary(b)
    assert (summary["sessions"], summary["queued"], summary["inflight"], summary["distinct"]) == \
        (SESSIONS, SESSIONS * MESSAGES, 0, MESSAGES), summary
    after = _rss(b)
    copies = SESSIONS * MESSAGES * PAYLOAD
    assert after < before + copies // 2, \
        f"RSS {after / 1048576:.1f} MiB after the restart, {before / 1048576:.1f} MiB before the kill: " \
        f"the deliveries do not share their messages"
    assert _stored_messages(b, lambda v: True) == MESSAGES

    # Every session but the last takes its messages: the rows stay, the last one still needs them.
    for i in range(SESSIONS):
        if i == SESSIONS - 1:
            assert _stored_messages(b, lambda v: True) == MESSAGES
        s = h.connect(b, f"share-{i:03d}", clean=False, expiry=300)
        assert h.session_present(s) == 1
        got = [h.receive(s) for _ in range(MESSAGES)]
        assert [g.fields["payload"] for g in got] == payloads
        for g in got:
            s.send(m.ack(m.PUBACK, g.fields["packet_id"]))
        h.leave(s)
    assert _stored_messages(b, lambda v: v == 0) == 0
    assert b.stop() == 0
    con = sqlite3.connect(b.db_path)
    assert con.execute("SELECT count(*) FROM messages").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)
    con.close()
