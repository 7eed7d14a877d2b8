"""Raw WebSocket (RFC 6455) on the wire, for black-box tests of petrel's ws and wss listeners.

Written from the RFC, independently of the broker (which uses Boost.Beast), so the two check each other:

- upgrade_request(): the bytes of an HTTP upgrade request, every part overridable (method, path, each header,
  or none of them) to make the bad requests a listener must refuse.
- read_http_response() / HttpResponse: the broker's answer (status line, headers, body).
- frame(): one client frame of any opcode, masked (or not, to break the rules), FIN or not, with any RSV bits and
  even a declared length that differs from the payload; take_frame() decodes a server frame (which must not be
  masked) from a buffer.
- WsClient: a TCP (or TLS, with `tls`) connection that upgrades and then carries MQTT (tests/lib/mqttraw.py
  packets) in binary frames. recv() returns whole MQTT packets from the byte stream of the binary messages
  however they are split; pongs are recorded on the way; a close frame raises WsClosed with its status.
  expect_close() reads to the close frame, answers it and waits for the TCP close.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
import time
from dataclasses import dataclass

import mqttraw as m
import tlsclient

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
OPCODE_NAMES = {CONT: "continuation", TEXT: "text", BINARY: "binary", CLOSE: "close", PING: "ping", PONG: "pong"}
TIMEOUT = 5.0


# ------------------------------------------------------------------ HTTP --

def new_key() -> str:
    """A Sec-WebSocket-Key: 16 random bytes, base64."""
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept a server must answer `key` with (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def upgrade_request(path: str = "/mqtt", *, key: str | None = None, protocols: str | None = "mqtt",
                    method: str = "GET", version: str | None = "13", host: str = "127.0.0.1",
                    upgrade: bool = True, headers: list[tuple[str, str]] = (), omit: tuple[str, ...] = (),
                    http_version: str = "HTTP/1.1") -> bytes:
    """An HTTP upgrade request. protocols: the Sec-WebSocket-Protocol value (None: no such header);
    version: Sec-WebSocket-Version (None: none); upgrade=False leaves out Upgrade, Connection, the key, the version
    and the subprotocol (a plain GET); omit: header names to leave out; headers: extra (name, value) lines."""
    h: list[tuple[str, str]] = [("Host", host)]
    if upgrade:
        h += [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key or new_key())]
        if version is not None:
            h.append(("Sec-WebSocket-Version", version))
        if protocols is not None:
            h.append(("Sec-WebSocket-Protocol", protocols))
    h += list(headers)
    lower_omit = {o.lower() for o in omit}
    lines = [f"{method} {path} {http_version}"] + [f"{k}: {v}" for k, v in h if k.lower() not in lower_omit]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class HttpResponse:
    status: int
    reason: str
    version: str
    headers: dict[str, str]     # lower-case names; repeated headers joined with ", "
    body: bytes = b""
    raw_head: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def has_token(self, name: str, token: str) -> bool:
        """Whether the comma-separated header `name` holds `token` (case-insensitive)."""
        v = self.header(name) or ""
        return token.lower() in (t.strip().lower() for t in v.split(","))

    def __repr__(self) -> str:
        return f"<HTTP {self.status} {self.reason!r} {self.headers} body={self.body[:200]!r}>"


def parse_response_head(head: bytes) -> HttpResponse:
    """Parses a status line and headers (without the blank line). AssertionError if it is not HTTP/1.x."""
    text = head.decode("latin-1")
    lines = text.split("\r\n")
    parts = lines[0].split(" ", 2)
    assert len(parts) >= 2 and parts[0].startswith("HTTP/1.") and parts[1].isdigit(), \
        f"not an HTTP status line: {lines[0]!r}"
    headers: dict[str, str] = {}
    for ln in lines[1:]:
        name, sep, value = ln.partition(":")
        assert sep and name and name == name.strip(), f"bad header line {ln!r} in {text!r}"
        k = name.lower()
        headers[k] = f"{headers[k]}, {value.strip()}" if k in headers else value.strip()
    return HttpResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", parts[0], headers, raw_head=head)


# ---------------------------------------------------------------- frames --

def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True, rsv: int = 0,
          mask_key: bytes | None = None, length: int | None = None) -> bytes:
    """One client frame. length: the payload length to declare (default len(payload)), for frames that claim
    more than they carry. rsv: the three RSV bits (0-7)."""
    n = len(payload) if length is None else length
    out = bytearray([(0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)])
    mbit = 0x80 if mask else 0
    if n < 126:
        out.append(mbit | n)
    elif n < 1 << 16:
        out.append(mbit | 126)
        out += struct.pack("!H", n)
    else:
        out.append(mbit | 127)
        out += struct.pack("!Q", n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        out += key
        out += bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    else:
        out += payload
    return bytes(out)


def close_payload(status: int | None = 1000, reason: bytes = b"") -> bytes:
    return b"" if status is None else struct.pack("!H", status) + reason


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes
    rsv: int = 0

    @property
    def close_status(self) -> int | None:
        """The status of a close frame (None when it carries none)."""
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> bytes:
        return self.payload[2:]

    def __repr__(self) -> str:
        extra = f" status={self.close_status} reason={self.close_reason!r}" if self.opcode == CLOSE else ""
        return (f"<frame {OPCODE_NAMES.get(self.opcode, hex(self.opcode))}{'' if self.fin else ' (not fin)'}"
                f"{extra} {len(self.payload)} bytes {self.payload[:40]!r}>")


class ProtocolViolation(AssertionError):
    """The server broke RFC 6455 (e.g. masked a frame)."""


def take_frame(buf: bytes | bytearray, start: int = 0) -> tuple[Frame, int] | None:
    """The server frame at buf[start:]: (frame, offset just past it), or None if incomplete."""
    if len(buf) - start < 2:
        return None
    b0, b1 = buf[start], buf[start + 1]
    if b1 & 0x80:
        raise ProtocolViolation(f"the server sent a masked frame (RFC 6455 5.1): {bytes(buf[start:start + 16])!r}")
    n, i = b1 & 0x7F, start + 2
    if n == 126:
        if len(buf) < i + 2:
            return None
        n, i = struct.unpack_from("!H", buf, i)[0], i + 2
    elif n == 127:
        if len(buf) < i + 8:
            return None
        n, i = struct.unpack_from("!Q", buf, i)[0], i + 8
    if len(buf) < i + n:
        return None
    return Frame(bool(b0 & 0x80), b0 & 0x0F, bytes(buf[i:i + n]), (b0 >> 4) & 7), i + n


class WsClosed(Exception):
    """The server sent a close frame."""

    def __init__(self, frame_: Frame, packets: list | None = None):
        super().__init__(repr(frame_))
        self.frame = frame_
        self.status = frame_.close_status
        self.packets = packets or []


# ---------------------------------------------------------------- client --

class WsClient:
    """A connection to a ws (or, with `tls`, wss) listener. Nothing is sent by the constructor: call upgrade()
    (or send_raw() bad requests and read_http_response()). `version` is the MQTT protocol level of the packets
    recv() decodes (3 and 4 decode alike)."""

    def __init__(self, port: int, *, tls: ssl.SSLContext | None = None, server_hostname: str = "localhost",
                 timeout: float = TIMEOUT, version: int = 4, host: str = "127.0.0.1"):
        self.version = version
        self.timeout = timeout
        self.sock = m.open_socket(port, host, timeout, tls, server_hostname)
        self.local_port = self.sock.getsockname()[1]
        self.buf = bytearray()       # bytes received and not yet consumed (HTTP, then frames)
        self.stream = bytearray()    # MQTT bytes from binary messages, not yet parsed into packets
        self.frames: list[Frame] = []  # every frame received, in order
        self.pongs: list[bytes] = []
        self.close_frame: Frame | None = None
        self.response: HttpResponse | None = None
        self._in_message = False

    # --- plumbing
    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float, what: str) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {what} from the broker in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout as e:
            raise TimeoutError(f"no {what} from the broker in time") from e
        except (ConnectionResetError, BrokenPipeError) as e:
            raise m.Closed("connection reset") from e
        except ssl.SSLError as e:
            raise m.Closed(f"TLS: {e}") from e
        if not chunk:
            raise m.Closed("connection closed by the broker")
        self.buf += chunk

    def wait_eof(self, timeout: float | None = None) -> bytes:
        """Reads until the broker closes the TCP connection; returns what came before. AssertionError if it
        stays open for `timeout`."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        start = len(self.buf)
        while True:
            try:
                self._fill(deadline, "close")
            except m.Closed:
                return bytes(self.buf[start:])
            except TimeoutError:
                got = bytes(self.buf[start:])
                raise AssertionError(f"the broker left the connection open (received {got[:80]!r})") from None

    # --- HTTP
    def read_http_response(self, timeout: float | None = None) -> HttpResponse:
        """The broker's HTTP response. For a 101 the bytes after the head stay buffered (frames); for any other
        status the body is everything up to the TCP close, which must come (Connection: close)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline, "HTTP response")
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        resp = parse_response_head(head)
        self.buf = bytearray(rest)
        if resp.status != 101:
            resp.body = bytes(self.buf) + self.wait_eof(max(0.1, deadline - time.monotonic()))
            self.buf = bytearray()
        self.response = resp
        return resp

    def upgrade(self, path: str = "/mqtt", *, protocols: str | None = "mqtt", expect_protocol: str = "mqtt",
                **kw) -> HttpResponse:
        """Sends an upgrade request and asserts the 101 (Upgrade, Connection, Sec-WebSocket-Accept for our key,
        the chosen subprotocol)."""
        key = kw.pop("key", None) or new_key()
        self.send_raw(upgrade_request(path, key=key, protocols=protocols, **kw))
        r = self.read_http_response()
        assert r.status == 101, f"upgrade refused: {r!r}"
        assert r.has_token("upgrade", "websocket"), r
        assert r.has_token("connection", "upgrade"), r
        assert r.header("sec-websocket-accept") == accept_for(key), r
        assert r.header("sec-websocket-protocol") == expect_protocol, r
        return r

    # --- frames out
    def send_frame(self, opcode: int, payload: bytes = b"", **kw) -> None:
        self.send_raw(frame(opcode, payload, **kw))

    def send_binary(self, data: bytes) -> None:
        """`data` (MQTT bytes) as one binary message in one frame."""
        self.send_frame(BINARY, data)

    # MQTT bytes, as RawClient.send: lets the helpers written for RawClient drive a WsClient.
    send = send_binary

    def send_fragmented(self, pieces: list[bytes]) -> None:
        """One binary message in len(pieces) frames (binary, continuation..., the last with FIN), in one write."""
        out = b""
        for i, p in enumerate(pieces):
            out += frame(BINARY if i == 0 else CONT, p, fin=i == len(pieces) - 1)
        self.send_raw(out)

    # --- frames in
    def recv_frame(self, timeout: float | None = None) -> Frame:
        """The next frame, of any opcode (recorded in `frames`). m.Closed if the TCP connection ends first."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            got = take_frame(self.buf)
            if got is not None:
                f, end = got
                del self.buf[:end]
                self.frames.append(f)
                return f
            self._fill(deadline, "WebSocket frame")

    def _absorb(self, f: Frame) -> None:
        """Book-keeping for a frame that is not the one a caller waits for."""
        if f.opcode in (BINARY, CONT):
            if f.opcode == CONT and not self._in_message:
                raise ProtocolViolation(f"continuation frame outside a message: {f!r}")
            if f.opcode == BINARY and self._in_message:
                raise ProtocolViolation(f"new binary message inside a fragmented one: {f!r}")
            self._in_message = not f.fin
            self.stream += f.payload
        elif f.opcode == PONG:
            self.pongs.append(f.payload)
        elif f.opcode == PING:
            self.send_frame(PONG, f.payload)
        elif f.opcode == CLOSE:
            self.close_frame = f
            raise WsClosed(f)
        else:
            raise ProtocolViolation(f"MQTT over WebSocket uses binary frames only [MQTT-6.0.0-1], got {f!r}")

    def recv(self, timeout: float | None = None) -> m.Packet:
        """The next whole MQTT packet from the binary messages. WsClosed on a close frame, m.Closed on a TCP
        close without one, TimeoutError if nothing comes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            got = m.take_packet(bytes(self.stream))
            if got is not None:
                first, body, end = got
                del self.stream[:end]
                return m.parse(first >> 4, first & 0x0F, body, self.version)
            self._absorb(self.recv_frame(max(0.001, deadline - time.monotonic())))

    def expect(self, ptype: int, timeout: float | None = None) -> m.Packet:
        p = self.recv(timeout)
        assert p.type == ptype, f"expected {m.NAMES[ptype]}, got {p!r}"
        return p

    def connect(self, client_id: str = "", **kw) -> m.Packet:
        """CONNECT in one binary frame; returns the CONNACK (reason not checked)."""
        kw.setdefault("version", self.version)
        self.send_binary(m.connect(client_id, **kw))
        return self.expect(m.CONNACK)

    def ping(self, payload: bytes = b"", timeout: float | None = None) -> None:
        """A WebSocket ping; waits for the pong with the same payload (MQTT data on the way is kept)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self.send_frame(PING, payload)
        while payload not in self.pongs:
            self._absorb(self.recv_frame(max(0.001, deadline - time.monotonic())))
        self.pongs.remove(payload)

    def expect_close(self, timeout: float | None = None, eof_timeout: float | None = None) -> WsClosed:
        """Reads (collecting MQTT packets) until the server's close frame, answers it with a close frame of the
        same status, and waits until the broker ends the TCP connection. Returns the WsClosed (status, frame,
        packets received before it). AssertionError if the TCP connection ends without a close frame."""
        packets = []
        while True:
            try:
                packets.append(self.recv(timeout))
            except WsClosed as e:
                e.packets = packets
                closed = e
                break
            except m.Closed as e:
                raise AssertionError(f"TCP closed without a WebSocket close frame ({e}); packets before: {packets}; "
                                     f"frames: {self.frames}") from None
        try:
            self.send_frame(CLOSE, close_payload(closed.status))
        except OSError:
            pass  # the broker may close the TCP connection right after its close frame
        after = self.wait_eof(eof_timeout)
        assert after == b"", f"bytes after the close frame: {after[:80]!r}"
        return closed

    def expect_failed(self, timeout: float | None = None) -> Frame | None:
        """For a connection the broker must fail: reads until the TCP close (reset counts). Returns the close
        frame if one came (MQTT packets before it are ignored), else None. AssertionError if still open."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                self.recv(max(0.001, deadline - time.monotonic()))
            except WsClosed as e:
                try:
                    self.send_frame(CLOSE, close_payload(e.status))
                except OSError:
                    pass
                self.wait_eof(max(0.1, deadline - time.monotonic()))
                return e.frame
            except m.Closed:
                return None
            except TimeoutError:
                raise AssertionError(f"the broker left the connection open; frames: {self.frames}") from None


def connected_ids(broker, last: str | None = None) -> list[str]:
    """The client ids in the broker's "client connected" log lines, in order, leaving out the $SYS watchers
    (tlsclient.SysWatch, "sys-watch-<n>"). With `last`, first waits until that client's line is there."""
    log = broker.wait_log(f"client connected: id={last} ") if last else broker.log_text()
    ids = []
    for line in log.splitlines():
        if "client connected: id=" in line:
            cid = line.split("client connected: id=", 1)[1].split(" ", 1)[0]
            if not cid.startswith("sys-watch"):
                ids.append(cid)
    return ids


def open_ws(port: int, client_id: str, *, version: int = 4, tls: ssl.SSLContext | None = None, path: str = "/mqtt",
            timeout: float = TIMEOUT, **connect_kw) -> WsClient:
    """A WsClient upgraded and connected (CONNACK 0 checked)."""
    c = WsClient(port, tls=tls, version=version, timeout=timeout)
    try:
        c.upgrade(path)
        ack = c.connect(client_id, **connect_kw)
        assert ack.fields["reason"] == 0, f"CONNECT of {client_id!r} refused: {ack!r}"
    except BaseException:
        c.close()
        raise
    return c


def qos1_round_trip(c: WsClient, topic: str, payload: bytes, packet_id: int = 1, subscribe: bool = True) -> None:
    """SUBSCRIBE (QoS 1) to `topic` if asked, PUBLISH QoS 1 to it, and expect the PUBACK and the message back:
    tlsclient.qos1_roundtrip, over WebSocket (WsClient.send puts MQTT bytes in a binary message)."""
    tlsclient.qos1_roundtrip(c, topic, payload, packet_id=packet_id, subscribe=subscribe)


def good_client(port: int, client_id: str, *, tls: ssl.SSLContext | None = None, path: str = "/mqtt",
                timeout: float = TIMEOUT) -> None:
    """A well-behaved client from start to end: upgrade, CONNECT, a QoS 1 round trip, DISCONNECT, and the broker's
    close frame 1000 then the TCP close."""
    with open_ws(port, client_id, tls=tls, path=path, timeout=timeout) as c:
        qos1_round_trip(c, f"ws/good/{client_id}", client_id.encode())
        c.send_binary(m.disconnect())
        closed = c.expect_close()
        assert closed.status == 1000 and closed.packets == [], closed.frame
