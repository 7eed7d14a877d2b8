"""Reconnect churn: one client id connecting and disconnecting in a loop must not grow the broker's memory.

Each cycle takes the same persistent session offline and back: the session's expiry (and, with a will whose
delay is pending, its will) are scheduled at every offline transition and replaced or cancelled at every
reconnect. The broker must hold at most one expiry and one will deadline per session, so after a warm-up the
resident set stays flat however many cycles run. The bound is in bytes per cycle, not in time: with the
defect this guards against (a timer per offline transition, never cancelled), the RSS grew by 655 bytes per
cycle without a will and 1,024 with one.

MQTT 5: Session Expiry Interval 0xFFFFFFFE (a long but finite expiry, so every offline transition schedules
one), clean start 0. MQTT 3.1.1: clean session 0, with [mqtt] max_session_expiry set so that v3 sessions
expire too (3.1.1 wills have no delay).
"""
from __future__ import annotations

import os

import pytest

import mqttraw as m

from .tools import RSS_FACTOR, rss_bytes

pytestmark = pytest.mark.timeout(120)

WARMUP = 1500
CYCLES = 5000
# Allowed growth per cycle after the warm-up (allocator noise, not retention: the defect cost 655-1,024).
BYTES_PER_CYCLE = 24


def cycle(port: int, client_id: str, version: int, with_will: bool) -> None:
    """Connects with a persistent session and leaves it offline: v5 with DISCONNECT 0x04 when a will is set
    (its delay then runs until the next connect cancels it), else a normal DISCONNECT. Returns once the
    broker has closed the connection (so it has taken the session offline)."""
    c = m.RawClient(port, version=version, timeout=5.0)
    try:
        kw: dict = {"clean": False}
        if version == 5:
            kw["properties"] = [(m.SESSION_EXPIRY_INTERVAL, 0xFFFFFFFE)]
        if with_will:
            kw.update(will_topic=f"churn/{client_id}/will", will_payload=b"gone",
                      will_properties=[(m.WILL_DELAY_INTERVAL, 3600)])
        ack = c.connect(client_id, **kw)
        assert ack.fields["reason"] == 0, f"CONNECT refused: {ack}"
        c.send(m.disconnect(0x04 if with_will else None) if version == 5 else m.disconnect())
        c.expect_closed()
    finally:
        c.close()


def run_cycles(port: int, client_id: str, version: int, with_will: bool, n: int) -> None:
    for _ in range(n):
        cycle(port, client_id, version, with_will)


@pytest.mark.parametrize("version,with_will", [(5, False), (5, True), (4, False)],
                         ids=["v5", "v5-delayed-will", "v311"])
def test_reconnect_churn_keeps_memory_flat(make_broker, version, with_will):
    # Under AddressSanitizer, freed memory waits in a quarantine (256 MB by default) that makes the RSS grow
    # whatever petrel does; a 1 MB quarantine fills during the warm-up and then stays level.
    asan = os.environ.get("ASAN_OPTIONS", "")
    b = make_broker('[mqtt]\nmax_session_expiry = 86400\n[store]\ntype = "memory"\n', threads=1,
                    env={"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=1"})
    client_id = f"churn-{version}-{int(with_will)}"
    run_cycles(b.port, client_id, version, with_will, WARMUP)
    before = rss_bytes(b.proc.pid)
    run_cycles(b.port, client_id, version, with_will, CYCLES)
    after = rss_bytes(b.proc.pid)
    growth = after - before
    bound = int(BYTES_PER_CYCLE * CYCLES * RSS_FACTOR)
    assert growth <= bound, (f"RSS grew {growth} bytes over {CYCLES} reconnect cycles "
                             f"({growth / CYCLES:.0f} bytes per cycle; bound {bound})")
    # The session survived every cycle: the last CONNECT found it.
    c = m.RawClient(b.port, version=version, timeout=5.0)
    try:
        kw: dict = {"clean": False}
        if version == 5:
            kw["properties"] = [(m.SESSION_EXPIRY_INTERVAL, 0xFFFFFFFE)]
        ack = c.connect(client_id, **kw)
        assert ack.fields["session_present"], "the persistent session was lost during the churn"
    finally:
        c.close()
