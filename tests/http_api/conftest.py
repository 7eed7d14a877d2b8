"""Fixtures for the HTTP listener tests (tests/http/).

`http_broker(config="", http="", **kw)`: a petrel (tests/conftest.py's make_broker) whose [http] table is
`port = <free port>` plus the keys in `http`; `config` goes before it (other tables). The broker gets
`.api` (an Api client without a token) and `.http_port`; it is returned once /ready answers 200.
`Api(port, token=None, tls=None)`: a small client on http.client: get/post/delete return a Reply with
status, headers, text and json(). Real HTTP requests, one connection per request unless `keep` is used.
"""
from __future__ import annotations

import http.client
import json
import ssl
import time

import pytest

from petrel_paths import free_port


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body
        self.text = body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.text[:300]!r}>"


class Api:
    def __init__(self, port: int, token: str | None = None, tls: ssl.SSLContext | None = None,
                 host: str = "127.0.0.1", timeout: float = 10.0):
        self.port, self.token, self.tls, self.host, self.timeout = port, token, tls, host, timeout

    def connection(self) -> http.client.HTTPConnection:
        if self.tls is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.tls)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(self, method: str, path: str, body=None, headers: dict | None = None,
                conn: http.client.HTTPConnection | None = None) -> Reply:
        h = dict(headers or {})
        if self.token is not None and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        own = conn is None
        c = conn or self.connection()
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            if own:
                c.close()

    def get(self, path: str, **kw) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body=None, **kw) -> Reply:
        return self.request("POST", path, body if body is not None else {}, **kw)

    def delete(self, path: str, **kw) -> Reply:
        return self.request("DELETE", path, **kw)


@pytest.fixture
def http_broker(make_broker):
    def make(config: str = "", http: str = "", **kw):
        port = free_port()
        b = make_broker(config=config + f"[http]\nport = {port}\n" + http, **kw)
        b.http_port = port
        b.api = Api(port)
        b.wait_log("http: serving the operator API")
        # Until every event loop runs, /ready says "start-up is not complete": tests start from ready.
        deadline = time.monotonic() + 10
        while b.api.get("/ready").status != 200:
            assert time.monotonic() < deadline, f"/ready never answered 200: {b.api.get('/ready')!r}"
            time.sleep(0.02)
        return b

    return make
