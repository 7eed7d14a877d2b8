"""A database petrel cannot use stops it at start - exit status 1, a message naming the file, saying what is
wrong and that "petrel never discards a database on its own" - and is left exactly as it was: corrupt
(garbage, truncated), another program's SQLite file, one written by a newer petrel, or one another petrel
has open."""
from __future__ import annotations

import os
import random
import shutil
import sqlite3

import pytest

from . import helpers as h

NEVER = "petrel never discards a database on its own"


def _real_db(petrel, tmp_path):
    """A petrel database with a few persistent sessions, queued messages and retained messages, closed
    cleanly (everything checkpointed into the main file). Returns its path."""
    b = petrel.start()
    for i in range(3):
        s = h.connect(b, f"cr-sub{i}", expiry=300)
        assert h.subscribe(s, f"cr/{i}/#", 2) == [2]
        h.leave(s)
    p = h.connect(b, "cr-pub")
    rng = random.Random(7)
    for n in range(1, 61):
        assert h.publish(p, f"cr/{n % 3}/m", rng.randbytes(1000), qos=1, packet_id=n) == 0x00
    for n in range(5):
        h.publish(p, f"cr/retained/{n}", b"r%d" % n, qos=1, packet_id=100 + n, retain=True)
    rc = b.stop()
    assert rc == 0
    assert not os.path.exists(f"{b.db_path}-wal"), "the WAL was not checkpointed at the stop"
    return b.db_path


def _refused(tmp_path, db, reason_words: tuple[str, ...]) -> str:
    """petrel refuses `db`: exit 1, the documented message with one of `reason_words`; the file and its
    directory are as they were."""
    before = h.sha256(db)
    siblings = sorted(os.listdir(db.parent))
    rc, out = h.run_refused(tmp_path, db)
    assert rc == 1, f"exit status {rc}:\n{out[-3000:]}"
    assert f"store '{db}':" in out, out[-3000:]
    assert NEVER in out, out[-3000:]
    assert any(w in out for w in reason_words), f"none of {reason_words} in:\n{out[-3000:]}"
    assert h.sha256(db) == before, "petrel changed the database it refused"
    new = [f for f in sorted(os.listdir(db.parent)) if f not in siblings and not f.startswith("refused-")]
    assert new == [], f"petrel left files beside the database it refused: {new}"
    return out


def test_garbage(tmp_path):
    """A file of random bytes (with and without SQLite's magic header)."""
    rng = random.Random(1)
    plain = tmp_path / "garbage.db"
    plain.write_bytes(rng.randbytes(16384))
    _refused(tmp_path, plain, ("corrupt", "not a database", "malformed"))
    magic = tmp_path / "garbage-magic.db"
    magic.write_bytes(b"SQLite format 3\x00" + rng.randbytes(16384))
    _refused(tmp_path, magic, ("corrupt", "not a database", "malformed"))


def test_truncated(petrel, tmp_path):
    """The first half of a real petrel database (sessions, queued and retained messages)."""
    real = _real_db(petrel, tmp_path)
    data = real.read_bytes()
    assert len(data) >= 8 * 4096, len(data)
    half = tmp_path / "half.db"
    half.write_bytes(data[: len(data) // 2])
    _refused(tmp_path, half, ("corrupt", "malformed"))


def test_overwritten_page(petrel, tmp_path):
    """A real petrel database with one page in the middle overwritten."""
    real = _real_db(petrel, tmp_path)
    data = bytearray(real.read_bytes())
    data[3 * 4096:4 * 4096] = b"\xab" * 4096
    bad = tmp_path / "page.db"
    bad.write_bytes(bytes(data))
    _refused(tmp_path, bad, ("the database is corrupt",))


@pytest.mark.parametrize("user_version", [0, 3], ids=["default-pragmas", "own-user-version"])
def test_another_programs_database(tmp_path, user_version):
    """A valid SQLite file of another program (made with Python's sqlite3: a table with rows; with SQLite's
    default user_version 0 and application_id 0, as most programs leave them, or with a user_version of its
    own) is not petrel's: refused, not adopted."""
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    con.executemany("INSERT INTO users (name) VALUES (?)", [("ann",), ("bob",)])
    con.execute(f"PRAGMA user_version = {user_version}")
    con.commit()
    con.close()
    _refused(tmp_path, db, ("not a petrel database",))


def test_newer_petrel(petrel, tmp_path):
    """A petrel database whose schema version (PRAGMA user_version) is 99, newer than this petrel reads."""
    db = tmp_path / "newer.db"
    shutil.copy(_real_db(petrel, tmp_path), db)
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    out = _refused(tmp_path, db, ("written by a newer petrel",))
    assert "schema version 99" in out


def test_two_brokers_one_database(petrel, tmp_path):
    """A second petrel on the database a running one has open is refused ("is another petrel using it?");
    the first one keeps working and its file is not touched by the attempt."""
    b = petrel.start()
    s = h.connect(b, "two-sub", expiry=300)
    assert h.subscribe(s, "two/t", 1) == [1]
    h.leave(s)
    p = h.connect(b, "two-pub")
    assert h.publish(p, "two/t", b"queued", qos=1) == 0x00  # its PUBACK: all of the above is committed
    files = {f: h.sha256(b.db_path.parent / f) for f in os.listdir(b.db_path.parent)
             if f.startswith(b.db_path.name)}
    rc, out = h.run_refused(tmp_path, b.db_path)
    assert rc == 1, f"exit status {rc}:\n{out[-3000:]}"
    assert f"store '{b.db_path}':" in out and NEVER in out, out[-3000:]
    assert "another petrel" in out, out[-3000:]
    assert {f: h.sha256(b.db_path.parent / f) for f in files} == files
    assert b.alive()
    assert h.publish(p, "two/t", b"still", qos=1, packet_id=2) == 0x00
    s = h.connect(b, "two-sub", clean=False, expiry=300)
    assert [h.receive(s).fields["payload"] for _ in range(2)] == [b"queued", b"still"]
