"""A small storm against one ws listener, in the spirit of tests/tls/test_storm.py: good WebSocket clients
(upgrade, CONNECT, QoS 1 round trip, DISCONNECT, close 1000) interleaved with bad ones (wrong path, plain HTTP
GET, garbage, stalled half requests, text frames, oversized messages) on many threads. Each bad connection
costs only itself: every good client succeeds, each bad one gets its own answer, clients connected before the
storm keep working, $SYS counts the refused upgrades under their labels, and the broker lives on."""
from __future__ import annotations

import random
import socket
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

import mqttraw as m
import tlsclient as t

from . import wsraw as ws

pytestmark = [pytest.mark.concurrency, pytest.mark.timeout(90)]

CONNECT_TIMEOUT = 2     # [mqtt] connect_timeout: the deadline of the stalled requests
MAX_PACKET = 1024       # [mqtt] max_packet_size: the oversized messages are 4 KiB
ATTEMPT_TIMEOUT = 8.0   # bound for one attempt's waits (normally milliseconds)
WORKERS = 16

PLAN = {"good": 20, "wrong_path": 10, "plain_get": 10, "garbage": 10, "stall": 10, "text": 10, "oversized": 10}
# The $SYS failure label of each kind refused before CONNECT (text and oversized connect first: not failures).
LABEL = {"wrong_path": "wrong_path", "plain_get": "not_websocket", "garbage": "bad_http_request",
         "stall": "upgrade_timeout"}
STATUS = {"wrong_path": 404, "plain_get": 426, "garbage": 400}


@dataclass
class Result:
    kind: str
    index: int
    ok: bool = False
    detail: str = ""
    stalled: socket.socket | None = field(default=None, repr=False)


def run_attempt(port: int, kind: str, index: int, seed: int) -> Result:
    r = Result(kind, index)
    rnd = random.Random(seed)
    try:
        if kind == "good":
            ws.good_client(port, f"storm-good-{index}", timeout=ATTEMPT_TIMEOUT)
            r.ok = True
        elif kind in STATUS:
            if kind == "wrong_path":
                request = ws.upgrade_request(rnd.choice(["/", "/ws", "/mqtt/x", "/index.html"]))
            elif kind == "plain_get":
                request = ws.upgrade_request(upgrade=False)
            else:  # starts with a byte no HTTP method has; no line break before the end
                request = (bytes([rnd.randrange(0x80, 0x100)])
                           + bytes(rnd.choice([b for b in range(256) if b not in (10, 13)])
                                   for _ in range(rnd.randrange(1, 300)))
                           + b"\r\n\r\n")
            with ws.WsClient(port, timeout=ATTEMPT_TIMEOUT) as c:
                c.send_raw(request)
                resp = c.read_http_response()
            r.ok, r.detail = resp.status == STATUS[kind], repr(resp)
        elif kind == "stall":
            request = ws.upgrade_request()
            # part of a request (perhaps nothing), then silence: the test thread checks the deadline close
            r.stalled = t.raw_connection(port, request[: rnd.randrange(0, len(request) - 2)], timeout=ATTEMPT_TIMEOUT)
            r.ok = True
        elif kind in ("text", "oversized"):
            with ws.open_ws(port, f"storm-{kind}-{index}", timeout=ATTEMPT_TIMEOUT) as c:
                if kind == "text":
                    c.send_frame(ws.TEXT, b"not binary")
                else:
                    c.send_binary(m.publish("storm/big", b"x" * 4096))
                closed = c.expect_close()
            want = 1003 if kind == "text" else 1009
            r.ok, r.detail = closed.status == want and closed.packets == [], repr(closed.frame)
        else:
            raise ValueError(kind)
    except Exception as e:  # noqa: BLE001 - reported per attempt
        r.ok, r.detail = False, f"{r.detail} {e!r}".strip()
    return r


def test_ws_storm(ws_broker, sys_watch):
    """80 interleaved attempts on 16 threads against one ws listener: all 20 good clients succeed, every bad
    attempt gets its answer (404, 426, 400, close 1003, close 1009, or the deadline close), the two clients
    connected before keep exchanging messages, $SYS counts exactly the refused upgrades by label, no connection
    lingers, and new clients connect afterwards."""
    b = ws_broker(mqtt=f"connect_timeout = {CONNECT_TIMEOUT}\nmax_packet_size = {MAX_PACKET}", threads=2)
    watch = sys_watch(b, "ws")
    pre = [ws.open_ws(b.ws_port, f"storm-pre-{i}") for i in range(2)]
    try:
        for c in pre:
            c.send_binary(m.subscribe(1, [("storm/pre/#", 1)]))
            assert c.expect(m.SUBACK).fields["reasons"] == [1]

        plan = [kind for kind, n in PLAN.items() for _ in range(n)]
        random.Random(6455).shuffle(plan)
        per_kind: Counter = Counter()
        jobs = []
        for seed, kind in enumerate(plan):
            jobs.append((kind, per_kind[kind], seed))
            per_kind[kind] += 1
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = [pool.submit(run_attempt, b.ws_port, kind, i, seed) for kind, i, seed in jobs]
            results = [f.result(timeout=60) for f in futures]

        stalled = [r.stalled for r in results if r.stalled is not None]
        try:
            for s in stalled:  # each is closed at its deadline, without a 101
                _, got = t.wait_closed(s, CONNECT_TIMEOUT + 5)
                assert not got.startswith(b"HTTP/1.1 101"), got
        finally:
            for s in stalled:
                s.close()

        failed = [r for r in results if not r.ok]
        assert not failed, f"{len(failed)} attempts did not get their answer: {failed[:5]}"
        connected = set(ws.connected_ids(b))
        assert {f"storm-good-{i}" for i in range(PLAN["good"])} <= connected

        expected = Counter({LABEL[k]: PLAN[k] for k in LABEL})
        total = sum(expected.values())
        assert watch.wait_at_least("failures", total) == total, watch.values
        counted = {label: watch.wait_at_least(f"failures/{label}", n) for label, n in expected.items()}
        assert counted == dict(expected), watch.values
        assert watch.wait("connections/open", lambda v: v == "2", "2") == "2"

        # after the storm: the pre-storm clients still exchange messages, a new client connects
        for i, pub in enumerate(pre):
            pub.send_binary(m.publish(f"storm/pre/{i}", b"after", qos=1, packet_id=10 + i))
            for c in pre:
                got_msg, got_ack = False, c is not pub
                while not (got_msg and got_ack):
                    p = c.recv()
                    if p.type == m.PUBACK:
                        got_ack = True
                    else:
                        assert p.type == m.PUBLISH and p.fields["topic"] == f"storm/pre/{i}", p
                        c.send_binary(m.ack(m.PUBACK, p.fields["packet_id"]))
                        got_msg = True
        ws.good_client(b.ws_port, "storm-post")
        assert b.alive()
    finally:
        for c in pre:
            c.close()
