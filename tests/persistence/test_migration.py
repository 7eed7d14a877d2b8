"""Schema migrations: a database written by an older petrel is backed up, then brought up to date at start, its
contents kept.

The old databases are built here, table by table, with the schema each version wrote (version 1: petrel 0.1;
version 2 added the user name and listener of sessions; version 3, this petrel, stores each message once) and
rows such as those versions wrote: a v5 and a 3.1.1 persistent session with subscriptions, QoS 1 and QoS 2
messages queued for them (one fan-out message queued for both, stored twice as the old versions did), outbound
QoS 2 messages in flight (PUBLISH sent; PUBREL sent) with their packet ids, an inbound QoS 2 packet id awaiting
its PUBREL, and a retained message.
"""
from __future__ import annotations

import sqlite3
import time

import pytest

import mqttraw as m

from . import helpers as h
from .test_corrupt import _refused

APPLICATION_ID = 0x5054524C  # 'PTRL'

V1_SCHEMA = """
CREATE TABLE retained (
  topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL, props BLOB,
  origin TEXT NOT NULL, expires_at INTEGER) WITHOUT ROWID;
CREATE TABLE sessions (
  client_id TEXT PRIMARY KEY, version INTEGER NOT NULL, expiry_interval INTEGER NOT NULL,
  disconnected_at INTEGER,
  will_topic TEXT, will_payload BLOB, will_qos INTEGER, will_retain INTEGER, will_props BLOB, will_delay INTEGER
) WITHOUT ROWID;
CREATE TABLE subscriptions (
  client_id TEXT NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL, no_local INTEGER NOT NULL,
  retain_as_published INTEGER NOT NULL, retain_handling INTEGER NOT NULL, subscription_id INTEGER NOT NULL,
  PRIMARY KEY (client_id, filter)) WITHOUT ROWID;
CREATE TABLE deliveries (
  id INTEGER PRIMARY KEY, client_id TEXT NOT NULL,
  topic TEXT NOT NULL, payload BLOB NOT NULL, msg_qos INTEGER NOT NULL, msg_retain INTEGER NOT NULL,
  props BLOB, origin TEXT NOT NULL, expires_at INTEGER,
  qos INTEGER NOT NULL, retain INTEGER NOT NULL, subscription_ids BLOB,
  packet_id INTEGER NOT NULL DEFAULT 0, state INTEGER NOT NULL DEFAULT 0);
CREATE INDEX deliveries_by_client ON deliveries (client_id, id);
CREATE TABLE inbound_qos2 (
  client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID;
"""
V2_COLUMNS = "ALTER TABLE sessions ADD COLUMN username TEXT; ALTER TABLE sessions ADD COLUMN listener TEXT;"

NO_PROPS = b"\x00"  # how versions 1 and 2 wrote a message without properties (the length prefix alone)
SUB_ID_7 = (7).to_bytes(4, "big")


def _old_database(path, version: int) -> None:
    """A database as petrel 0.1 (version 1) or the version with access control (2) left it at a crash."""
    now_ms = int(time.time() * 1000)
    con = sqlite3.connect(path)
    con.executescript(V1_SCHEMA + (V2_COLUMNS if version == 2 else ""))
    con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    con.execute(f"PRAGMA user_version = {version}")
    sessions = [("mig-v5", 5, 300, now_ms - 1000), ("mig-v3", 4, 0xFFFFFFFF, now_ms - 1000)]
    for client_id, proto, expiry, at in sessions:
        con.execute("INSERT INTO sessions (client_id, version, expiry_interval, disconnected_at) VALUES (?,?,?,?)",
                    (client_id, proto, expiry, at))
    if version == 2:
        con.execute("UPDATE sessions SET username = 'someone', listener = 'test' WHERE client_id = 'mig-v5'")
        con.execute("UPDATE sessions SET listener = 'test' WHERE client_id = 'mig-v3'")
    con.executemany("INSERT INTO subscriptions VALUES (?,?,?,0,0,0,?)",
                    [("mig-v5", "mig/q/#", 2, 7), ("mig-v5", "fleet/all", 1, 0), ("mig-v3", "fleet/all", 1, 0),
                     ("mig-v3", "mig/d", 1, 0)])
    rows = [
        # id, client, topic, payload, msg qos, props, qos, sub ids, packet id, state
        (1, "mig-v5", "mig/q/b", b"two", 2, NO_PROPS, 2, SUB_ID_7, 5, 1),      # PUBLISH sent, PUBREC awaited
        (2, "mig-v5", "mig/q/c", b"three", 2, NO_PROPS, 2, SUB_ID_7, 6, 2),    # PUBREL sent, PUBCOMP awaited
        (3, "mig-v5", "mig/q/a", b"one", 1, NO_PROPS, 1, SUB_ID_7, 0, 0),
        (4, "mig-v5", "fleet/all", b"shared", 1, NO_PROPS, 1, b"", 0, 0),       # one fan-out, stored twice
        (5, "mig-v3", "fleet/all", b"shared", 1, NO_PROPS, 1, b"", 0, 0),
        (6, "mig-v3", "mig/d", b"d", 2, NO_PROPS, 1, b"", 0, 0),
    ]
    con.executemany(
        "INSERT INTO deliveries (id, client_id, topic, payload, msg_qos, msg_retain, props, origin, expires_at, qos, "
        "retain, subscription_ids, packet_id, state) VALUES (?,?,?,?,?,0,?,'old-pub',NULL,?,0,?,?,?)", rows)
    con.execute("INSERT INTO inbound_qos2 VALUES ('mig-v5', 9)")
    con.execute("INSERT INTO retained VALUES ('mig/retained', x'6b657074', 1, ?, 'old-pub', NULL)", (NO_PROPS,))
    con.commit()
    con.close()


def _dump(path) -> dict[str, list]:
    con = sqlite3.connect(path)
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    out = {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
    out["user_version"] = con.execute("PRAGMA user_version").fetchall()
    con.close()
    return out


@pytest.mark.parametrize("version", [1, 2])
def test_old_database_is_backed_up_and_migrated(make_broker, tmp_path, version):
    """A version 1 (or 2) database is copied to petrel.db.vN.bak, then migrated to version 3 in place: both
    sessions come back (Session Present), the in-flight QoS 2 messages resume with their packet ids (PUBLISH
    again with DUP, PUBREL again), the queued messages arrive in order with their subscription identifiers, the
    message queued for both sessions is stored once (one `messages` row for its two delivery rows; the start-up
    line counts 5 distinct messages for 6 deliveries), the inbound QoS 2 packet id still catches a resent PUBLISH, and the retained message is kept.
    Once every message is delivered the database holds no message and no delivery."""
    db = tmp_path / "old.db"
    _old_database(db, version)
    before = _dump(db)
    b = make_broker(db_path=db)
    b.wait_log(f"schema migrated from version {version} to 3 (the version {version} database is kept as "
               f"'{db}.v{version}.bak')")
    summary = h.store_summary(b)
    assert (summary["sessions"], summary["subscriptions"], summary["queued"], summary["inflight"],
            summary["distinct"], summary["retained"]) == (2, 4, 4, 2, 5, 1), summary
    assert _dump(f"{db}.v{version}.bak") == before
    assert b.stop() == 0
    # The new layout: the fan-out message once, six short delivery rows naming session and message by number.
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone() == (3,)
    assert con.execute("SELECT count(*) FROM messages").fetchone() == (5,)
    keys = dict(con.execute("SELECT client_id, id FROM sessions"))
    assert sorted(keys.values()) == [1, 2]
    rows = con.execute("SELECT d.id, d.session, m.payload, d.qos, d.packet_id, d.state FROM deliveries AS d "
                       "JOIN messages AS m ON m.id = d.message ORDER BY d.id").fetchall()
    assert rows == [(1, keys["mig-v5"], b"two", 2, 5, 1), (2, keys["mig-v5"], b"three", 2, 6, 2),
                    (3, keys["mig-v5"], b"one", 1, 0, 0), (4, keys["mig-v5"], b"shared", 1, 0, 0),
                    (5, keys["mig-v3"], b"shared", 1, 0, 0), (6, keys["mig-v3"], b"d", 1, 0, 0)]
    shared = con.execute("SELECT DISTINCT message FROM deliveries WHERE id IN (4, 5)").fetchall()
    assert len(shared) == 1
    if version == 2:
        # Deliveries to a restored session are checked as its last user until the client connects again.
        assert con.execute("SELECT username, listener FROM sessions WHERE client_id = 'mig-v5'").fetchone() == \
            ("someone", "test")
    con.close()

    b = make_broker(db_path=db, port=b.port)
    summary = h.store_summary(b)
    assert (summary["queued"], summary["inflight"], summary["distinct"]) == (4, 2, 5)
    assert "schema migrated" not in b.log_text()

    # The resent PUBLISH of an inbound QoS 2 message whose PUBREL is awaited is acknowledged, not routed again.
    watch = h.connect(b, "mig-watch")
    assert h.subscribe(watch, "mig/dup", 1) == [1]
    s5 = h.connect(b, "mig-v5", clean=False, expiry=300)
    assert h.session_present(s5) == 1
    first = s5.expect(m.PUBLISH)
    assert (first.fields["packet_id"], first.fields["dup"], first.fields["payload"]) == (5, True, b"two")
    assert first.fields["props"][m.SUBSCRIPTION_IDENTIFIER] == [7]
    rel6 = s5.expect(m.PUBREL)
    assert rel6.fields["packet_id"] == 6
    s5.send(m.ack(m.PUBREC, 5))
    s5.send(m.ack(m.PUBCOMP, 6))
    # Then the queued messages, and (once our PUBREC arrived) PUBREL 5, in whichever order they cross.
    queued, released = [], False
    while len(queued) < 2 or not released:
        p = s5.recv()
        if p.type == m.PUBLISH:
            assert p.fields["qos"] == 1, p
            s5.send(m.ack(m.PUBACK, p.fields["packet_id"]))
            queued.append(p)
        else:
            assert (p.type, p.fields["packet_id"], released) == (m.PUBREL, 5, False), p
            s5.send(m.ack(m.PUBCOMP, 5))
            released = True
    assert [(p.fields["topic"], p.fields["payload"]) for p in queued] == [("mig/q/a", b"one"), ("fleet/all", b"shared")]
    assert queued[0].fields["props"][m.SUBSCRIPTION_IDENTIFIER] == [7]
    s5.send(m.publish("mig/dup", b"resent", qos=2, dup=True, packet_id=9, version=5))
    assert s5.expect(m.PUBREC).fields["packet_id"] == 9
    s5.send(m.ack(m.PUBREL, 9))
    assert s5.expect(m.PUBCOMP).fields["reason"] == 0x00
    h.sentinel(b, "mig/dup", b"end")
    assert [p.fields["payload"] for p in h.receive_until(watch, b"end")] == [b"end"]

    s3 = h.connect(b, "mig-v3", version=4, clean=False)
    assert h.session_present(s3) == 1
    assert [(p.fields["topic"], p.fields["payload"]) for p in (h.receive(s3), h.receive(s3))] == \
        [("fleet/all", b"shared"), ("mig/d", b"d")]
    r = h.connect(b, "mig-retained")
    assert h.subscribe(r, "mig/retained", 1) == [1]
    got = h.receive(r)
    assert (got.fields["payload"], got.fields["retain"]) == (b"kept", True)
    for c in (s5, s3):
        h.leave(c)
    assert b.stop() == 0

    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM messages").fetchone() == (0,)
    con.close()


@pytest.mark.parametrize("damage", ["overwritten-page", "foreign", "newer"])
def test_version_1_database_checks_come_before_the_migration(tmp_path, damage):
    """The documented start-up errors apply to an old database as to a current one, before anything is
    migrated or backed up: a version 1 database with a page overwritten ("the database is corrupt"), one whose
    application id is another program's ("not a petrel database"), and one claiming a newer schema version are
    refused, left unchanged, with no backup beside them."""
    db = tmp_path / "old.db"
    _old_database(db, 1)
    if damage == "overwritten-page":
        data = bytearray(db.read_bytes())
        assert len(data) >= 4 * 4096, len(data)
        data[2 * 4096:3 * 4096] = b"\xab" * 4096
        db.write_bytes(bytes(data))
        words = ("the database is corrupt",)
    else:
        con = sqlite3.connect(db)
        con.execute("PRAGMA application_id = 1" if damage == "foreign" else "PRAGMA user_version = 99")
        con.commit()
        con.close()
        words = ("not a petrel database",) if damage == "foreign" else ("written by a newer petrel",)
    _refused(tmp_path, db, words)
