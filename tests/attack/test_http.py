"""Hostile clients of the HTTP listener, against the real binary, while the MQTT canary runs (tools.Guard):
the MQTT event loops must not notice, memory must stay bounded, and the HTTP listener must serve again once
the attack ends.

Attacks, from parallel threads for 2.5 s: slowloris (headers a byte at a time, past max_connections),
declared bodies of 1 GB, header blocks over the limit, garbage and random bytes, connect-and-reset churn,
unauthenticated requests, and well-behaved clients pulling the client list and /metrics in a loop. The
counters of /metrics show the limits at work (timeouts, refusals, 413/431/400/401 answers).
"""
from __future__ import annotations

import http.client
import os
import random
import socket
import threading
import time

import pytest

import mqttraw as m
from petrel_paths import free_port

from .tools import abort, sys_config

pytestmark = [pytest.mark.attack, pytest.mark.timeout(60)]

ATTACK_SECONDS = 2.5
TOKEN = "attack-test-token-0123456789"


def http_config(port: int, token_file) -> str:
    return (f"[http]\nport = {port}\nmax_connections = 32\nheader_timeout = 1\nbody_timeout = 1\n"
            f"keep_alive_timeout = 1\nmax_body_size = 65536\nmax_header_size = 8192\n"
            f'token_file = "{token_file}"\n')


def get(port: int, path: str, token: str | None = TOKEN, timeout: float = 5.0) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_http_listener_attacks_leave_mqtt_and_memory_alone(make_broker, guard, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    port = free_port()
    b = make_broker(config=sys_config() + http_config(port, tokens))
    b.wait_log("http: serving the operator API")
    # Some sessions for the listings to walk through.
    held = []
    for i in range(50):
        c = m.RawClient(b.port, version=5)
        assert c.connect(f"attack-http-{i:03}").fields["reason"] == 0
        held.append(c)
    g = guard(b, "http")
    stop = threading.Event()
    served = {"lists": 0, "metrics": 0}

    def slowloris():
        socks = []
        try:
            while not stop.is_set():
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=2)
                    s.sendall(b"GET /health HTTP/1.1\r\n")
                    socks.append(s)
                except OSError:
                    pass
                for s in list(socks):
                    try:
                        s.send(b"X")
                    except OSError:
                        socks.remove(s)
                stop.wait(0.05)
        finally:
            for s in socks:
                s.close()

    def oversized():
        while not stop.is_set():
            for payload in (b"POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n",
                            b"GET /health HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
                            b"NOT HTTP AT ALL\r\n\r\n", os.urandom(512),
                            b"GET /api/v1/clients HTTP/1.1\r\nHost: x\r\n\r\n"):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                        s.sendall(payload)
                        s.recv(4096)
                except OSError:
                    pass

    def churn():
        while not stop.is_set():
            try:
                abort(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                pass

    def pullers():
        while not stop.is_set():
            try:
                status, body = get(port, "/api/v1/clients?limit=1000")
                if status == 200:
                    served["lists"] += 1
                status, body = get(port, "/metrics")
                if status == 200:
                    served["metrics"] += 1
            except OSError:
                pass  # refused at the cap while the attack holds the slots

    threads = [threading.Thread(target=f, daemon=True) for f in (slowloris, oversized, oversized, churn, pullers)]
    with g.attack():
        for t in threads:
            t.start()
        time.sleep(ATTACK_SECONDS)  # the attack's duration, not a synchronisation
        stop.set()
        for t in threads:
            t.join(10)
    assert not any(t.is_alive() for t in threads), "an attack thread did not finish"
    g.verify()

    # Serving again: once the slow connections time out, a request gets its answer.
    deadline = time.monotonic() + 10
    while True:
        try:
            status, body = get(port, "/api/v1/clients?prefix=attack-http-&limit=1000")
            if status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the HTTP listener did not serve again after the attack"
    import json
    assert len(json.loads(body)["items"]) == 50
    status, text = get(port, "/metrics")
    assert status == 200
    metrics = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.decode().splitlines()
               if line and not line.startswith("#")}
    assert metrics["petrel_http_timeouts_total"] > 0, "no slowloris connection was timed out"
    assert metrics['petrel_http_responses_total{code="413"}'] > 0
    assert metrics['petrel_http_responses_total{code="431"}'] > 0
    assert metrics['petrel_http_responses_total{code="400"}'] > 0
    assert metrics['petrel_http_responses_total{code="401"}'] > 0
    for c in held:
        c.close()
    assert b.alive()
