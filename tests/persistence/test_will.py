"""The will of a persistent session is stored with its delay: one still pending when petrel stops is
published after the restart once the rest of its delay has passed (or when its session ends, if that comes
first, even while petrel is down), and not before."""
from __future__ import annotations

import time

import mqttraw as m

from . import helpers as h


def _watcher(b, clean: bool):
    """A persistent v5 session subscribed to will/# (QoS 1): wills published while it is offline wait for it."""
    w = h.connect(b, "wl-watch", clean=clean, expiry=300)
    if clean:
        assert h.subscribe(w, "will/#", 1) == [1]
    return w


def _dropped_with_will(b, client_id: str, expiry: int, delay: int) -> float:
    """A v5 client with a will (QoS 1) delayed by `delay` s whose connection ends without DISCONNECT; returns
    once petrel has seen it end, the time.monotonic() just before the connection was closed (no will delay can
    have started earlier)."""
    c = h.connect(b, client_id, expiry=expiry, will_topic=f"will/{client_id}", will_payload=b"gone-" +
                  client_id.encode(), will_qos=1, will_properties=[(m.WILL_DELAY_INTERVAL, delay)])
    closing = time.monotonic()
    c.close()
    b.wait_log(f"client disconnected: id={client_id} ")
    return closing


def test_delayed_will_published_after_restart(petrel):
    """Two sessions (Session Expiry 120) drop their connections with wills delayed 3 s and 60 s; petrel is
    stopped at once and restarted. Neither will has been published by the restart; the 3 s one arrives once
    its delay has passed, counted from the drop, not before; the 60 s one does not, and its session resuming
    after the restart cancels it."""
    b = petrel.start()
    w = _watcher(b, clean=True)
    dropped = _dropped_with_will(b, "wl-3s", expiry=120, delay=3)
    _dropped_with_will(b, "wl-60s", expiry=120, delay=60)
    h.leave(w)

    b = petrel.restart(b)
    assert time.monotonic() < dropped + 3, "petrel took longer to restart than the will delay"
    assert h.store_summary(b)["sessions"] == 3
    w = _watcher(b, clean=False)
    assert h.session_present(w) == 1
    h.sentinel(b, "will/sentinel", b"s1")
    assert [g.fields["payload"] for g in h.receive_until(w, b"s1")] == [b"s1"], "a will was published early"
    will = h.receive(w, timeout=3 + h.TIMEOUT)
    arrived = time.monotonic()
    assert (will.fields["topic"], will.fields["payload"]) == ("will/wl-3s", b"gone-wl-3s")
    assert arrived >= dropped + 3, f"will published {arrived - dropped:.2f} s after the drop, not 3 s"

    c = h.connect(b, "wl-60s", clean=False, expiry=120)
    assert h.session_present(c) == 1
    h.leave(c)
    h.sentinel(b, "will/sentinel", b"s2")
    assert [g.fields["payload"] for g in h.receive_until(w, b"s2")] == [b"s2"]


def test_will_of_session_expired_while_down_published_at_restart(petrel):
    """A session with Session Expiry 2 s and a will delayed 60 s drops its connection; petrel is stopped and
    started again after the 2 s: the session ended while petrel was down, so its will is due and published at
    the restart (and the log counts the dropped session)."""
    b = petrel.start()
    w = _watcher(b, clean=True)
    h.leave(w)
    before = time.time()
    _dropped_with_will(b, "wl-exp", expiry=2, delay=60)
    after = time.time()  # the session's 2 s started in between

    def down():
        assert time.time() < before + 2, "petrel took longer to stop than the session expiry"
        h.wait_until(after + 2.2)

    b = petrel.restart(b, while_down=down)
    assert h.store_summary(b)["dropped_sessions"] == 1
    w = _watcher(b, clean=False)
    will = h.receive(w)
    assert (will.fields["topic"], will.fields["payload"]) == ("will/wl-exp", b"gone-wl-exp")
