"""Helpers of the access-control tests (tests/auth/) that tests import (a conftest.py cannot be imported
reliably: see tests/lib/petrel_paths.py)."""
from __future__ import annotations

import mqttraw as m


def connack(port: int, client_id: str = "", version: int = 4, username: str | None = None,
            password: bytes | str | None = None) -> int:
    """The CONNACK reason code for a CONNECT with these credentials (the connection is then closed)."""
    if isinstance(password, str):
        password = password.encode()
    with m.RawClient(port, version=version) as c:
        c.send(m.connect(client_id, version=version, username=username, password=password))
        return c.expect(m.CONNACK).fields["reason"]


def jwt(claims: dict, alg: str = "HS256", key=None, header: dict | None = None) -> str:
    """A signed JSON Web Token: HS256 with `key` (bytes), RS256 / ES256 with `key` (a python3-cryptography private
    key object). Written here, independently of petrel's verifier."""
    import base64
    import hashlib
    import hmac
    import json

    def enc(b: bytes) -> bytes:
        return base64.urlsafe_b64encode(b).rstrip(b"=")

    signed = enc(json.dumps(header or {"alg": alg, "typ": "JWT"}).encode()) + b"." + enc(json.dumps(claims).encode())
    if alg == "HS256":
        sig = hmac.new(key, signed, hashlib.sha256).digest()
    else:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
        if alg == "RS256":
            sig = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = utils.decode_dss_signature(key.sign(signed, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return (signed + b"." + enc(sig)).decode()


class HttpService:
    """A small real HTTP service for petrel's HTTP backend (Python's http.server, HTTP/1.1 keep-alive, a thread
    per connection). `decide(path, request_json)` returns what to do:
      ("json", obj[, status])  answer obj as JSON (status 200 unless given)
      ("garbage",)             answer 200 with a body that is not JSON
      ("close",)               start an answer and close the connection in the middle of it
      ("hold",)                answer nothing until the test ends (a hung service)
    Records every request (path, JSON) in `requests`, the answered ones in `answered`, and the client ports of its
    connections in `connections`; `wait_requests(n)` waits until n requests arrived, `wait_answered(pred)` until an
    answer to a matching request was written. With `tls` (an ssl.SSLContext) it serves https."""

    def __init__(self, decide, tls=None):
        import http.server
        import json
        import threading
        self.requests: list[tuple[str, dict]] = []
        self.connections: set[int] = set()
        self.answered: list[dict] = []
        self.cond = threading.Condition()
        self.released = threading.Event()
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = json.loads(body)
                with service.cond:
                    service.requests.append((self.path, req))
                    service.connections.add(self.client_address[1])
                    service.cond.notify_all()
                what = decide(self.path, req)
                if what[0] == "hold":
                    service.released.wait(60)
                    return
                if what[0] == "close":
                    self.wfile.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n'
                                     b'\r\n{"res')
                    self.wfile.flush()
                    self.close_connection = True
                    return
                out = b"<html>not json</html>" if what[0] == "garbage" else json.dumps(what[1]).encode()
                self.send_response(what[2] if len(what) > 2 else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                self.wfile.flush()
                with service.cond:
                    service.answered.append(req)
                    service.cond.notify_all()

        from petrel_paths import free_port
        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def wait_requests(self, n: int, timeout: float = 10) -> list:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.requests) >= n, timeout), \
                f"{len(self.requests)} requests, wanted {n}: {self.requests}"
            return list(self.requests)

    def wait_answered(self, predicate, timeout: float = 10) -> None:
        """Waits until an answer was written for a request satisfying predicate(request_json)."""
        with self.cond:
            assert self.cond.wait_for(lambda: any(predicate(r) for r in self.answered), timeout), \
                f"no such answer; answered: {self.answered}"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


class ScramClient:
    """The client side of SCRAM-SHA-256 (RFC 5802 / 7677), written from the RFC with hashlib and hmac,
    independently of petrel's server."""

    def __init__(self, user: str, password: str, nonce: str | None = None):
        import base64
        import os
        self.user, self.password = user, password
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self.bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={self.nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        return ("n,," + self.bare).encode()

    def final(self, server_first: bytes) -> bytes:
        import base64
        import hashlib
        import hmac
        fields = dict(f.split("=", 1) for f in server_first.decode().split(","))
        assert fields["r"].startswith(self.nonce)
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={fields['r']}"
        auth_message = f"{self.bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> bool:
        import base64
        return server_final.decode() == "v=" + base64.b64encode(self.server_signature).decode()
