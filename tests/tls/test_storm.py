"""The storm: why petrel exists (docs/tls.md). Hundreds of bad connections at once against one TLS listener
with client_cert = "required" (every kind of invalid certificate, no certificate, plaintext MQTT, random
bytes, clients stalling in the middle of the handshake, clients aborting right after their ClientHello),
interleaved with good clients. Each bad connection must cost only itself: every good client connects and
round-trips a QoS 1 message meanwhile, no bad one ever gets a CONNACK, the clients connected before the storm
keep working, and the listener's $SYS counters account for every failure under its own label.
"""
from __future__ import annotations

import random
import re
import socket
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

import certs
import mqttraw as m
import tlsclient as t

pytestmark = [pytest.mark.concurrency, pytest.mark.timeout(90)]

CONNECT_TIMEOUT = 3     # [mqtt] connect_timeout: the deadline of the stalled handshakes
ATTEMPT_TIMEOUT = 8.0   # bound for one attempt's waits (normally milliseconds)
WORKERS = 64

# Attempts per kind: 50 good clients and 250 bad connections.
PLAN = {"good": 50, **{kind: 20 for kind in certs.INVALID_CLIENTS},
        "no_cert": 20, "plaintext": 20, "random": 20, "stall": 30, "abort": 30}
# The $SYS failure label each bad kind must be counted under.
LABEL = {**{kind: label for kind, (_words, label) in certs.INVALID_CLIENTS.items()},
         "no_cert": "no_client_certificate", "plaintext": "plaintext_mqtt", "random": "not_tls",
         "stall": "handshake_timeout", "abort": "connection_lost"}


@dataclass
class Result:
    kind: str
    index: int
    ok: bool = False              # good: CONNACK 0 and a QoS 1 round trip; bad: refused, nothing MQTT back
    connack: bool = False         # a CONNACK arrived (must never happen for a bad kind)
    detail: str = ""
    stalled: socket.socket | None = field(default=None, repr=False)


def run_attempt(port: int, pki, kind: str, index: int, rnd_seed: int) -> Result:
    r = Result(kind, index)
    rnd = random.Random(rnd_seed)
    try:
        if kind == "good":
            out = t.try_connect(port, t.client_context(pki, "alice"), f"good-{index}", keep=True,
                                timeout=ATTEMPT_TIMEOUT)
            r.connack = out.connack is not None
            if out.connack is None or out.connack.fields["reason"] != 0:
                r.detail = repr(out)
                return r
            with out.client as c:
                t.qos1_roundtrip(c, f"storm/good/{index}", f"good {index}".encode())
                c.send(m.disconnect())
            r.ok = True
        elif kind in certs.INVALID_CLIENTS or kind == "no_cert":
            ctx = t.client_context(pki, None if kind == "no_cert" else kind)
            out = t.try_connect(port, ctx, f"bad-{kind}-{index}", timeout=ATTEMPT_TIMEOUT)
            r.connack = out.connack is not None
            r.ok, r.detail = out.refused, repr(out)
        elif kind in ("plaintext", "random"):
            if kind == "plaintext":
                data = m.connect(f"bad-plain-{index}")
            else:  # neither TLS (0x16), nor MQTT CONNECT (0x10), nor text
                data = bytes([rnd.randrange(0x80, 0x100)]) + rnd.randbytes(rnd.randrange(1, 400))
            s = t.raw_connection(port, data, timeout=ATTEMPT_TIMEOUT)
            try:
                _, got = t.wait_closed(s, ATTEMPT_TIMEOUT)
            finally:
                s.close()
            r.connack = got[:1] == b"\x20"
            r.ok, r.detail = got == b"", f"received {got[:32]!r}"
        elif kind == "stall":
            hello = t.client_hello()
            # Part of a ClientHello (perhaps just the record header, perhaps nothing), then silence. The
            # socket is handed back: the test thread checks that petrel closes it at the deadline.
            r.stalled = t.raw_connection(port, hello[: rnd.randrange(0, len(hello) - 1)], timeout=ATTEMPT_TIMEOUT)
            r.ok = True
        elif kind == "abort":
            s = t.raw_connection(port, t.client_hello(), timeout=ATTEMPT_TIMEOUT)
            s.close()
            r.ok = True
        else:
            raise ValueError(kind)
    except Exception as e:  # noqa: BLE001 - reported per attempt
        r.ok, r.detail = False, f"{r.detail} {e!r}".strip()
    return r


def prestorm_round_trip(clients: list[m.RawClient], tag: str) -> None:
    """Each client publishes QoS 1 to storm/pre/<i>; every client (all subscribed to storm/pre/#) receives
    each message; the publisher gets its PUBACK."""
    for i, pub in enumerate(clients):
        topic, payload = f"storm/pre/{i}", f"{tag} from {i}".encode()
        pub.send(m.publish(topic, payload, qos=1, packet_id=100 + i))
        for j, c in enumerate(clients):
            need_ack, need_msg = j == i, True
            while need_ack or need_msg:
                p = c.recv()
                if p.type == m.PUBACK:
                    assert j == i and p.fields["packet_id"] == 100 + i, p
                    need_ack = False
                elif p.type == m.PUBLISH:
                    assert (p.fields["topic"], p.fields["payload"]) == (topic, payload), p
                    c.send(m.ack(m.PUBACK, p.fields["packet_id"]))
                    need_msg = False
                else:
                    raise AssertionError(f"client {j}: unexpected {p!r}")


def test_tls_handshake_storm(tls_broker, pki, sys_watch):
    """~300 concurrent connection attempts against one TLS listener (client_cert = "required"): every good
    client gets CONNACK 0 and a QoS 1 round trip, no bad attempt gets a CONNACK, stalled handshakes are closed
    at connect_timeout, the pre-storm clients still work, new clients connect afterwards, the broker lives,
    and $SYS counts every bad attempt once under its own label."""
    b = tls_broker(client_cert="required", max_pending_handshakes=2000, mqtt=f"connect_timeout = {CONNECT_TIMEOUT}")
    watch = sys_watch(b)

    pre: list[m.RawClient] = []
    try:
        for i in range(3):
            out = t.try_connect(b.tls_port, t.client_context(pki, "alice"), f"pre-{i}", keep=True)
            assert out.connack is not None and out.connack.fields["reason"] == 0, out
            out.client.send(m.subscribe(1, [("storm/pre/#", 1)]))
            assert out.client.expect(m.SUBACK).fields["reasons"] == [1]
            pre.append(out.client)

        plan = [kind for kind, n in PLAN.items() for _ in range(n)]
        random.Random(2024).shuffle(plan)
        per_kind = Counter()
        jobs = []
        for seed, kind in enumerate(plan):
            jobs.append((kind, per_kind[kind], seed))
            per_kind[kind] += 1

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = [pool.submit(run_attempt, b.tls_port, pki, kind, i, seed) for kind, i, seed in jobs]
            results = [f.result(timeout=60) for f in futures]

        stalled = [r.stalled for r in results if r.stalled is not None]
        try:
            for s in stalled:  # petrel closes each at its connect_timeout deadline (a few seconds at most)
                t.wait_closed(s, CONNECT_TIMEOUT + 5)
        finally:
            for s in stalled:
                s.close()

        good = [r for r in results if r.kind == "good"]
        bad = [r for r in results if r.kind != "good"]
        failed_good = [r for r in good if not r.ok]
        assert not failed_good, f"{len(failed_good)} of {len(good)} good clients failed: {failed_good[:5]}"
        got_connack = [r for r in bad if r.connack]
        assert not got_connack, f"bad attempts that received a CONNACK: {got_connack[:5]}"
        not_refused = [r for r in bad if not r.ok]
        assert not not_refused, f"bad attempts not cleanly refused: {not_refused[:5]}"

        # Every bad attempt is counted once, under its own label; nothing else failed.
        expected = Counter()
        for kind, n in PLAN.items():
            if kind != "good":
                expected[LABEL[kind]] += n
        total = sum(expected.values())
        log = b.log_text()
        assert "client connected: id=bad-" not in log
        # The failure log is rate-limited (20 lines per second per listener, then "N similar messages
        # suppressed"): no calendar second holds more than two windows' worth.
        lines = [ln for ln in log.splitlines() if "listener 'tls': TLS handshake failed" in ln]
        per_second = Counter(ln[:19] for ln in lines)
        assert max(per_second.values()) <= 40, per_second
        suppressed = sum(int(x) for x in re.findall(r"\((\d+) similar messages suppressed\)", log))
        assert len(lines) + suppressed <= total

        assert watch.wait("handshakes/in_progress", lambda v: v == "0", "0") == "0"
        # Nothing of the storm lingers: only the 3 pre-storm clients are still connected.
        assert watch.wait("connections/open", lambda v: v == "3", "3") == "3"
        assert watch.wait_at_least("failures", total) == total, watch.values
        # (the per-label topics follow the total in each $SYS round: wait for each of them)
        counted = {label: watch.wait_at_least(f"failures/{label}", n) for label, n in expected.items()}
        assert counted == dict(expected), watch.values
        assert watch.wait_at_least("handshakes/completed", PLAN["good"] + 3) >= PLAN["good"] + 3

        # After the storm: the pre-storm clients still work, new clients connect, the broker is alive.
        prestorm_round_trip(pre, "after the storm")
        for i in range(5):
            out = t.try_connect(b.tls_port, t.client_context(pki, "alice"), f"post-{i}", keep=True)
            assert out.connack is not None and out.connack.fields["reason"] == 0, out
            with out.client as c:
                t.qos1_roundtrip(c, f"storm/post/{i}", b"after")
        assert b.alive()
    finally:
        for c in pre:
            c.close()
