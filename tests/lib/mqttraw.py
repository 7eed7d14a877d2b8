"""Raw MQTT on the wire, for black-box tests.

Builds packets byte by byte (independently of petrel's own codec, so the two
check each other) and reads whole packets back from a socket with a deadline.
Only what the tests need: packets are built from explicit fields, and decoded
into a small Packet record (type, flags, body) with helpers to pick it apart.
"""
from __future__ import annotations

import socket
import struct
import time
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


class Closed(Exception):
    """The broker closed the connection."""


class RawClient:
    """A TCP connection that sends raw bytes and reads whole packets back."""

    def __init__(self, port: int, host: str = "127.0.0.1", version: int = 4, timeout: float = 5.0):
        self.version = version
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

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
        if not chunk:
            raise Closed("connection closed by the broker")
        self.buf += chunk

    def recv(self, timeout: float | None = None) -> Packet:
        """The next whole packet. Raises Closed if the broker closes first, TimeoutError if none comes."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            if len(self.buf) >= 2:
                mult, length, i = 1, 0, 1
                complete = False
                while i < len(self.buf) and i <= 4:
                    b = self.buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        complete = True
                        break
                if complete and len(self.buf) >= i + length:
                    first, body = self.buf[0], self.buf[i:i + length]
                    self.buf = self.buf[i + length:]
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
