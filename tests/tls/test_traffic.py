"""MQTT over an established TLS connection: large and pipelined packets (TLS records do not align with MQTT
packets), keep alive, will on connection loss, session takeover across the TCP and TLS listeners, shutdown,
the listener's $SYS metrics, and hundreds of good clients connecting one after the other (TLS 1.2 and 1.3)."""
from __future__ import annotations

import socket
import struct

import pytest

import mqttraw as m
import tlsclient as t


def tls_client(broker, pki, client_id: str, version: int = 4, cert: str | None = "alice", **kw) -> m.RawClient:
    out = t.try_connect(broker.tls_port, t.client_context(pki, cert), client_id, version=version, keep=True, **kw)
    assert out.connack is not None and out.connack.fields["reason"] == 0, out
    return out.client


def test_large_message_over_tls(tls_broker, pki):
    """A 300 KB PUBLISH (many TLS records, far more than one read buffer) is delivered intact and acked
    [MQTT-3.3.1]."""
    b = tls_broker(client_cert="required")
    payload = bytes(range(256)) * 1200
    with tls_client(b, pki, "big-sub") as sub, tls_client(b, pki, "big-pub") as pub:
        sub.send(m.subscribe(1, [("tls/big", 1)]))
        sub.expect(m.SUBACK)
        pub.send(m.publish("tls/big", payload, qos=1, packet_id=5))
        assert pub.expect(m.PUBACK).fields["packet_id"] == 5
        got = sub.expect(m.PUBLISH, timeout=10)
        assert got.fields["payload"] == payload


def test_pipelined_publishes_over_tls(tls_broker, pki):
    """300 QoS 1 PUBLISHes written in one go (packets split across TLS records and reads) are all acked in
    order and delivered in order [MQTT-4.6.0-2]."""
    b = tls_broker()
    n = 300
    with tls_client(b, pki, "pipe-sub", cert=None) as sub, tls_client(b, pki, "pipe-pub", cert=None) as pub:
        sub.send(m.subscribe(1, [("tls/pipe", 1)]))
        sub.expect(m.SUBACK)
        pub.send(b"".join(m.publish("tls/pipe", f"m{i:04d}".encode() * 10, qos=1, packet_id=i + 1)
                          for i in range(n)))
        acks = [pub.expect(m.PUBACK).fields["packet_id"] for _ in range(n)]
        assert acks == list(range(1, n + 1))
        for i in range(n):
            p = sub.expect(m.PUBLISH)
            assert p.fields["payload"] == f"m{i:04d}".encode() * 10
            sub.send(m.ack(m.PUBACK, p.fields["packet_id"]))


def test_keep_alive_enforced_over_tls(tls_broker, pki):
    """Keep alive 1 s over TLS: a silent client is disconnected after 1.5 s, a v5 client with DISCONNECT
    0x8D (Keep Alive timeout) first [MQTT-3.1.2-24]."""
    b = tls_broker()
    with tls_client(b, pki, "ka-tls", version=5, cert=None, keepalive=1) as c:
        got = c.expect_closed(timeout=5)
    assert [p.type for p in got] == [m.DISCONNECT] and got[0].fields["reason"] == 0x8D, got


def test_will_published_when_tls_connection_lost(tls_broker, pki):
    """A TLS client that vanishes (TCP reset, no DISCONNECT) has its will published [MQTT-3.1.2-8]."""
    b = tls_broker(client_cert="required")
    with m.RawClient(b.port) as watcher:
        watcher.connect("will-watcher")
        watcher.send(m.subscribe(1, [("tls/will", 0)]))
        watcher.expect(m.SUBACK)
        c = tls_client(b, pki, "will-tls", will_topic="tls/will", will_payload=b"gone")
        raw = c.sock
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()  # RST: no close_notify, no DISCONNECT
        p = watcher.expect(m.PUBLISH)
        assert (p.fields["topic"], p.fields["payload"]) == ("tls/will", b"gone")


def test_takeover_from_tcp_listener_kicks_tls_session(tls_broker, pki):
    """The same client id connecting on the TCP listener takes over a session held on the TLS listener: the
    TLS connection gets DISCONNECT 0x8E (v5) and is closed; the new one is told session present
    [MQTT-3.1.4-3]."""
    b = tls_broker()
    old = tls_client(b, pki, "takeover", version=5, cert=None, clean=False,
                     properties=[(m.SESSION_EXPIRY_INTERVAL, 60)])
    with old, m.RawClient(b.port, version=5) as new:
        ack = new.connect("takeover", clean=False, properties=[(m.SESSION_EXPIRY_INTERVAL, 60)])
        assert ack.fields["reason"] == 0 and ack.fields["session_present"] == 1
        got = old.expect_closed()
        assert [p.type for p in got] == [m.DISCONNECT] and got[0].fields["reason"] == 0x8E, got


def test_shutdown_disconnects_tls_clients(tls_broker, pki):
    """SIGTERM with a v5 client connected over TLS: it gets DISCONNECT 0x8B (Server shutting down) and petrel
    exits 0."""
    b = tls_broker()
    with tls_client(b, pki, "shutdown-tls", version=5, cert=None) as c:
        b.proc.terminate()
        got = c.expect_closed(timeout=5)
        assert [p.type for p in got] == [m.DISCONNECT] and got[0].fields["reason"] == 0x8B, got
    assert b.proc.wait(timeout=10) == 0


def test_shutdown_with_handshakes_in_progress(tls_broker, pki):
    """SIGTERM while TLS handshakes are stalled (silent, half a ClientHello) and a client is connected: the
    connections are closed and petrel exits 0 (the fixture also checks there is no sanitizer report)."""
    b = tls_broker()
    hello = t.client_hello()
    stalled = [t.raw_connection(b.tls_port, hello[: 20 * i]) for i in range(5)]
    with tls_client(b, pki, "shutdown-busy", version=5, cert=None) as c:
        b.proc.terminate()
        assert b.proc.wait(timeout=10) == 0
        c.expect_closed(timeout=5)
    for s in stalled:
        t.wait_closed(s, timeout=5)
        s.close()


def test_listener_metrics(tls_broker, pki, sys_watch):
    """$SYS/broker/listeners/tls/...: type "tls", state "accepting", connections/accepted counts every TCP
    connection, connections/open the live ones (back to 0 when they are gone), handshakes/completed the
    successful handshakes, failures the failed ones."""
    b = tls_broker(client_cert="required")
    watch = sys_watch(b)
    assert watch.wait("type", lambda v: True) == "tls"
    assert watch.wait("state", lambda v: True) == "accepting"
    c1 = tls_client(b, pki, "metrics-1")
    c2 = tls_client(b, pki, "metrics-2")
    bad = t.try_connect(b.tls_port, t.client_context(pki, "expired"), "metrics-bad")
    assert bad.refused, bad
    assert watch.wait("connections/accepted", lambda v: v == "3", "3") == "3"
    assert watch.wait("connections/open", lambda v: v == "2", "2") == "2"
    assert watch.wait("handshakes/completed", lambda v: v == "2", "2") == "2"
    assert watch.wait("failures", lambda v: v == "1", "1") == "1"
    c1.send(m.disconnect())
    c1.expect_closed()
    c1.close()
    c2.close()
    assert watch.wait("connections/open", lambda v: v == "0", "0") == "0"
    assert watch.wait("handshakes/in_progress", lambda v: True) == "0"


SEQUENTIAL = 300  # clients in a row in the sequential tests


@pytest.mark.parametrize("version", list(t.TLS_VERSIONS))
def test_sequential_clients_each_get_connack(tls_broker, pki, version):
    """Good clients connecting one at a time to an idle broker (client_cert = "required", a valid
    certificate, TLS 1.2 or 1.3), 300 in a row: each completes the handshake, gets CONNACK 0 as the first
    packet [MQTT-3.2.0-1] and leaves with DISCONNECT (the broker closes [MQTT-3.14.4-1]) before the next
    starts. A race between the end of the TLS handshake and the start of MQTT (the CONNECT lost, or left
    unread in OpenSSL's buffer) shows up here, one connection at a time, rather than under concurrency."""
    b = tls_broker(client_cert="required")
    ctx = t.pinned_context(pki, version, "alice")
    for i in range(SEQUENTIAL):
        out = t.try_connect(b.tls_port, ctx, f"seq-{i}", keep=True, timeout=2)
        assert out.connack is not None and out.connack.fields["reason"] == 0, f"client {i} of {SEQUENTIAL}: {out}"
        assert out.tls_version == f"TLSv{version}", out.tls_version
        with out.client as c:
            c.send(m.disconnect())
            assert c.expect_closed(timeout=2) == [], f"client {i}"
    log = b.log_text()
    assert "TLS handshake failed" not in log
    assert log.count("client connected: id=seq-") == SEQUENTIAL


@pytest.mark.parametrize("version", list(t.TLS_VERSIONS))
def test_sequential_clients_pipelining_connect_and_publish(tls_broker, pki, version):
    """300 good clients one at a time (TLS 1.2 or 1.3), each sending, right after its TLS handshake and in
    one TLS write, its CONNECT and a QoS 1 PUBLISH behind it (a client need not wait for the CONNACK, MQTT
    3.1.1 section 3.1.4): each gets CONNACK 0 first [MQTT-3.2.0-1], then the PUBACK with its packet
    identifier [MQTT-4.3.2-4], and the message reaches a subscriber. The PUBLISH arrives with the end of the
    handshake, often in the same read: nothing of it may be left behind in OpenSSL's buffer."""
    b = tls_broker(client_cert="required")
    ctx = t.pinned_context(pki, version, "alice")
    with m.RawClient(b.port) as sub:
        sub.connect("seq-pipe-sub")
        sub.send(m.subscribe(1, [("tls/seq/#", 0)]))
        sub.expect(m.SUBACK)
        for i in range(SEQUENTIAL):
            sock = ctx.wrap_socket(t.raw_connection(b.tls_port, timeout=2), server_hostname="localhost")
            assert sock.version() == f"TLSv{version}", sock.version()
            with m.RawClient.over(sock, timeout=2) as c:
                c.send(m.connect(f"seq-pipe-{i}") + m.publish(f"tls/seq/{i}", b"behind the CONNECT", qos=1,
                                                             packet_id=7))
                ack = c.expect(m.CONNACK)
                assert ack.fields["reason"] == 0, f"client {i}: {ack!r}"
                assert c.expect(m.PUBACK).fields["packet_id"] == 7, f"client {i}"
                p = sub.expect(m.PUBLISH, timeout=2)
                assert (p.fields["topic"], p.fields["payload"]) == (f"tls/seq/{i}", b"behind the CONNECT"), p
                c.send(m.disconnect())
                assert c.expect_closed() == [], f"client {i}"
    assert "TLS handshake failed" not in b.log_text()
