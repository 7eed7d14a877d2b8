"""Raw HTTP over a socket, for requests http.client will not send (oversized, slow, malformed)."""
from __future__ import annotations

import socket
import time


def open_conn(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Reads until the peer closes (or `timeout` passes): (bytes read, whether it closed)."""
    deadline = time.monotonic() + timeout
    got = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return got, False
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return got, True
        if not chunk:
            return got, True
        got += chunk


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response ('HTTP/1.1 413 ...')."""
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


def exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Sends `request`, returns everything until the server closes."""
    with open_conn(port, timeout) as s:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        got, closed = read_until_closed(s, timeout)
        assert closed, f"the server kept the connection open after {got[:200]!r}"
        return got
