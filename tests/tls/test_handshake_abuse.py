"""What a TLS listener does with connections that are not good TLS clients (docs/tls.md steps 1-3):
plaintext MQTT, HTTP, random bytes, clients that stall or abort the handshake, too many handshakes at once,
a client that rejects petrel's certificate. Each is closed without any MQTT answer, logged with its reason
for that peer, and counted under its $SYS label; the listener keeps serving good clients.
"""
from __future__ import annotations

import random
import ssl
import time

import pytest

import mqttraw as m
import tlsclient as t


# TLS versions for the deadline and slot tests: a TLS 1.2 handshake ends with petrel's Finished, a TLS 1.3
# one with the client's, so the switch from handshake to CONNECT happens at a different point.
VERSIONS = list(t.TLS_VERSIONS)


def good_client_connects(broker, pki, client_id: str) -> None:
    out = t.try_connect(broker.tls_port, t.client_context(pki, "alice"), client_id)
    assert out.connack is not None and out.connack.fields["reason"] == 0, out


def test_plaintext_mqtt_to_tls_port_refused(tls_broker, pki, sys_watch):
    """A plaintext MQTT CONNECT sent to the TLS port: no CONNACK, the connection is closed, the log says
    "plaintext MQTT sent to TLS port" and plaintext_mqtt is counted."""
    b = tls_broker()
    watch = sys_watch(b)
    with m.RawClient(b.tls_port) as c:
        c.send(m.connect("plain-on-tls"))
        assert c.expect_closed() == []
        port = c.local_port
    assert t.failure_line(b, port).endswith("reason=plaintext MQTT sent to TLS port")
    assert watch.wait_at_least("failures/plaintext_mqtt", 1) == 1
    good_client_connects(b, pki, "after-plain")


def test_http_request_to_tls_port_refused(tls_broker, sys_watch):
    """An HTTP GET sent to the TLS port gets no answer, is closed, logged as plaintext (HTTP?) and counted
    as not_tls."""
    b = tls_broker()
    watch = sys_watch(b)
    s = t.raw_connection(b.tls_port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    port = s.getsockname()[1]
    _, got = t.wait_closed(s)
    s.close()
    assert got == b""
    assert t.failure_line(b, port).endswith("reason=plaintext (HTTP?) sent to TLS port")
    assert watch.wait_at_least("failures/not_tls", 1) == 1


def test_random_bytes_to_tls_port_refused(tls_broker, pki, sys_watch):
    """Random bytes (first byte 0x8F, neither a TLS record nor MQTT nor text) are refused: closed without a
    byte of answer, logged with the first byte, counted as not_tls."""
    b = tls_broker()
    watch = sys_watch(b)
    junk = bytes([0x8F]) + random.Random(7).randbytes(300)
    s = t.raw_connection(b.tls_port, junk)
    port = s.getsockname()[1]
    _, got = t.wait_closed(s)
    s.close()
    assert got == b""
    assert t.failure_line(b, port).endswith("reason=not a TLS handshake (first byte 0x8F)")
    assert watch.wait_at_least("failures/not_tls", 1) == 1
    good_client_connects(b, pki, "after-junk")


def test_garbage_tls_record_refused(tls_broker, pki):
    """Bytes that start like a TLS handshake record (0x16) but are garbage fail in OpenSSL: the connection
    is closed, with a log line for that peer; the listener keeps serving."""
    b = tls_broker()
    junk = b"\x16\x03\x01\x00\x40" + random.Random(8).randbytes(64)
    s = t.raw_connection(b.tls_port, junk)
    port = s.getsockname()[1]
    t.wait_closed(s)
    s.close()
    t.failure_line(b, port)
    good_client_connects(b, pki, "after-garbage-record")


def test_silent_connection_times_out_in_handshake(tls_broker, pki, sys_watch):
    """[mqtt] connect_timeout bounds the TLS handshake: a TCP connection that sends nothing is closed after
    the deadline (1 s), not before, logged as "handshake timeout" and counted; a good client connecting
    meanwhile is not held up."""
    b = tls_broker(mqtt="connect_timeout = 1")
    watch = sys_watch(b)
    s = t.raw_connection(b.tls_port)
    opened = time.monotonic()
    port = s.getsockname()[1]
    good_client_connects(b, pki, "while-silent")
    t.wait_closed(s, timeout=5)
    waited = time.monotonic() - opened
    s.close()
    assert waited >= 0.9, f"closed after {waited:.2f} s, before the 1 s deadline"
    assert t.failure_line(b, port).endswith("reason=handshake timeout")
    assert watch.wait_at_least("failures/handshake_timeout", 1) == 1


def test_half_client_hello_times_out_in_handshake(tls_broker, pki, sys_watch):
    """A client that sends half a ClientHello and then nothing is closed after connect_timeout (1 s), logged
    as "handshake timeout" and counted; a good client connecting meanwhile is not held up."""
    b = tls_broker(mqtt="connect_timeout = 1")
    watch = sys_watch(b)
    hello = t.client_hello()
    s = t.raw_connection(b.tls_port, hello[: len(hello) // 2])
    opened = time.monotonic()
    port = s.getsockname()[1]
    good_client_connects(b, pki, "while-half-hello")
    _, got = t.wait_closed(s, timeout=5)
    waited = time.monotonic() - opened
    s.close()
    assert got == b""
    assert waited >= 0.9, f"closed after {waited:.2f} s, before the 1 s deadline"
    assert t.failure_line(b, port).endswith("reason=handshake timeout")
    assert watch.wait_at_least("failures/handshake_timeout", 1) == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_no_connect_after_handshake_times_out(tls_broker, pki, sys_watch, version):
    """The handshake and the CONNECT share the deadline: a client that completes the TLS handshake (1.2 or
    1.3) but sends no CONNECT is closed after connect_timeout and counted as connect_timeout."""
    b = tls_broker(mqtt="connect_timeout = 1")
    watch = sys_watch(b)
    ctx = t.pinned_context(pki, version)
    sock = ctx.wrap_socket(t.raw_connection(b.tls_port), server_hostname="localhost")
    assert sock.version() == f"TLSv{version}", sock.version()
    opened = time.monotonic()
    with m.RawClient.over(sock) as c:
        assert c.expect_closed(timeout=5) == []
    waited = time.monotonic() - opened
    assert waited >= 0.8, f"closed after {waited:.2f} s, before the 1 s deadline"
    b.wait_log(f"listener 'tls': no CONNECT within 1000 ms: peer=127.0.0.1:{c.local_port}")
    assert watch.wait_at_least("failures/connect_timeout", 1) == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_handshake_and_connect_share_one_deadline(tls_broker, pki, version):
    """connect_timeout (1 s) covers the TLS handshake (1.2 or 1.3) and the CONNECT together: a client that
    spends 0.7 s on its ClientHello and then sends no CONNECT is closed 1 s after it connected, not 1 s after
    its handshake ended (docs/tls.md step 3)."""
    b = tls_broker(mqtt="connect_timeout = 1")
    ctx = t.pinned_context(pki, version)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    s = t.raw_connection(b.tls_port)
    opened = time.monotonic()
    port = s.getsockname()[1]
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    s.sendall(hello[:50])
    time.sleep(0.7)  # the slow client under test (not synchronisation)
    s.sendall(hello[50:])
    while True:  # finish the handshake through the memory BIOs
        data = s.recv(65536)
        assert data, "closed during the handshake"
        incoming.write(data)
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pass
        finally:
            if outgoing.pending:
                s.sendall(outgoing.read())
    handshake_done = time.monotonic()
    assert tls.version() == f"TLSv{version}", tls.version()
    if outgoing.pending:
        s.sendall(outgoing.read())
    t.wait_closed(s, timeout=5)
    closed = time.monotonic()
    s.close()
    assert handshake_done - opened >= 0.7
    assert closed - opened < 1.5, (f"closed {closed - opened:.2f} s after connecting, "
                                   f"{closed - handshake_done:.2f} s after the handshake: the deadline restarted")
    b.wait_log(f"listener 'tls': no CONNECT within 1000 ms: peer=127.0.0.1:{port}")


def test_client_aborting_after_client_hello(tls_broker, pki, sys_watch):
    """A client that sends a whole ClientHello and closes the socket at once costs that connection only:
    it is logged and counted (connection_lost) and the next client connects."""
    b = tls_broker()
    watch = sys_watch(b)
    s = t.raw_connection(b.tls_port, t.client_hello())
    port = s.getsockname()[1]
    s.close()
    # FIN, or RST if petrel's ServerHello reached the closed socket first
    reason = t.failure_line(b, port).split(" reason=", 1)[1]
    assert reason in ("client closed the connection during the handshake", "Connection reset by peer"), reason
    assert watch.wait_at_least("failures/connection_lost", 1) == 1
    good_client_connects(b, pki, "after-abort")


def test_client_rejecting_server_certificate(tls_broker, pki, sys_watch):
    """A client that does not trust petrel's certificate aborts the handshake with an alert; petrel logs
    "TLS alert from client: ..." for that peer and counts alert_from_client."""
    b = tls_broker()
    watch = sys_watch(b)
    distrust = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    distrust.load_verify_locations(str(pki.other_ca))  # trusts only a CA that did not sign petrel's certificate
    out = t.try_connect(b.tls_port, distrust, "distrust")
    assert out.refused and not out.handshake_ok, out
    assert "reason=TLS alert from client: " in t.failure_line(b, out.local_port)
    assert watch.wait_at_least("failures/alert_from_client", 1) == 1


def test_max_pending_handshakes_refuses_excess_then_recovers(tls_broker, pki, sys_watch):
    """max_pending_handshakes = 4: with 4 handshakes stalled, a 5th connection (even a good client) is closed
    at once, logged and counted as too_many_handshakes; once the stalled ones reach connect_timeout and are
    closed, good clients connect again."""
    b = tls_broker(mqtt="connect_timeout = 3", max_pending_handshakes=4)
    watch = sys_watch(b)
    hello = t.client_hello()
    stalled = [t.raw_connection(b.tls_port, hello[:40] if i % 2 else b"") for i in range(4)]
    assert watch.wait("handshakes/in_progress", lambda v: v == "4", "4") == "4"
    out = t.try_connect(b.tls_port, t.client_context(pki, "alice"), "fifth")
    # A good client: only the bound can have refused it, and at once, while the 4 stalled are still open.
    assert out.refused and not out.handshake_ok, out
    for s in stalled:
        s.setblocking(False)
        try:
            data = s.recv(1)
        except BlockingIOError:
            data = None  # still open, nothing received: as expected
        s.setblocking(True)
        assert data is None, f"a stalled connection was closed (or got {data!r}) before the 5th was refused"
    b.wait_log("listener 'tls': 4 TLS handshakes in progress, refusing a new connection")
    assert watch.wait_at_least("failures/too_many_handshakes", 1) >= 1
    for s in stalled:
        t.wait_closed(s, timeout=6)
        s.close()
    assert watch.wait("handshakes/in_progress", lambda v: v == "0", "0") == "0"
    for i in range(3):
        good_client_connects(b, pki, f"after-pending-{i}")
    assert watch.wait_at_least("failures/handshake_timeout", 4) == 4


@pytest.mark.parametrize("version", VERSIONS)
def test_max_pending_handshakes_slots_are_released(tls_broker, pki, sys_watch, version):
    """max_pending_handshakes = 2 counts handshakes in progress only: 10 TLS <version> handshakes that
    succeed and 10 that fail (expired client certificate, client_cert = "required"), one after the other,
    each give their slot back, so every good client connects, no connection is refused as
    too_many_handshakes, and handshakes/in_progress is back to 0."""
    b = tls_broker(client_cert="required", max_pending_handshakes=2)
    watch = sys_watch(b)
    good = t.pinned_context(pki, version, "alice")
    expired = t.pinned_context(pki, version, "expired")
    for i in range(10):
        out = t.try_connect(b.tls_port, expired, f"slot-bad-{i}")
        assert out.refused, out
        out = t.try_connect(b.tls_port, good, f"slot-good-{i}")
        assert out.connack is not None and out.connack.fields["reason"] == 0, f"good client {i}: {out}"
        assert out.tls_version == f"TLSv{version}"
    assert watch.wait_at_least("failures/certificate_expired", 10) == 10
    assert watch.wait("handshakes/in_progress", lambda v: v == "0", "0") == "0"
    assert watch.wait("failures", lambda v: v == "10", "10 (the expired ones only)") == "10"
    assert "failures/too_many_handshakes" not in watch.values
    assert "refusing a new connection" not in b.log_text()


def test_max_pending_handshakes_holds_under_a_burst(tls_broker, sys_watch):
    """max_pending_handshakes is a hard bound even when connections arrive faster than the event loops start
    them: 100 silent connections opened back to back against a bound of 4 (16 event loops) leave exactly 4
    handshakes in progress; the other 96 are refused at once as too_many_handshakes."""
    b = tls_broker(mqtt="connect_timeout = 3", max_pending_handshakes=4, threads=16)
    watch = sys_watch(b)
    socks = [t.raw_connection(b.tls_port) for _ in range(100)]
    try:
        watch.wait("connections/accepted", lambda v: v == "100", "100")
        refused = int(watch.fresh("failures/too_many_handshakes"))  # counted when accepted: final by now
        assert (100 - refused, refused) == (4, 96), f"{100 - refused} handshakes admitted: {watch.values}"
    finally:
        for s in socks:
            s.close()
