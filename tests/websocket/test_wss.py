"""A wss listener: WebSocket over TLS, with the TLS keys, client-certificate policies, handshake deadline,
failure labels and SIGHUP reload of a tls listener (tests/tls), and the upgrade rules of a ws one
(test_upgrade.py), with raw sockets (wsraw.py over the ssl module)."""
from __future__ import annotations

import shutil
import signal
import ssl
import time

import pytest

import mqttraw as m
import tlsclient as t

from . import wsraw as ws
from .wsraw import TEXT


def ctx(pki, cert=None) -> ssl.SSLContext:
    return t.client_context(pki, cert)


def test_wss_upgrade_and_round_trip(ws_broker, pki, sys_watch):
    """Over TLS (server certificate verified for localhost): 101 with the accept key and "mqtt", CONNACK 0, a
    QoS 1 round trip, close 1000 after DISCONNECT; $SYS type "wss", a completed handshake, no failures."""
    b = ws_broker(ws=False, wss=True)
    watch = sys_watch(b, "wss")
    ws.good_client(b.wss_port, "wss-good", tls=ctx(pki))
    assert watch.wait("type", lambda v: v == "wss", "wss") == "wss"
    assert watch.wait_at_least("handshakes/completed", 1) >= 1
    assert watch.wait("failures", lambda v: True) == "0", watch.values


def test_wss_wrong_path_404(ws_broker, pki, sys_watch):
    """Over TLS, an upgrade on another path gets 404 (Connection: close, text/plain body), the connection is
    closed, wrong_path is counted on the wss listener, and a good client then connects."""
    b = ws_broker(ws=False, wss=True)
    watch = sys_watch(b, "wss")
    with ws.WsClient(b.wss_port, tls=ctx(pki)) as c:
        c.send_raw(ws.upgrade_request("/elsewhere"))
        r = c.read_http_response()
    assert r.status == 404, r
    assert r.has_token("connection", "close") and (r.header("content-type") or "").startswith("text/plain"), r
    assert watch.wait_at_least("failures/wrong_path", 1) == 1
    ws.good_client(b.wss_port, "wss-after-404", tls=ctx(pki))


def test_wss_text_frame_closes_with_1003(ws_broker, pki):
    """Over TLS, a text frame after CONNECT gets close 1003; the listener goes on serving."""
    b = ws_broker(ws=False, wss=True)
    with ws.open_ws(b.wss_port, "wss-texter", tls=ctx(pki)) as c:
        c.send_frame(TEXT, b"hello")
        closed = c.expect_close()
        assert closed.status == 1003, closed.frame
    ws.good_client(b.wss_port, "wss-after-text", tls=ctx(pki))


@pytest.mark.parametrize("sent, label, reason", [
    (m.connect("plain-on-wss"), "plaintext_mqtt", "plaintext MQTT sent to TLS port"),
    (ws.upgrade_request(), "not_tls", "plaintext (HTTP?) sent to TLS port"),
], ids=["mqtt-connect", "http-upgrade"])
def test_plaintext_to_wss_port_refused(ws_broker, pki, sys_watch, sent, label, reason):
    """Plain TCP bytes to the wss port (an MQTT CONNECT, or a ws:// upgrade request): closed without a byte of
    answer, logged as a TLS handshake failure for that peer with its reason, counted under the TLS label; a
    good client then connects."""
    b = ws_broker(ws=False, wss=True)
    watch = sys_watch(b, "wss")
    s = t.raw_connection(b.wss_port, sent)
    port = s.getsockname()[1]
    try:
        _, got = t.wait_closed(s)
    finally:
        s.close()
    assert got == b""
    assert t.failure_line(b, port, listener="wss").endswith(f"reason={reason}")
    assert watch.wait_at_least(f"failures/{label}", 1) == 1
    ws.good_client(b.wss_port, f"wss-after-{label}", tls=ctx(pki))


def test_wss_silent_connection_times_out_in_tls_handshake(ws_broker, pki, sys_watch):
    """connect_timeout = 1 bounds the TLS handshake of a wss listener as of a tls one: a TCP connection that
    sends nothing is closed after the deadline, counted as handshake_timeout; a good client meanwhile
    connects."""
    b = ws_broker(ws=False, wss=True, mqtt="connect_timeout = 1")
    watch = sys_watch(b, "wss")
    s = t.raw_connection(b.wss_port)
    opened = time.monotonic()
    try:
        ws.good_client(b.wss_port, "wss-while-silent", tls=ctx(pki))
        t.wait_closed(s, timeout=5)
        waited = time.monotonic() - opened
    finally:
        s.close()
    assert waited >= 0.9, f"closed after {waited:.2f} s"
    assert watch.wait_at_least("failures/handshake_timeout", 1) == 1


def test_wss_half_upgrade_request_times_out(ws_broker, pki, sys_watch):
    """connect_timeout = 1 covers the TLS handshake and the upgrade together: after a good handshake, half an
    upgrade request and silence: closed without a 101 after the deadline, counted as upgrade_timeout."""
    b = ws_broker(ws=False, wss=True, mqtt="connect_timeout = 1")
    watch = sys_watch(b, "wss")
    opened = time.monotonic()
    with ws.WsClient(b.wss_port, tls=ctx(pki)) as c:
        request = ws.upgrade_request()
        c.send_raw(request[: len(request) // 2])
        ws.good_client(b.wss_port, "wss-while-half", tls=ctx(pki))
        got = c.wait_eof(timeout=5)
        waited = time.monotonic() - opened
    assert not got.startswith(b"HTTP/1.1 101"), got
    assert waited >= 0.9, f"closed after {waited:.2f} s"
    assert watch.wait_at_least("failures/upgrade_timeout", 1) == 1


@pytest.mark.parametrize("presents, label", [
    (None, "no_client_certificate"),
    ("expired", "certificate_expired"),
    ("other_ca", "certificate_unknown_issuer"),
], ids=["no-certificate", "expired", "other-ca"])
def test_wss_client_cert_required(ws_broker, pki, sys_watch, presents, label):
    """client_cert = "required" (TLS 1.2, where the certificate is judged in the handshake): a client without a
    valid certificate never gets to HTTP (the handshake fails), is counted under its label, and is never
    connected; a client with a valid one upgrades and round-trips."""
    b = ws_broker(ws=False, wss=True, client_cert="required")
    watch = sys_watch(b, "wss")
    with pytest.raises((ssl.SSLError, OSError)):
        with ws.WsClient(b.wss_port, tls=t.pinned_context(pki, "1.2", presents)) as c:
            c.send_raw(ws.upgrade_request())
            c.read_http_response()
    assert watch.wait_at_least(f"failures/{label}", 1) == 1
    ws.good_client(b.wss_port, "wss-with-cert", tls=ctx(pki, "alice"))
    assert ws.connected_ids(b, "wss-with-cert") == ["wss-with-cert"]


def test_wss_client_cert_required_tls13_refused_before_http(ws_broker, pki):
    """client_cert = "required" over TLS 1.3 (the certificate is judged after the client's side of the
    handshake): a client without a certificate gets no HTTP response, only the close, and never connects."""
    b = ws_broker(ws=False, wss=True, client_cert="required")
    response = c = None
    try:
        c = ws.WsClient(b.wss_port, tls=t.pinned_context(pki, "1.3"))
        c.send_raw(ws.upgrade_request())
        response = c.read_http_response()
    except (m.Closed, ssl.SSLError, OSError):
        pass
    finally:
        if c is not None:
            c.close()
    assert response is None, response
    b.wait_log("reason=no client certificate")
    assert ws.connected_ids(b) == []


def test_wss_sighup_reloads_certificate(ws_broker, pki, tmp_path):
    """SIGHUP re-reads a wss listener's certificate and key, as a tls listener's: a new connection sees the new
    certificate, and one established before the reload goes on working."""
    cert, key = tmp_path / "live-server.pem", tmp_path / "live-server.key"
    shutil.copyfile(pki.server.cert, cert)
    shutil.copyfile(pki.server.key, key)
    b = ws_broker(ws=False, wss=True, cert_file=cert, key_file=key)
    with ws.open_ws(b.wss_port, "before-reload", tls=ctx(pki)) as old:
        assert old.sock.getpeercert(binary_form=True) == pki.server.der
        new = pki.issue_server(tmp_path / "next-server", org="petrel reloaded")
        cert.write_bytes(new.cert.read_bytes())
        key.write_bytes(new.key.read_bytes())
        b.proc.send_signal(signal.SIGHUP)
        b.wait_log("listener 'wss': TLS certificates reloaded")
        with ws.open_ws(b.wss_port, "after-reload", tls=ctx(pki)) as fresh:
            assert fresh.sock.getpeercert(binary_form=True) == new.der
            ws.qos1_round_trip(fresh, "wss/reload/new", b"new")
        ws.qos1_round_trip(old, "wss/reload/old", b"still here")
