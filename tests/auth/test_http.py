"""The HTTP backend against a small real HTTP service started by the test (tests/lib/authclients.HttpService):
allow, deny, ignore (the next source decides), a hung service (timeout: deny, for that client only), a dead one,
garbage, a connection closed mid-answer, an error status; connection reuse; ACL answers cached; ACL lists in the
authentication answer; https to the service."""
from __future__ import annotations

import select
import ssl
import subprocess
import time

import pytest

import mqttraw as m
from authclients import HttpService, connack
from petrel_paths import PETREL_BIN

# Cross-thread paths (the HTTP client's thread, rule snapshots swapped under running loops): also run
# against the ThreadSanitizer build (marker "concurrency", scripts/test).
pytestmark = pytest.mark.concurrency


def decide(path: str, req: dict):
    if path == "/auth":
        user = req.get("username")
        return {"ok": ("json", {"result": "allow"}),
                "listed": ("json", {"result": "allow", "acl": {"publish": ["a/#"], "subscribe": ["b/#"]}}),
                "no": ("json", {"result": "deny"}),
                "skip": ("json", {"result": "ignore"}),
                "slow": ("hold",),
                "garbage": ("garbage",),
                "close": ("close",),
                "broken": ("json", {"result": "allow"}, 500),
                "odd": ("json", {"result": "maybe"})}.get(user, ("json", {"result": "deny"}))
    if path == "/acl":
        topic = req["topic"]
        if topic.startswith("yes/"):
            return ("json", {"result": "allow"})
        if topic.startswith("skip/"):
            return ("json", {"result": "ignore"})
        return ("json", {"result": "deny"})
    return ("json", {}, 404)


@pytest.fixture
def service():
    made = []

    def start(tls=None):
        s = HttpService(decide, tls)
        made.append(s)
        return s
    yield start
    for s in made:
        s.close()


def test_allow_deny_ignore_and_what_the_service_is_told(make_broker, files, service):
    svc = service()
    pw = files("passwd", "")
    subprocess.run([PETREL_BIN, "passwd", "-c", "-b", str(pw), "skip", "file-pw"], check=True)
    b = make_broker(f'[auth]\npassword_file = "{pw}"\nauthentication = ["http", "password_file"]\n'
                    f'[auth.http]\nurl = "{svc.url("/auth")}"\n')
    assert connack(b.port, "h1", 5, username="ok", password="anything") == 0
    assert connack(b.port, "h2", 5, username="no", password="anything") == 0x86
    assert connack(b.port, "h3", 4, username="skip", password="file-pw") == 0   # ignored: the file decides
    assert connack(b.port, "h4", 4, username="skip", password="wrong") == 4
    path, first = svc.wait_requests(1)[0]
    assert path == "/auth"
    assert first["clientid"] == "h1" and first["username"] == "ok" and first["password"] == "anything"
    assert first["listener"] == "test" and first["protocol"] == "5.0" and first["peer"].startswith("127.0.0.1:")
    b.wait_log("id=h2 user=no reason=HTTP service: deny")
    b.wait_log("id=h4 user=skip reason=wrong password")


def test_a_hung_service_slows_only_the_client_it_decides_on(make_broker, service):
    svc = service()
    b = make_broker(f'[auth.http]\nurl = "{svc.url("/auth")}"\ntimeout = 1000\n')
    slow = m.RawClient(b.port, version=5)
    slow.send(m.connect("slow-1", version=5, username="slow", password=b"x"))
    svc.wait_requests(1)
    # While the service holds the slow client's request, others are decided.
    for i in range(3):
        assert connack(b.port, f"fast-{i}", 5, username="ok", password="x") == 0
    assert select.select([slow.sock], [], [], 0)[0] == []  # nothing for the slow client yet: still decided on
    assert slow.expect(m.CONNACK, timeout=10).fields["reason"] == 0x86
    b.wait_log("id=slow-1 user=slow reason=HTTP service: timeout after 1000 ms")


@pytest.mark.parametrize("user,reason", [
    ("garbage", "HTTP service: the answer is not JSON"),
    ("close", "HTTP service: "),
    ("broken", "HTTP service answered status 500"),
    ("odd", "HTTP service: the answer has no result allow, deny or ignore"),
])
def test_bad_answers_deny_that_client_only(make_broker, service, user, reason):
    svc = service()
    b = make_broker(f'[auth.http]\nurl = "{svc.url("/auth")}"\n')
    assert connack(b.port, "bad-1", 5, username=user, password="x") == 0x86
    b.wait_log(f"id=bad-1 user={user} reason={reason}")
    assert connack(b.port, "good-1", 5, username="ok", password="x") == 0


def test_a_dead_service_is_a_deny(make_broker):
    from petrel_paths import free_port
    b = make_broker(f'[auth.http]\nurl = "http://127.0.0.1:{free_port()}/auth"\n')
    assert connack(b.port, "dead-1", 4, username="ok", password="x") == 4
    b.wait_log("id=dead-1 user=ok reason=HTTP service: connection refused")


def test_connections_are_reused(make_broker, service):
    svc = service()
    b = make_broker(f'[auth.http]\nurl = "{svc.url("/auth")}"\n')
    for i in range(10):
        assert connack(b.port, f"re-{i}", 5, username="ok", password="x") == 0
    assert len(svc.wait_requests(10)) == 10
    assert len(svc.connections) == 1  # one kept-alive connection served them all


def test_acl_answers_are_cached(make_broker, service):
    svc = service()
    b = make_broker(f'[auth.http]\nurl = "{svc.url("/auth")}"\nacl_url = "{svc.url("/acl")}"\ncache_ttl = 60\n')
    c = m.RawClient(b.port, version=5)
    assert c.connect("acl-1", username="ok", password=b"x").fields["reason"] == 0

    def decided(send, read, topic: str) -> int:
        """The first request about a topic the cache does not know is refused and asked in the background; once
        the service has answered (and the answer reached the cache), the next is decided by its answer."""
        assert read(send()) == 0x87
        svc.wait_answered(lambda r: r.get("topic") == topic)
        for _ in range(50):  # the answer is written; it reaches the cache a moment later
            code = read(send())
            if code != 0x87:
                return code
            time.sleep(0.01)
        return code

    def subscribe_until_decided(packet_id: int, flt: str) -> int:
        return decided(lambda: c.send(m.subscribe(packet_id, [(flt, 1)], version=5)),
                       lambda _: c.expect(m.SUBACK).fields["reasons"][0], flt)

    before = len(svc.requests)
    assert subscribe_until_decided(1, "yes/x") == 1
    asked = [r for r in svc.requests[before:] if r[0] == "/acl"]
    assert asked and asked[0][1] == {"clientid": "acl-1", "username": "ok", "peer": asked[0][1]["peer"],
                                     "listener": "test", "topic": "yes/x", "action": "subscribe"}
    n = len(svc.requests)
    for i in range(5):  # cached: the service is not asked again
        c.send(m.subscribe(10 + i, [("yes/x", 1)], version=5))
        assert c.expect(m.SUBACK).fields["reasons"] == [1]
    assert len(svc.requests) == n
    assert subscribe_until_decided(2, "no/x") == 0x87
    # Publishes: the first to an unknown topic is refused and asked; later ones are decided by the answer.
    assert decided(lambda: c.send(m.publish("yes/p", b"x", qos=1, packet_id=3, version=5)),
                   lambda _: c.expect(m.PUBACK).fields["reason"], "yes/p") == 0x10
    # An "ignore" answer: no other source, so refused.
    assert subscribe_until_decided(4, "skip/x") == 0x87


def test_acl_lists_in_the_authentication_answer(make_broker, service):
    svc = service()
    b = make_broker(f'[auth.http]\nurl = "{svc.url("/auth")}"\n')
    c = m.RawClient(b.port, version=5)
    assert c.connect("listed-1", username="listed", password=b"x").fields["reason"] == 0
    c.send(m.subscribe(1, [("b/x", 1), ("a/x", 1)], version=5))
    assert c.expect(m.SUBACK).fields["reasons"] == [1, 0x87]
    c.send(m.publish("a/1", b"x", qos=1, packet_id=2, version=5))
    assert c.expect(m.PUBACK).fields["reason"] == 0x10
    c.send(m.publish("b/1", b"x", qos=1, packet_id=3, version=5))
    assert c.expect(m.PUBACK).fields["reason"] == 0x87
    assert len(svc.requests) == 1  # no ACL requests: the lists decided


def test_https_to_the_service(make_broker, service, pki):
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(str(pki.server.cert), str(pki.server.key))
    svc = service(tls)
    b = make_broker(f'[auth.http]\nurl = "{svc.url("/auth", host="localhost", scheme="https")}"\nca_file = "{pki.ca}"\n')
    assert connack(b.port, "tls-1", 5, username="ok", password="x") == 0
    assert connack(b.port, "tls-2", 5, username="no", password="x") == 0x86
    # The service's certificate must verify: without the CA, every request fails (and so does the client).
    other = make_broker(f'[auth.http]\nurl = "{svc.url("/auth", host="localhost", scheme="https")}"\n')
    assert connack(other.port, "tls-3", 5, username="ok", password="x") == 0x86
    other.wait_log("id=tls-3 user=ok reason=HTTP service: ")


def test_bad_http_configuration_stops_start(run_petrel, files):
    cfg = files("c.toml", '[store]\ntype = "memory"\n[auth.http]\nurl = "ftp://x/auth"\n')
    r = run_petrel(["--config", str(cfg)])
    assert r.returncode == 2 and "'ftp://x/auth' is not an http:// or https:// URL" in r.stdout
    cfg = files("c2.toml", '[store]\ntype = "memory"\n[auth]\nauthentication = ["http"]\n')
    r = run_petrel(["--config", str(cfg)])
    assert r.returncode == 2 and "'http' in 'authentication' needs [auth.http] url" in r.stdout
