"""The HTTP upgrade of a ws listener (RFC 6455 section 4; MQTT 5.0 section 6), with raw sockets (wsraw.py).

Accepted: GET on the configured path (any query string), with the WebSocket headers and an acceptable
subprotocol ("mqtt", or "mqttv3.1" for MQTT 3.1 clients); the 101 names the first acceptable one of the
client's list. Refused, each with an HTTP/1.1 error (Connection: close, a text/plain body), a closed
connection and a count under $SYS/broker/listeners/<name>/failures/<label>:

| request | status | label |
| ------- | ------ | ----- |
| not parseable as HTTP | 400 | bad_http_request |
| a method other than GET | 405 | bad_method |
| another path | 404 | wrong_path |
| a GET without the upgrade headers | 426 | not_websocket |
| no Sec-WebSocket-Key, or Sec-WebSocket-Version not 13 | 400 | bad_upgrade |
| no acceptable subprotocol | 400 | no_subprotocol |
| nothing complete within connect_timeout | (closed) | upgrade_timeout |

After each refusal the listener goes on serving: a good client connects on it. X-Forwarded-For names the
client in the log only when it comes from a trusted proxy.
"""
from __future__ import annotations

import re
import time
from collections import Counter

import pytest

import mqttraw as m
import tlsclient as t

from . import wsraw as ws
from .wsraw import upgrade_request as req

# (test id, request bytes, HTTP status, failure label)
REFUSALS = [
    ("garbage-request-line", b"HELLO THERE\r\n\r\n", 400, "bad_http_request"),
    ("header-without-colon", b"GET /mqtt HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n", 400, "bad_http_request"),
    ("binary-junk", bytes(range(0x80, 0xC0)) + b"\r\n\r\n", 400, "bad_http_request"),
    ("post", req(method="POST"), 405, "bad_method"),
    ("put", req(method="PUT"), 405, "bad_method"),
    ("root-path", req("/"), 404, "wrong_path"),
    ("other-path", req("/other?x=/mqtt"), 404, "wrong_path"),
    ("trailing-slash", req("/mqtt/"), 404, "wrong_path"),
    ("longer-path", req("/mqttx"), 404, "wrong_path"),
    ("upper-case-path", req("/MQTT"), 404, "wrong_path"),
    ("plain-get", req(upgrade=False), 426, "not_websocket"),
    ("no-key", req(omit=("Sec-WebSocket-Key",)), 400, "bad_upgrade"),
    ("version-8", req(version="8"), 426, "bad_upgrade"),
    ("no-version", req(version=None), 400, "bad_upgrade"),
    ("no-subprotocol", req(protocols=None), 400, "no_subprotocol"),
    ("other-subprotocols", req(protocols="chat, wamp"), 400, "no_subprotocol"),
    ("mqtt-as-prefix-only", req(protocols="mqttv5"), 400, "no_subprotocol"),
]


def refuse(port: int, request: bytes, tls=None) -> ws.HttpResponse:
    """Sends `request` and returns the broker's HTTP answer, after checking what every refusal must have: a
    status line, Connection: close, a text/plain body (as long as Content-Length says, if it says) and the TCP
    close."""
    with ws.WsClient(port, tls=tls) as c:
        c.send_raw(request)
        r = c.read_http_response()
    assert r.version == "HTTP/1.1", r
    assert r.has_token("connection", "close"), r
    assert (r.header("content-type") or "").startswith("text/plain"), r
    assert r.body.strip(), f"empty body: {r!r}"
    if r.header("content-length") is not None:
        assert int(r.header("content-length")) == len(r.body), r
    return r


def check_refusal_specifics(r: ws.HttpResponse, status: int, request: bytes) -> None:
    """The expected status, and nothing that looks like an accepted upgrade."""
    assert r.status == status, f"request {request[:80]!r}: expected {status}, got {r!r}"
    assert r.header("sec-websocket-accept") is None, r


@pytest.mark.parametrize("request_, status, label", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusal(ws_broker, request_, status, label):
    """A bad upgrade request gets its HTTP status (with Connection: close and a text/plain body), the
    connection is closed, and a good client then connects, round-trips a QoS 1 message and is closed with 1000
    after its DISCONNECT on the same listener; nobody connected from the refused request."""
    b = ws_broker()
    r = refuse(b.ws_port, request_)
    check_refusal_specifics(r, status, request_)
    ws.good_client(b.ws_port, f"after-{label}")
    assert ws.connected_ids(b, f"after-{label}") == [f"after-{label}"]
    assert b.alive()


@pytest.mark.parametrize("request_, header, token", [
    # RFC 9110 15.5.6: "The origin server MUST generate an Allow header field in a 405 response".
    (req(method="POST"), "allow", "GET"),
    # RFC 9110 15.5.22: "The server MUST send an Upgrade header field in a 426 response".
    (req(upgrade=False), "upgrade", "websocket"),
    # RFC 6455 4.2.2: an unsupported version is refused with "a |Sec-WebSocket-Version| header field indicating
    # the version(s) the server is capable of understanding".
    (req(version="8"), "sec-websocket-version", "13"),
], ids=["405-allow", "426-upgrade", "version-8-sec-websocket-version"])
def test_refusal_carries_the_header_http_requires(ws_broker, request_, header, token):
    """The refusals whose status comes with a required header field carry it."""
    b = ws_broker()
    with ws.WsClient(b.ws_port) as c:
        c.send_raw(request_)
        r = c.read_http_response()
    assert r.status != 101, r
    assert r.has_token(header, token), r


def test_refusals_counted_by_label(ws_broker, sys_watch):
    """Every refusal of the table, each followed by a good client, on one listener: $SYS counts each under its
    label, exactly, and nothing else (the good clients are not failures); the listener's type is "ws"."""
    b = ws_broker()
    watch = sys_watch(b, "ws")
    expected = Counter()
    for i, (name, request, _status, label) in enumerate(REFUSALS):
        with ws.WsClient(b.ws_port) as c:  # (test_refusal checks each answer)
            c.send_raw(request)
            assert c.read_http_response().status != 101, name
        expected[label] += 1
        ws.good_client(b.ws_port, f"good-{i}")
    assert watch.wait("type", lambda v: v == "ws", "ws") == "ws"
    total = sum(expected.values())
    assert watch.wait_at_least("failures", total) == total, watch.values
    counted = {label: watch.wait_at_least(f"failures/{label}", n) for label, n in expected.items()}
    assert counted == dict(expected), watch.values


def test_upgrade_response(ws_broker, sys_watch):
    """A good upgrade: 101 with Upgrade: websocket, Connection: Upgrade, the Sec-WebSocket-Accept of the key
    and the subprotocol "mqtt"; then MQTT in binary frames (CONNACK 0), the broker logs the connection with
    the TCP peer's address, and $SYS counts it as an open connection of the ws listener."""
    b = ws_broker()
    watch = sys_watch(b, "ws")
    with ws.WsClient(b.ws_port) as c:
        key = ws.new_key()
        c.send_raw(req(key=key, headers=[("Origin", "http://example.com"), ("User-Agent", "wsraw")]))
        r = c.read_http_response()
        assert r.status == 101, r
        assert r.has_token("upgrade", "websocket") and r.has_token("connection", "upgrade"), r
        assert r.header("sec-websocket-accept") == ws.accept_for(key), r
        assert r.header("sec-websocket-protocol") == "mqtt", r
        assert c.connect("ws-hello").fields["reason"] == 0
        log = b.wait_log("client connected: id=ws-hello ")
        line = next(ln for ln in log.splitlines() if "client connected: id=ws-hello " in ln)
        assert f"peer=127.0.0.1:{c.local_port} " in line, line
        assert watch.wait("connections/open", lambda v: v == "1", "1") == "1"
        c.send_binary(m.disconnect())
        assert c.expect_close().status == 1000
    assert watch.wait("connections/open", lambda v: v == "0", "0") == "0"


@pytest.mark.parametrize("offered, chosen", [
    ("mqtt", "mqtt"),
    ("chat, mqtt", "mqtt"),
    ("mqtt, mqttv3.1", "mqtt"),
    ("mqttv3.1, mqtt", "mqttv3.1"),
    ("wamp,mqttv3.1", "mqttv3.1"),
])
def test_subprotocol_choice(ws_broker, offered, chosen):
    """The 101 echoes the first acceptable subprotocol of the client's list ("mqtt" or "mqttv3.1")."""
    b = ws_broker()
    with ws.WsClient(b.ws_port) as c:
        c.upgrade(protocols=offered, expect_protocol=chosen)
        assert c.connect(f"sp-{len(offered)}").fields["reason"] == 0


def test_mqtt31_client_with_mqttv31_subprotocol(ws_broker):
    """An old client: subprotocol "mqttv3.1" and an MQTT 3.1 CONNECT (MQIsdp, level 3): CONNACK 0, a QoS 1
    round trip, and close 1000 after its DISCONNECT."""
    b = ws_broker()
    with ws.WsClient(b.ws_port, version=3) as c:
        c.upgrade(protocols="mqttv3.1", expect_protocol="mqttv3.1")
        assert c.connect("old-client", version=3).fields["reason"] == 0
        ws.qos1_round_trip(c, "ws/mqtt31", b"from 2010")
        c.send_binary(m.disconnect())
        assert c.expect_close().status == 1000
    assert " protocol=3.1 " in connected_line(b, "old-client")


def test_query_string_is_not_part_of_the_path(ws_broker):
    """/mqtt?token=abc is the path /mqtt: upgraded."""
    b = ws_broker()
    with ws.WsClient(b.ws_port) as c:
        c.upgrade("/mqtt?token=abc&x=%2F")
        assert c.connect("with-query").fields["reason"] == 0


def test_configured_path(ws_broker):
    """path = "/ws/broker": that path (and with a query) is upgraded, the default /mqtt is now 404."""
    b = ws_broker(path="/ws/broker")
    check_refusal_specifics(refuse(b.ws_port, req("/mqtt")), 404, b"")
    ws.good_client(b.ws_port, "custom-path", path="/ws/broker")
    with ws.WsClient(b.ws_port) as c:
        c.upgrade("/ws/broker?a=b")
        assert c.connect("custom-path-query").fields["reason"] == 0


def test_header_names_and_tokens_are_case_insensitive(ws_broker):
    """Header names and the Upgrade/Connection tokens are case-insensitive (RFC 9110 5.1, 7.8; RFC 6455 4.2.1),
    and Connection may list other tokens besides Upgrade (as browsers send "keep-alive, Upgrade")."""
    b = ws_broker()
    key = ws.new_key()
    request = (f"GET /mqtt HTTP/1.1\r\nhost: 127.0.0.1\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
               f"sec-websocket-key: {key}\r\nSEC-WEBSOCKET-VERSION: 13\r\nsec-websocket-protocol: mqtt\r\n\r\n")
    with ws.WsClient(b.ws_port) as c:
        c.send_raw(request.encode())
        r = c.read_http_response()
        assert r.status == 101, r
        assert r.header("sec-websocket-accept") == ws.accept_for(key), r
        assert c.connect("case-insensitive").fields["reason"] == 0


def test_request_sent_byte_by_byte(ws_broker):
    """An upgrade request that arrives one byte per TCP segment is upgraded all the same."""
    b = ws_broker()
    key = ws.new_key()
    with ws.WsClient(b.ws_port) as c:
        for byte in req(key=key):
            c.send_raw(bytes([byte]))
        r = c.read_http_response()
        assert r.status == 101 and r.header("sec-websocket-accept") == ws.accept_for(key), r
        assert c.connect("byte-by-byte").fields["reason"] == 0


@pytest.mark.parametrize("sent", ["nothing", "half-request", "all-but-the-blank-line"])
def test_upgrade_deadline(ws_broker, sys_watch, sent):
    """connect_timeout = 1: a connection that has not completed its upgrade request within the deadline (sent
    nothing, half of it, or all but the final blank line) is closed without a 101 after the deadline (not
    before), and counted as upgrade_timeout; a good client connecting meanwhile is not held up."""
    b = ws_broker(mqtt="connect_timeout = 1")
    watch = sys_watch(b, "ws")
    full = req()
    partial = {"nothing": b"", "half-request": full[: len(full) // 2], "all-but-the-blank-line": full[:-2]}[sent]
    s = t.raw_connection(b.ws_port, partial)
    opened = time.monotonic()
    try:
        ws.good_client(b.ws_port, f"while-{sent}")
        _, got = t.wait_closed(s, timeout=5)
        waited = time.monotonic() - opened
    finally:
        s.close()
    assert not got.startswith(b"HTTP/1.1 101"), got
    assert waited >= 0.9, f"closed after {waited:.2f} s, before the 1 s deadline"
    assert watch.wait_at_least("failures/upgrade_timeout", 1) == 1, watch.values
    assert "failures/connect_timeout" not in watch.values, watch.values


def test_deadline_covers_connect_after_upgrade(ws_broker, sys_watch):
    """connect_timeout = 1 also bounds the CONNECT: a client that upgrades at once and then sends nothing is
    closed after the deadline, counted as connect_timeout (not upgrade_timeout), and never logged as
    connected."""
    b = ws_broker(mqtt="connect_timeout = 1")
    watch = sys_watch(b, "ws")
    with ws.WsClient(b.ws_port) as c:
        opened = time.monotonic()
        c.upgrade()
        c.expect_failed(timeout=5)
        waited = time.monotonic() - opened
        assert c.stream == bytearray(), "MQTT bytes sent to a client that never sent CONNECT"
    assert waited >= 0.9, f"closed after {waited:.2f} s, before the 1 s deadline"
    assert watch.wait_at_least("failures/connect_timeout", 1) == 1, watch.values
    assert "failures/upgrade_timeout" not in watch.values, watch.values
    assert ws.connected_ids(b) == []


def connected_line(b, client_id: str) -> str:
    log = b.wait_log(f"client connected: id={client_id} ")
    return next(ln for ln in log.splitlines() if f"client connected: id={client_id} " in ln)


@pytest.mark.parametrize("forwarded, shown", [
    ("203.0.113.7", "203.0.113.7"),
    ("198.51.100.1, 203.0.113.7", "203.0.113.7"),
    ("2001:db8::7", "2001:db8::7"),
])
def test_x_forwarded_for_from_trusted_proxy(ws_broker, forwarded, shown):
    """trusted_proxies = ["127.0.0.1"]: a client behind that proxy (X-Forwarded-For) is logged with the last
    X-Forwarded-For entry as its peer, not with the proxy's address."""
    b = ws_broker(trusted_proxies=["127.0.0.1"])
    with ws.WsClient(b.ws_port) as c:
        c.upgrade(headers=[("X-Forwarded-For", forwarded)])
        assert c.connect("behind-proxy").fields["reason"] == 0
        line = connected_line(b, "behind-proxy")
        peer = line.split(" peer=", 1)[1].split(" ", 1)[0]
        # the address, perhaps in brackets (IPv6), perhaps with a port
        assert re.fullmatch(rf"\[?{re.escape(shown)}\]?(:\d+)?", peer), line


@pytest.mark.parametrize("trusted", [None, ["10.1.2.3"]], ids=["no-trusted-proxies", "other-proxy"])
def test_x_forwarded_for_from_untrusted_peer_ignored(ws_broker, trusted):
    """Without trusted_proxies, or when the peer is not one of them, X-Forwarded-For is not believed: the log
    shows the TCP peer."""
    b = ws_broker(trusted_proxies=trusted)
    with ws.WsClient(b.ws_port) as c:
        c.upgrade(headers=[("X-Forwarded-For", "203.0.113.7")])
        assert c.connect("not-behind-proxy").fields["reason"] == 0
        line = connected_line(b, "not-behind-proxy")
        assert f"peer=127.0.0.1:{c.local_port} " in line, line
