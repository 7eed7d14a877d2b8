"""The HTTP listener's limits and its answers to bad requests (docs/http-api.md, "Limits").

Request bodies above max_body_size get 413 (judged from Content-Length, before the body is read), header
blocks above max_header_size 431; a client that does not complete its header within header_timeout or its
body within body_timeout is closed without an answer; past max_connections a connection gets 429; garbage is
400, an unknown path 404, a wrong method 405, a body that is not JSON 400 saying what is wrong. The listener
keeps serving others meanwhile.
"""
from __future__ import annotations

import socket
import time

from .conftest import Api
from .rawhttp import exchange, open_conn, read_until_closed, status_of


def test_body_over_the_limit_is_413_without_reading_it(http_broker):
    b = http_broker(http="max_body_size = 2048\n")
    got = exchange(b.http_port, b"POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                b"Content-Length: 100000000\r\n\r\n")
    assert status_of(got) == 413, got
    assert b"max_body_size (2048 bytes)" in got
    # A chunked body growing past the limit is cut at it too.
    with open_conn(b.http_port) as s:
        s.sendall(b"POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(4):
                s.sendall(b"400\r\n" + b"x" * 1024 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        got, closed = read_until_closed(s, 5)
        assert closed and status_of(got) == 413, got
    r = b.api.post("/api/v1/publish", {"topic": "limits/ok", "payload": "x" * 1000})
    assert r.status == 200, r


def test_header_over_the_limit_is_431(http_broker):
    b = http_broker(http="max_header_size = 4096\n")
    got = exchange(b.http_port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
    assert status_of(got) == 431, got


def test_slow_header_is_closed_at_header_timeout(http_broker):
    b = http_broker(http="header_timeout = 1\n")
    with open_conn(b.http_port) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finishes its header
        assert b.api.get("/health").status == 200  # others are served meanwhile
        got, closed = read_until_closed(slow, 6)
        assert closed and got == b"", got


def test_slow_body_is_closed_at_body_timeout(http_broker):
    b = http_broker(http="body_timeout = 1\n")
    with open_conn(b.http_port) as slow:
        slow.sendall(b"POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"topic\"")
        got, closed = read_until_closed(slow, 6)
        assert closed and got == b"", got
    assert b.api.get("/health").status == 200


def test_connections_over_the_cap_get_429(http_broker):
    b = http_broker(http="max_connections = 2\nheader_timeout = 30\n")
    held = [open_conn(b.http_port), open_conn(b.http_port)]
    try:
        # The two idle connections are accepted (their requests may come later); the third is refused.
        deadline = time.monotonic() + 5
        while True:
            got = exchange(b.http_port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if status_of(got) == 429 or time.monotonic() > deadline:
                break
        assert status_of(got) == 429, got
        assert b"max_connections = 2" in got
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 5
    while True:
        r = b.api.get("/health")
        if r.status == 200 or time.monotonic() > deadline:
            break
    assert r.status == 200, r


def test_garbage_is_400(http_broker):
    b = http_broker()
    got = exchange(b.http_port, b"THIS IS NOT HTTP\r\n\r\n")
    assert status_of(got) == 400, got
    got = exchange(b.http_port, b"GET nopath HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(got) == 400, got


def test_unknown_path_is_404_and_wrong_method_405(http_broker):
    b = http_broker()
    r = b.api.get("/api/v1/nothing-here")
    assert r.status == 404 and r.json()["error"]["message"] == "no such endpoint: /api/v1/nothing-here", r
    r = b.api.request("PUT", "/api/v1/clients")
    assert r.status == 405, r
    assert r.headers["allow"] == "GET"
    r = b.api.request("DELETE", "/health")
    assert r.status == 405 and r.headers["allow"] == "GET", r


def test_malformed_json_is_400_saying_what_is_wrong(http_broker):
    b = http_broker()
    r = b.api.post("/api/v1/publish", b'{"topic": "a", "payload": }')
    assert r.status == 400, r
    msg = r.json()["error"]["message"]
    assert msg.startswith("the body is not valid JSON") and "parse error" in msg, msg
    r = b.api.post("/api/v1/publish", b'["a"]')
    assert r.status == 400 and r.json()["error"]["message"] == "the body must be a JSON object", r


def test_keep_alive_serves_several_requests_on_one_connection(http_broker):
    b = http_broker()
    c = b.api.connection()
    try:
        for _ in range(3):
            assert b.api.get("/health", conn=c).status == 200
        assert b.api.get("/api/v1/stats", conn=c).status == 200
    finally:
        c.close()
