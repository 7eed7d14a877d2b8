"""Schema migrations: a database written by an older petrel is brought up to date at start, its contents kept."""
from __future__ import annotations

import sqlite3

import mqttraw as m


def test_version_1_database_is_migrated_to_version_2(make_broker):
    """Version 2 added the user name and listener of persistent sessions (access control checks the deliveries
    of a restored session as its user). A version 1 database keeps its sessions and gains the columns."""
    b = make_broker()
    c = m.RawClient(b.port)
    c.connect("mig-1", clean=False, username="someone")
    c.send(m.subscribe(1, [("mig/t", 1)]))
    c.expect(m.SUBACK)
    c.close()
    b.wait_log("client disconnected: id=mig-1")
    assert b.stop() == 0
    con = sqlite3.connect(b.db_path)
    assert con.execute("SELECT username, listener FROM sessions WHERE client_id = 'mig-1'").fetchone() == \
        ("someone", "test")
    # Make it what petrel 0.1 wrote: schema version 1, without the two columns.
    con.execute("ALTER TABLE sessions DROP COLUMN username")
    con.execute("ALTER TABLE sessions DROP COLUMN listener")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    b2 = make_broker(port=b.port)
    b2.wait_log("schema migrated from version 1 to 2")
    b2.wait_log("restored 1 sessions (1 subscriptions")
    c = m.RawClient(b2.port)
    assert c.connect("mig-1", clean=False).fields["session_present"] == 1
    c.close()
    assert b2.stop() == 0
    con = sqlite3.connect(b.db_path)
    assert con.execute("PRAGMA user_version").fetchone() == (2,)
    con.close()
