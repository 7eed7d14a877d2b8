"""/health and /ready: liveness, readiness and why not, per listener.

/ready is 200 only when every listener accepts, the store is writable and start-up is complete; a listener
out of file descriptors (EMFILE) turns it 503 with the reason, and it is 200 again once the listener
recovers. The check is made over an HTTP connection opened before the descriptors ran out (a new one could
not be accepted then, by the HTTP listener either).
"""
from __future__ import annotations

import time

import mqttraw as m

from .conftest import Api


def test_health_is_200_and_json(http_broker):
    b = http_broker()
    r = b.api.get("/health")
    assert r.status == 200, r
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"status": "ok"}


def test_ready_lists_every_listener_with_its_state_and_counts(http_broker, tmp_path):
    from petrel_paths import free_port
    second = free_port()
    b = http_broker(f'[[listener]]\nname = "second"\nbind = "127.0.0.1"\nport = {second}\n')
    with m.RawClient(b.port) as c:
        assert c.connect("ready-probe").fields["reason"] == 0
        r = b.api.get("/ready")
        assert r.status == 200, r
        body = r.json()
        assert body["ready"] is True and body["reasons"] == []
        by_name = {l["name"]: l for l in body["listeners"]}
        assert set(by_name) == {"test", "second"}
        t = by_name["test"]
        assert (t["state"], t["type"], t["bind"], t["port"]) == ("accepting", "tcp", "127.0.0.1", b.port)
        assert t["connections"] == 1
        assert t["accepts"]["total"] >= 1 and t["accepts"]["last_minute"] >= 1
        assert t["certificate"] is None
        assert by_name["second"]["connections"] == 0
        assert body["store"]["writable"] is True and body["store"]["type"] == "sqlite"


def test_ready_is_503_while_a_listener_is_out_of_descriptors_and_200_after(http_broker):
    b = http_broker(max_open_files=48)
    api = b.api
    keep = api.connection()  # opened now: it still works when no descriptor is left
    assert api.get("/ready", conn=keep).status == 200
    held = []
    try:
        for i in range(48):
            c = m.RawClient(b.port, timeout=2.0)
            held.append(c)
            try:
                c.connect(f"fill{i}")
            except (TimeoutError, m.Closed):
                break  # this one waits in the backlog: the broker is out of descriptors
        b.wait_log("Too many open files; backing off 100 ms", timeout=10)
        deadline = time.monotonic() + 10
        while True:
            r = api.get("/ready", conn=keep)
            if r.status == 503 or time.monotonic() > deadline:
                break
        assert r.status == 503, r
        body = r.json()
        assert body["ready"] is False
        assert any("listener 'test' is not accepting connections" in why and "Too many open files" in why
                   for why in body["reasons"]), body["reasons"]
        test = next(l for l in body["listeners"] if l["name"] == "test")
        assert test["last_accept_error"] == "Too many open files"
    finally:
        for c in held:
            c.close()
    deadline = time.monotonic() + 15
    while True:
        r = api.get("/ready", conn=keep)
        if r.status == 200 or time.monotonic() > deadline:
            break
    keep.close()
    assert r.status == 200, r
    assert r.json()["reasons"] == []
    assert Api(b.http_port).get("/health").status == 200


def test_ready_is_503_while_the_store_cannot_commit(http_broker):
    """A store whose commits fail (fault injection: every commit fails) is not writable: 503 with the reason.
    (Test builds only: PETREL_FAULT.)"""
    b = http_broker(env={"PETREL_FAULT": "store:write@1000000"})
    with m.RawClient(b.port) as c:
        # A persistent session makes the store write (its CONNACK waits for the commit, which never comes).
        c.send(m.connect("store-probe", clean=False))
        deadline = time.monotonic() + 10
        while True:
            r = b.api.get("/ready")
            if (r.status == 503 and any("the store cannot commit" in why for why in r.json()["reasons"])) \
                    or time.monotonic() > deadline:
                break
        assert r.status == 503, r
        assert any("the store cannot commit" in why for why in r.json()["reasons"]), r.json()
        assert r.json()["store"]["writable"] is False
    b.kill()  # its writer would retry the failing commit at shutdown for a long time
