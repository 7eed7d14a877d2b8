"""Raw MQTT on the wire, for black-box tests.

Builds packets byte by byte (independently of petrel's own codec, so the two
check each other) and reads whole packets back from a socket with a deadline.
Only what the tests need: packets are built from explicit fields, and decoded
into a small Packet record (type, flags, body) with helpers to pick it apart.
RawClient is synchronous (the test thread reads); AsyncClient reads on a
background thread and answers QoS acknowledgements itself, for tests that run
many clients at once.
"""
from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP",
         8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP",
         14: "DISCONNECT", 15: "AUTH"}

# Property identifiers (MQTT 5.0 section 2.2.2.2)
PAYLOAD_FORMAT_INDICATOR = 0x01
MESSAGE_EXPIRY_INTERVAL = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_IDENTIFIER = 0x0B
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTHENTICATION_METHOD = 0x15
AUTHENTICATION_DATA = 0x16
REQUEST_PROBLEM_INFORMATION = 0x17
WILL_DELAY_INTERVAL = 0x18
REQUEST_RESPONSE_INFORMATION = 0x19
RESPONSE_INFORMATION = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
SHARED_SUBSCRIPTION_AVAILABLE = 0x2A

_BYTE = {PAYLOAD_FORMAT_INDICATOR, REQUEST_PROBLEM_INFORMATION, REQUEST_RESPONSE_INFORMATION, MAXIMUM_QOS,
         RETAIN_AVAILABLE, WILDCARD_SUBSCRIPTION_AVAILABLE, SUBSCRIPTION_IDENTIFIER_AVAILABLE,
         SHARED_SUBSCRIPTION_AVAILABLE}
_U16 = {SERVER_KEEP_ALIVE, RECEIVE_MAXIMUM, TOPIC_ALIAS_MAXIMUM, TOPIC_ALIAS}
_U32 = {MESSAGE_EXPIRY_INTERVAL, SESSION_EXPIRY_INTERVAL, WILL_DELAY_INTERVAL, MAXIMUM_PACKET_SIZE}
_STR = {CONTENT_TYPE, RESPONSE_TOPIC, ASSIGNED_CLIENT_IDENTIFIER, AUTHENTICATION_METHOD, RESPONSE_INFORMATION,
        SERVER_REFERENCE, REASON_STRING}
_BIN = {CORRELATION_DATA, AUTHENTICATION_DATA}


# ----------------------------------------------------------------- encoding --

def open_socket(port: int, host: str = "127.0.0.1", timeout: float = 5.0, tls: ssl.SSLContext | None = None,
                server_hostname: str = "localhost") -> socket.socket:
    """A TCP connection to the broker (Nagle off), wrapped in TLS when `tls` is given (the handshake runs
    here; ssl.SSLError / OSError propagate and the socket is closed)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is not None:
        try:
            sock = tls.wrap_socket(sock, server_hostname=server_hostname)
        except BaseException:
            sock.close()
            raise
    return sock


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def u16(n: int) -> bytes:
    return struct.pack("!H", n)


def u32(n: int) -> bytes:
    return struct.pack("!I", n)


def mstr(s: str | bytes) -> bytes:
    """A length-prefixed UTF-8 string (or raw bytes, for invalid-UTF-8 tests)."""
    b = s.encode() if isinstance(s, str) else s
    return u16(len(b)) + b


def props(items: list[tuple[int, object]] | bytes | None) -> bytes:
    """A property block with its length prefix. items: [(id, value)], in order, or raw bytes
    (already-encoded properties, for malformed-property tests) that only get the length prefix."""
    if isinstance(items, (bytes, bytearray)):
        return varint(len(items)) + bytes(items)
    body = bytearray()
    for pid, value in items or []:
        body += varint(pid)
        if pid in _BYTE:
            body += bytes([value])
        elif pid in _U16:
            body += u16(value)
        elif pid in _U32:
            body += u32(value)
        elif pid == SUBSCRIPTION_IDENTIFIER:
            body += varint(value)
        elif pid == USER_PROPERTY:
            body += mstr(value[0]) + mstr(value[1])
        elif pid in _STR or pid in _BIN:
            body += mstr(value)
        else:
            raise ValueError(f"unknown property {pid}")
    return varint(len(body)) + bytes(body)


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def connect(client_id: str | bytes = "", version: int = 4, clean: bool = True, keepalive: int = 60,
            username: str | None = None, password: bytes | None = None,
            will_topic: str | None = None, will_payload: bytes = b"", will_qos: int = 0, will_retain: bool = False,
            properties: list | None = None, will_properties: list | None = None, flags_override: int | None = None,
            protocol_name: bytes | None = None) -> bytes:
    name = protocol_name if protocol_name is not None else (b"MQIsdp" if version == 3 else b"MQTT")
    flags = 0
    if clean:
        flags |= 0x02
    if will_topic is not None:
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    if flags_override is not None:
        flags = flags_override
    body = mstr(name) + bytes([version, flags]) + u16(keepalive)
    if version == 5:
        body += props(properties)
    body += mstr(client_id)
    if will_topic is not None:
        if version == 5:
            body += props(will_properties)
        body += mstr(will_topic) + mstr(will_payload)
    if username is not None:
        body += mstr(username)
    if password is not None:
        body += mstr(password)
    return packet(CONNECT, 0, body)


def publish(topic: str | bytes, payload: bytes = b"", qos: int = 0, retain: bool = False, dup: bool = False,
            packet_id: int = 1, version: int = 4, properties: list | None = None) -> bytes:
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = mstr(topic)
    if qos > 0:
        body += u16(packet_id)
    if version == 5:
        body += props(properties)
    return packet(PUBLISH, flags, body + payload)


def ack(ptype: int, packet_id: int, reason: int | None = None, properties: list | None = None) -> bytes:
    """PUBACK/PUBREC/PUBREL/PUBCOMP; reason/properties only for v5."""
    body = u16(packet_id)
    if reason is not None:
        body += bytes([reason])
        if properties is not None:
            body += props(properties)
    return packet(ptype, 0x02 if ptype == PUBREL else 0, body)


def subscribe(packet_id: int, filters: list[tuple[str, int]], version: int = 4, properties: list | None = None) -> bytes:
    """filters: [(filter, options byte)] (v3: options = QoS)."""
    body = u16(packet_id)
    if version == 5:
        body += props(properties)
    for f, opts in filters:
        body += mstr(f) + bytes([opts])
    return packet(SUBSCRIBE, 0x02, body)


def unsubscribe(packet_id: int, filters: list[str], version: int = 4, properties: list | None = None) -> bytes:
    body = u16(packet_id)
    if version == 5:
        body += props(properties)
    for f in filters:
        body += mstr(f)
    return packet(UNSUBSCRIBE, 0x02, body)


def pingreq() -> bytes:
    return packet(PINGREQ, 0, b"")


def disconnect(reason: int | None = None, properties: list | None = None) -> bytes:
    body = b""
    if reason is not None:
        body += bytes([reason])
        if properties is not None:
            body += props(properties)
    return packet(DISCONNECT, 0, body)


def auth(reason: int = 0, properties: list | None = None) -> bytes:
    return packet(AUTH, 0, bytes([reason]) + props(properties))


# ----------------------------------------------------------------- decoding --

class Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def u8(self) -> int:
        v = self.data[self.pos]
        self.pos += 1
        return v

    def u16(self) -> int:
        v = struct.unpack_from("!H", self.data, self.pos)[0]
        self.pos += 2
        return v

    def u32(self) -> int:
        v = struct.unpack_from("!I", self.data, self.pos)[0]
        self.pos += 4
        return v

    def varint(self) -> int:
        mult, value = 1, 0
        while True:
            b = self.u8()
            value += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                return value

    def bin(self) -> bytes:
        n = self.u16()
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return v

    def str(self) -> str:
        return self.bin().decode()

    def rest(self) -> bytes:
        v = self.data[self.pos:]
        self.pos = len(self.data)
        return v

    def props(self) -> dict:
        """Decodes a property block. Repeatable ones (user property, subscription id) become lists."""
        n = self.varint()
        end = self.pos + n
        out: dict = {}
        while self.pos < end:
            pid = self.varint()
            if pid in _BYTE:
                v = self.u8()
            elif pid in _U16:
                v = self.u16()
            elif pid in _U32:
                v = self.u32()
            elif pid == SUBSCRIPTION_IDENTIFIER:
                out.setdefault(pid, []).append(self.varint())
                continue
            elif pid == USER_PROPERTY:
                out.setdefault(pid, []).append((self.str(), self.str()))
                continue
            elif pid in _STR:
                v = self.str()
            elif pid in _BIN:
                v = self.bin()
            else:
                raise ValueError(f"unknown property {pid}")
            out[pid] = v
        return out


@dataclass
class Packet:
    type: int
    flags: int
    body: bytes
    version: int = 4
    fields: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return NAMES.get(self.type, str(self.type))

    def __repr__(self) -> str:
        return f"<{self.name} flags={self.flags:#x} {self.fields or self.body!r}>"


def parse(ptype: int, flags: int, body: bytes, version: int) -> Packet:
    """Fills Packet.fields for the packets a broker sends."""
    p = Packet(ptype, flags, body, version)
    r = Reader(body)
    f = p.fields
    v5 = version == 5
    if ptype == CONNACK:
        f["session_present"] = r.u8() & 1
        f["reason"] = r.u8()
        f["props"] = r.props() if v5 and r.pos < len(body) else {}
    elif ptype == PUBLISH:
        f["dup"], f["qos"], f["retain"] = bool(flags & 8), (flags >> 1) & 3, bool(flags & 1)
        f["topic"] = r.str()
        f["packet_id"] = r.u16() if f["qos"] else None
        f["props"] = r.props() if v5 else {}
        f["payload"] = r.rest()
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        f["packet_id"] = r.u16()
        f["reason"] = r.u8() if r.pos < len(body) else 0
        f["props"] = r.props() if r.pos < len(body) else {}
    elif ptype in (SUBACK, UNSUBACK):
        f["packet_id"] = r.u16()
        f["props"] = r.props() if v5 else {}
        f["reasons"] = list(r.rest())
    elif ptype in (DISCONNECT, AUTH):
        f["reason"] = r.u8() if r.pos < len(body) else 0
        f["props"] = r.props() if r.pos < len(body) else {}
    return p


def take_packet(buf: bytes, start: int = 0) -> tuple[int, bytes, int] | None:
    """The whole packet at buf[start:]: (first byte, body, offset just past it), or None if incomplete."""
    mult, length, i = 1, 0, start + 1
    while i < len(buf) and i <= start + 4:
        b = buf[i]
        length += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            if len(buf) < i + length:
                return None
            return buf[start], buf[i:i + length], i + length
    return None


class Closed(Exception):
    """The broker closed the connection."""


class RawClient:
    """A TCP connection that sends raw bytes and reads whole packets back.

    With `tls` (an ssl.SSLContext) the connection is TLS: the handshake runs in the constructor (its
    ssl.SSLError / OSError propagate), `server_hostname` is checked if the context says so, and a TLS alert
    or a truncated stream while reading counts as the broker closing the connection (Closed)."""

    def __init__(self, port: int, host: str = "127.0.0.1", version: int = 4, timeout: float = 5.0,
                 tls: ssl.SSLContext | None = None, server_hostname: str = "localhost"):
        self.version = version
        self.timeout = timeout
        self.sock = open_socket(port, host, timeout, tls, server_hostname)
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""

    @classmethod
    def over(cls, sock: socket.socket, version: int = 4, timeout: float = 5.0) -> "RawClient":
        """A RawClient on a socket the caller already connected (and perhaps wrapped in TLS itself)."""
        c = cls.__new__(cls)
        c.version, c.timeout, c.sock, c.buf = version, timeout, sock, b""
        c.local_port = sock.getsockname()[1]
        return c

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no packet from the broker in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout as e:
            raise TimeoutError("no packet from the broker in time") from e
        except ConnectionResetError as e:
            raise Closed("connection reset") from e
        except ssl.SSLError as e:  # a TLS alert, or EOF without close_notify
            raise Closed(f"TLS: {e}") from e
        if not chunk:
            raise Closed("connection closed by the broker")
        self.buf += chunk

    def recv(self, timeout: float | None = None) -> Packet:
        """The next whole packet. Raises Closed if the broker closes first, TimeoutError if none comes."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            got = take_packet(self.buf)
            if got is not None:
                first, body, end = got
                self.buf = self.buf[end:]
                return parse(first >> 4, first & 0x0F, body, self.version)
            self._fill(deadline)

    def expect(self, ptype: int, timeout: float | None = None) -> Packet:
        p = self.recv(timeout)
        assert p.type == ptype, f"expected {NAMES[ptype]}, got {p!r}"
        return p

    def expect_closed(self, timeout: float | None = None) -> list[Packet]:
        """Reads until the broker closes the connection; returns the packets received before.
        Fails (TimeoutError) if the connection stays open."""
        got = []
        while True:
            try:
                got.append(self.recv(timeout))
            except Closed:
                return got

    def expect_nothing(self, within: float = 0.3) -> None:
        """Asserts no packet arrives within `within` seconds (used only where absence is the behaviour)."""
        try:
            p = self.recv(within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected packet {p!r}")

    # Convenience for the common handshake.
    def connect(self, client_id: str = "", **kw) -> Packet:
        kw.setdefault("version", self.version)
        self.send(connect(client_id, **kw))
        return self.expect(CONNACK)


# ------------------------------------------------- clients with a reader thread --

class Hub:
    """A condition shared by several AsyncClients: a test waits on it for a state spanning all of them."""

    def __init__(self) -> None:
        self.cond = threading.Condition()

    def wait_for(self, predicate, what: str, timeout: float) -> None:
        """Waits until predicate() (evaluated under the lock) is true; AssertionError naming `what` if not."""
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class AsyncClient:
    """A TCP connection whose incoming packets a background thread reads, records and, where the protocol
    requires an answer, acknowledges: the broker's QoS 1 PUBLISH gets PUBACK, QoS 2 gets PUBREC and later
    PUBCOMP for its PUBREL; a PUBREC for this client's own QoS 2 PUBLISH gets PUBREL. So many clients can run
    pipelined flows at once while the test thread only sends and waits.

    Everything is recorded under `hub.cond` (shared by the clients of a test): `publishes` (PUBLISH packets in
    arrival order), `packets` (all the others), `counts` (per packet type), `topic_counts` (PUBLISHes per topic),
    `closed` (the connection ended; `reset` if by ECONNRESET) and `errors` (protocol slips seen on the way,
    e.g. a PUBREL for a packet identifier with no PUBREC outstanding).
    """

    def __init__(self, port: int, version: int = 4, hub: Hub | None = None, timeout: float = 60.0,
                 name: str = "", host: str = "127.0.0.1"):
        self.version = version
        self.timeout = timeout
        self.name = name
        self.hub = hub or Hub()
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._send_lock = threading.Lock()
        self.publishes: list[Packet] = []
        self.packets: list[Packet] = []
        self.counts: Counter = Counter()
        self.topic_counts: Counter = Counter()
        self.awaiting_pubrel: set[int] = set()
        self.errors: list[str] = []
        self.closed = False
        self.reset = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"reader-{name}")
        self._thread.start()

    def __repr__(self) -> str:
        return f"<AsyncClient {self.name} v{self.version}{' closed' if self.closed else ''}>"

    # ------------------------------------------------------------- reader --

    def _run(self) -> None:
        buf, pos = b"", 0
        try:
            while True:
                try:
                    chunk = self.sock.recv(1 << 16)
                except socket.timeout:
                    if self._stopping:
                        return
                    continue
                if not chunk or self._stopping:
                    return
                buf = buf[pos:] + chunk
                pos = 0
                while not self._stopping and (got := take_packet(buf, pos)) is not None:
                    first, body, pos = got
                    self._handle(parse(first >> 4, first & 0x0F, body, self.version))
        except ConnectionResetError:
            self.reset = True
        except OSError:
            pass
        finally:
            with self.hub.cond:
                self.closed = True
                self.hub.cond.notify_all()

    def _handle(self, p: Packet) -> None:
        reply = None
        f = p.fields
        with self.hub.cond:
            if p.type == PUBLISH:
                self.publishes.append(p)
                self.topic_counts[f["topic"]] += 1
                if f["qos"] == 1:
                    reply = ack(PUBACK, f["packet_id"])
                elif f["qos"] == 2:
                    if f["packet_id"] in self.awaiting_pubrel and not f["dup"]:
                        self.errors.append(f"QoS 2 PUBLISH with DUP=0 reusing packet id {f['packet_id']} "
                                           "whose PUBREL is still awaited")
                    self.awaiting_pubrel.add(f["packet_id"])
                    reply = ack(PUBREC, f["packet_id"])
            else:
                self.packets.append(p)
                if p.type == PUBREL:
                    if f["packet_id"] not in self.awaiting_pubrel:
                        self.errors.append(f"PUBREL for packet id {f['packet_id']} without a PUBREC outstanding")
                    self.awaiting_pubrel.discard(f["packet_id"])
                    reply = ack(PUBCOMP, f["packet_id"])
                elif p.type == PUBREC and f["reason"] < 0x80:
                    reply = ack(PUBREL, f["packet_id"])
            self.counts[p.type] += 1
            self.hub.cond.notify_all()
        if reply is not None:
            try:
                self.send(reply)
            except OSError:
                pass  # the broker closed the connection; the reader sees it next

    # ------------------------------------------------------------ helpers --

    def send(self, data: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(data)

    def wait_for(self, predicate, what: str, timeout: float | None = None) -> None:
        """Waits until predicate() is true (evaluated under the hub's lock)."""
        self.hub.wait_for(predicate, f"{self.name}: {what}", self.timeout if timeout is None else timeout)

    def wait_packet(self, ptype: int, packet_id: int | None = None, since: int = 0,
                    timeout: float | None = None) -> Packet:
        """The first non-PUBLISH packet of `ptype` (with `packet_id`, if given) at or after index `since`
        of `packets`. Fails at once if the connection closes without it."""
        found: list[Packet] = []

        def ready() -> bool:
            for p in self.packets[since:]:
                if p.type == ptype and (packet_id is None or p.fields.get("packet_id") == packet_id):
                    found.append(p)
                    return True
            return self.closed

        self.wait_for(ready, f"{NAMES[ptype]} {packet_id if packet_id is not None else ''}", timeout)
        assert found, f"{self.name}: connection closed before {NAMES[ptype]}; got {self.packets[since:]!r}"
        return found[0]

    def connect(self, client_id: str, **kw) -> Packet:
        """CONNECT; the first packet back must be CONNACK Success."""
        kw.setdefault("version", self.version)
        self.send(connect(client_id, **kw))
        self.wait_for(lambda: self.packets or self.closed, f"CONNACK for {client_id!r}")
        assert self.packets, f"{self.name}: closed without CONNACK"
        ack_ = self.packets[0]
        assert ack_.type == CONNACK and ack_.fields["reason"] == 0, f"{client_id!r}: {ack_!r}"
        return ack_

    def subscribe(self, packet_id: int, filters: list[tuple[str, int]], properties: list | None = None) -> list[int]:
        """SUBSCRIBE and wait for its SUBACK; returns the reason codes."""
        with self.hub.cond:
            since = len(self.packets)
        self.send(subscribe(packet_id, filters, version=self.version, properties=properties))
        return self.wait_packet(SUBACK, packet_id, since).fields["reasons"]

    def unsubscribe(self, packet_id: int, filters: list[str]) -> list[int]:
        """UNSUBSCRIBE and wait for its UNSUBACK; returns the reason codes (v5; empty for 3.1.1)."""
        with self.hub.cond:
            since = len(self.packets)
        self.send(unsubscribe(packet_id, filters, version=self.version))
        return self.wait_packet(UNSUBACK, packet_id, since).fields["reasons"]

    def ping(self) -> None:
        """PINGREQ, then wait for a PINGRESP: the connection is alive and the broker has read all sent before."""
        with self.hub.cond:
            since = len(self.packets)
        self.send(pingreq())
        self.wait_packet(PINGRESP, since=since)

    def received(self) -> list[Packet]:
        """A copy of the PUBLISHes so far."""
        with self.hub.cond:
            return list(self.publishes)

    def close(self) -> None:
        """Ends the connection (FIN, no DISCONNECT) and stops the reader."""
        self._stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(self.timeout)
        self.sock.close()

    def abort(self) -> None:
        """Ends the connection abruptly: RST instead of FIN, whatever is unread is dropped."""
        self._stopping = True
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.shutdown(socket.SHUT_RD)  # wakes the reader without sending anything
        except OSError:
            pass
        self._thread.join(self.timeout)
        self.sock.close()
