"""SIGHUP re-reads password and ACL files (a bad file keeps the old rules and says where it is wrong; connected
clients are re-checked on their next operation), counters in $SYS, and the rate-limited refusal log."""
from __future__ import annotations

import signal
import subprocess

import pytest

import mqttraw as m
from authclients import connack
from petrel_paths import PETREL_BIN

# Cross-thread paths (the HTTP client's thread, rule snapshots swapped under running loops): also run
# against the ThreadSanitizer build (marker "concurrency", scripts/test).
pytestmark = pytest.mark.concurrency


def passwd(path, user, password, create=False):
    subprocess.run([PETREL_BIN, "passwd", *(["-c"] if create else []), "-b", str(path), user, password], check=True)


def reload(broker, expect: str) -> None:
    n = broker.log_text().count(expect)
    broker.proc.send_signal(signal.SIGHUP)
    deadline_text = broker.wait_log(expect)
    import time
    end = time.monotonic() + 5
    while broker.log_text().count(expect) <= n:
        assert time.monotonic() < end, f"no new {expect!r}:\n{broker.log_text()[-2000:]}"
        time.sleep(0.02)
    del deadline_text


def test_sighup_applies_new_rules_and_keeps_old_ones_on_error(make_broker, files):
    pw = files("passwd", "")
    passwd(pw, "alice", "a", create=True)
    acl = files("acl", "user alice\ntopic readwrite a/#\n")
    b = make_broker(f'[auth]\npassword_file = "{pw}"\nacl_file = "{acl}"\n')
    c = m.RawClient(b.port, version=5)
    assert c.connect("alice-1", username="alice", password=b"a").fields["reason"] == 0
    c.send(m.subscribe(1, [("b/#", 0)], version=5))
    assert c.expect(m.SUBACK).fields["reasons"] == [0x87]

    acl.write_text("user alice\ntopic readwrite a/#\ntopic readwrite b/#\n")
    reload(b, "access control reloaded")
    c.send(m.subscribe(2, [("b/#", 0)], version=5))  # the same connection, re-checked
    assert c.expect(m.SUBACK).fields["reasons"] == [0]

    acl.write_text("user alice\ntopic readwrite a/#\ntopic read b/#/c\n")
    reload(b, "access control reload failed")
    b.wait_log(f"access control reload failed, keeping the previous rules: {acl}:3: 'b/#/c' is not a valid topic filter")
    # The old rules are still in force: b/# still granted.
    c.send(m.subscribe(3, [("b/x", 0)], version=5))
    assert c.expect(m.SUBACK).fields["reasons"] == [0]

    # A user removed from the password file: refused at once on the next connect, and the connected client's
    # next operations are denied.
    passwd(pw, "bob", "b")
    subprocess.run([PETREL_BIN, "passwd", "-D", str(pw), "alice"], check=True)
    acl.write_text("user alice\ntopic readwrite a/#\n")
    reload(b, "access control reloaded")
    c.send(m.publish("a/1", b"x", qos=1, packet_id=9, version=5))
    assert c.expect(m.PUBACK).fields["reason"] == 0x87
    assert connack(b.port, "alice-2", 5, username="alice", password="a") == 0x86
    assert connack(b.port, "bob-1", 5, username="bob", password="b") == 0


def test_counters_in_sys(make_broker, files):
    pw = files("passwd", "")
    passwd(pw, "alice", "a", create=True)
    passwd(pw, "monitor", "m")
    acl = files("acl", "user alice\ntopic read x/#\nuser monitor\ntopic read $SYS/#\n")
    b = make_broker(f'[auth]\nallow_anonymous = true\npassword_file = "{pw}"\nacl_file = "{acl}"\n'
                    "[sys]\ninterval = 1\n")
    assert connack(b.port, "w1", username="alice", password="wrong") == 4
    assert connack(b.port, "w2", username="nobody", password="wrong") == 4
    alice = m.RawClient(b.port)
    alice.connect("alice-c", username="alice", password=b"a")
    alice.send(m.subscribe(1, [("y/#", 0)]))
    assert alice.expect(m.SUBACK).fields["reasons"] == [0x80]
    alice.send(m.publish("x/1", b"no", qos=1, packet_id=2))
    alice.expect(m.PUBACK)
    mon = m.RawClient(b.port)
    mon.connect("mon", username="monitor", password=b"m")
    mon.send(m.subscribe(1, [("$SYS/broker/auth/#", 0)]))
    assert mon.expect(m.SUBACK).fields["reasons"] == [0]
    want = {"auth/connect/refused/bad_password": "1", "auth/connect/refused/unknown_user": "1",
            "auth/connect/accepted/password": "2", "auth/denied/subscribe": "1", "auth/denied/publish": "1"}
    seen: dict[str, str] = {}
    import time
    deadline = time.monotonic() + 10
    while any(seen.get(k) != v for k, v in want.items()):
        assert time.monotonic() < deadline, f"$SYS counters {seen}, wanted {want}"
        p = mon.expect(m.PUBLISH, timeout=5)
        seen[p.fields["topic"].removeprefix("$SYS/broker/")] = p.fields["payload"].decode()


def test_refusals_are_logged_rate_limited_and_all_counted(make_broker, files):
    pw = files("passwd", "")
    passwd(pw, "alice", "a", create=True)
    b = make_broker(f'[auth]\npassword_file = "{pw}"\n')
    attempts = 100
    socks = [m.RawClient(b.port) for _ in range(attempts)]
    for i, s in enumerate(socks):
        s.send(m.connect(f"flood-{i}", username="alice", password=b"wrong"))
    for s in socks:
        assert s.expect(m.CONNACK).fields["reason"] == 4
        s.close()
    logged = b.log_text().count("authentication refused: ")
    assert 1 <= logged < attempts, logged
