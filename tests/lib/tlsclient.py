"""TLS clients for the tests of petrel's TLS listeners: the python ssl module plus raw MQTT (mqttraw).

- client_context(): an ssl.SSLContext trusting the test CA, optionally with a client certificate.
- try_connect(): one complete attempt (TCP connect, TLS handshake, CONNECT, wait for the answer),
  reported as an Outcome: CONNACK received, or the connection closed (during or after the handshake),
  or nothing within the timeout. The local port is kept to find the broker's log line about it.
- client_hello(): the bytes of a genuine TLS ClientHello (made with ssl.MemoryBIO, no network), to send
  halves of it and stall.
- wait_closed(): how long until the broker closes a raw socket.
- SysWatch: a TCP subscriber to $SYS/broker/listeners/..., to await the per-listener counters.
- log_count() / wait_log_count(): occurrences of a text in a broker's log.
"""
from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass

import mqttraw as m

TIMEOUT = 5.0


from petrel_paths import free_port  # noqa: E402  (one implementation: below the ephemeral range)


def client_context(pki, cert=None, *, min_version: ssl.TLSVersion | None = None,
                   max_version: ssl.TLSVersion | None = None, ca=None) -> ssl.SSLContext:
    """A client context that verifies the server against the test CA (hostname "localhost"), or against
    `ca` (a CA certificate file) when given.
    cert: the name of a client certificate in pki.clients, or a certs.Issued, or None for no certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(ca if ca is not None else pki.ca))
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if cert is not None:
        issued = pki.clients[cert] if isinstance(cert, str) else cert
        ctx.load_cert_chain(str(issued.cert), str(issued.key))
    return ctx


TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def pinned_context(pki, version: str, cert=None) -> ssl.SSLContext:
    """client_context() speaking only TLS `version` ("1.2" or "1.3", a key of TLS_VERSIONS)."""
    v = TLS_VERSIONS[version]
    return client_context(pki, cert, min_version=v, max_version=v)


@dataclass
class Outcome:
    """What one connection attempt got."""
    local_port: int
    handshake_ok: bool = False
    connack: m.Packet | None = None
    closed: bool = False          # the broker closed the connection (or the handshake failed)
    error: str = ""
    client: m.RawClient | None = None  # the connected client, when a CONNACK came
    tls_version: str | None = None
    peer_cert: bytes | None = None     # the server certificate (DER) seen in the handshake

    @property
    def refused(self) -> bool:
        """Closed without ever receiving a CONNACK."""
        return self.connack is None and self.closed

    def __repr__(self) -> str:
        return (f"<Outcome port={self.local_port} handshake_ok={self.handshake_ok} connack={self.connack!r} "
                f"closed={self.closed} error={self.error!r}>")


def try_connect(port: int, ctx: ssl.SSLContext, client_id: str, *, timeout: float = TIMEOUT, version: int = 4,
                keep: bool = False, **connect_kw) -> Outcome:
    """TCP connect, TLS handshake, CONNECT, then wait for the first packet or the close.
    With keep=True and a CONNACK, the connected RawClient is left open in Outcome.client (caller closes it)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = Outcome(local_port=raw.getsockname()[1])
    try:
        sock = ctx.wrap_socket(raw, server_hostname="localhost")
    except (ssl.SSLError, ConnectionError) as e:
        raw.close()
        out.closed, out.error = True, f"handshake: {e!r}"
        return out
    except BaseException:
        raw.close()
        raise
    out.handshake_ok = True
    out.tls_version = sock.version()
    out.peer_cert = sock.getpeercert(binary_form=True)
    c = m.RawClient.over(sock, version=version, timeout=timeout)
    try:
        try:
            c.send(m.connect(client_id, version=version, **connect_kw))
        except (ssl.SSLError, OSError) as e:
            # The broker may already have closed (TLS 1.3 verifies the client certificate after the client
            # finished its side of the handshake). Read what it said, if anything.
            out.error = f"send: {e!r}"
        try:
            p = c.recv(timeout)
        except m.Closed as e:
            out.closed, out.error = True, f"{out.error} closed: {e}".strip()
            return out
        except TimeoutError:
            out.error = f"{out.error} no answer within {timeout} s".strip()
            return out
        except OSError as e:
            out.closed, out.error = True, f"{out.error} {e!r}".strip()
            return out
        if p.type == m.CONNACK:
            out.connack = p
        else:
            out.error = f"first packet {p!r}"
        if keep and out.connack is not None:
            out.client = c
            c = None
        return out
    finally:
        if c is not None:
            c.close()


def qos1_roundtrip(c: m.RawClient, topic: str, payload: bytes, packet_id: int = 1, subscribe: bool = True) -> None:
    """On a connected client: SUBSCRIBE to `topic` (QoS 1) if asked, PUBLISH QoS 1 to it, and expect both the
    PUBACK and the message back (acknowledged). Asserts on every step."""
    if subscribe:
        c.send(m.subscribe(packet_id, [(topic, 1)], version=c.version))
        sub = c.expect(m.SUBACK)
        assert sub.fields["reasons"] == [1], sub
    c.send(m.publish(topic, payload, qos=1, packet_id=packet_id, version=c.version))
    got_ack = got_msg = False
    while not (got_ack and got_msg):
        p = c.recv()
        if p.type == m.PUBACK:
            assert p.fields["packet_id"] == packet_id, p
            got_ack = True
        elif p.type == m.PUBLISH:
            assert (p.fields["topic"], p.fields["payload"], p.fields["qos"]) == (topic, payload, 1), p
            c.send(m.ack(m.PUBACK, p.fields["packet_id"]))
            got_msg = True
        else:
            raise AssertionError(f"unexpected {p!r}")


_hello_cache: dict[tuple, bytes] = {}


def client_hello(server_hostname: str = "localhost", max_version: ssl.TLSVersion | None = None) -> bytes:
    """The first flight of a TLS client: one record holding a ClientHello (starts with 0x16 0x03)."""
    key = (server_hostname, max_version)
    if key not in _hello_cache:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if max_version is not None:
            ctx.maximum_version = max_version
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = outgoing.read()
        assert hello[:1] == b"\x16" and len(hello) > 100, hello[:16]
        _hello_cache[key] = hello
    return _hello_cache[key]


def raw_connection(port: int, send: bytes = b"", timeout: float = TIMEOUT) -> socket.socket:
    """A plain TCP connection to `port` that sends `send` (maybe nothing) and then waits."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if send:
        s.sendall(send)
    return s


def wait_closed(s: socket.socket, timeout: float = TIMEOUT) -> tuple[float, bytes]:
    """Reads until the peer closes the connection. Returns (seconds waited, bytes received before the close).
    AssertionError if it is still open after `timeout`."""
    start = time.monotonic()
    deadline = start + timeout
    got = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"connection still open after {timeout} s (received {got[:64]!r})")
        s.settimeout(remaining)
        try:
            chunk = s.recv(65536)
        except (socket.timeout, TimeoutError):
            continue
        except ConnectionError:
            return time.monotonic() - start, got
        if not chunk:
            return time.monotonic() - start, got
        got += chunk


def failure_line(broker, local_port: int, listener: str = "tls", timeout: float = TIMEOUT) -> str:
    """The broker's "TLS handshake failed" log line about the connection from 127.0.0.1:<local_port>
    (waits for it)."""
    start = f"listener '{listener}': TLS handshake failed: peer=127.0.0.1:{local_port} reason="
    log = broker.wait_log(start, timeout)
    return next(ln for ln in log.splitlines() if start in ln)


def log_count(broker, text: str) -> int:
    return broker.log_text().count(text)


def wait_log_count(broker, text: str, count: int, timeout: float = TIMEOUT) -> str:
    """Waits until `text` occurs at least `count` times in the broker's log; returns the log."""
    deadline = time.monotonic() + timeout
    while True:
        log = broker.log_text()
        if log.count(text) >= count:
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not {count} times in the broker log:\n{log[-3000:]}")
        time.sleep(0.02)


class SysWatch:
    """A TCP client subscribed to $SYS/broker/listeners/<listener>/#; remembers the latest value of each topic.
    Needs [sys] interval = 1 (the values are republished, retained, every interval)."""

    def __init__(self, broker, listener: str = "tls", client_id: str = "sys-watch"):
        self.prefix = f"$SYS/broker/listeners/{listener}/"
        self.values: dict[str, str] = {}
        self.c = m.RawClient(broker.port)
        self.c.connect(client_id)
        self.c.send(m.subscribe(1, [(self.prefix + "#", 0)]))
        self.c.expect(m.SUBACK)

    def _pump(self, timeout: float) -> None:
        p = self.c.recv(timeout)
        if p.type == m.PUBLISH and p.fields["topic"].startswith(self.prefix):
            self.values[p.fields["topic"][len(self.prefix):]] = p.fields["payload"].decode()

    def wait(self, key: str, predicate, what: str = "", timeout: float = TIMEOUT) -> str:
        """Waits until the value of <prefix><key> satisfies predicate(str); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.values.get(key)
            if v is not None and predicate(v):
                return v
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"$SYS {self.prefix}{key} = {v!r}, never {what or 'as expected'} "
                                     f"within {timeout} s; all: {self.values}")
            try:
                self._pump(remaining)
            except TimeoutError:
                pass

    def fresh(self, key: str, timeout: float = TIMEOUT) -> str:
        """The value of <prefix><key> in the next publication of it (not one already seen)."""
        self.values.pop(key, None)
        return self.wait(key, lambda v: True, "published", timeout)

    def wait_at_least(self, key: str, n: int, timeout: float = TIMEOUT) -> int:
        return int(self.wait(key, lambda v: int(v) >= n, f">= {n}", timeout))

    def close(self) -> None:
        self.c.close()
