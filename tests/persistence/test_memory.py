"""[store] type = "memory": nothing survives a restart, and no database file is made."""
from __future__ import annotations

import os

from . import helpers as h

CONFIG = '[store]\ntype = "memory"\n'


def test_memory_store_keeps_nothing(petrel, tmp_path):
    """With the memory store a retained message, a persistent v5 session (its subscription and a queued
    QoS 1 message) and a 3.1.1 Clean Session 0 session are all gone after a restart; no database file
    appears, neither in the test's directory nor in petrel's working directory."""
    cwd_db = os.path.abspath("petrel.db")
    cwd_had_db = os.path.exists(cwd_db)
    b = petrel.start(CONFIG)
    b.wait_log("store: memory only")
    s5 = h.connect(b, "mem-v5", expiry=300)
    assert h.subscribe(s5, "mem/t", 1) == [1]
    h.leave(s5)
    s3 = h.connect(b, "mem-v3", version=4, clean=False)
    assert h.subscribe(s3, [("mem/t", 1)]) == [1]
    h.leave(s3)
    p = h.connect(b, "mem-pub")
    assert h.publish(p, "mem/t", b"queued", qos=1, packet_id=1) == 0x00
    assert h.publish(p, "mem/r", b"retained", qos=1, packet_id=2, retain=True) == 0x10

    b = petrel.restart(b)
    assert "restored" not in b.log_text()
    p = h.connect(b, "mem-pub")
    assert h.publish(p, "mem/t", b"x", qos=1, packet_id=1) == 0x10
    assert h.session_present(h.connect(b, "mem-v5", clean=False, expiry=300)) == 0
    assert h.session_present(h.connect(b, "mem-v3", version=4, clean=False)) == 0
    s = h.connect(b, "mem-rsub")
    assert h.subscribe(s, "mem/#", 1) == [1]
    h.sentinel(b, "mem/end", b"end")
    assert [g.fields["payload"] for g in h.receive_until(s, b"end")] == [b"end"]
    assert [f for f in os.listdir(tmp_path) if ".db" in f] == []
    assert cwd_had_db or not os.path.exists(cwd_db)
