"""Helpers for the durable-store tests: raw MQTT clients (tests/lib/mqttraw.py) that outlive broker
restarts, publishers that stream numbered messages while the broker is killed under them, a QoS 2 receiver
whose state survives its connections (as a client with a persistent session keeps it), the start-up summary
line, and running a petrel that must refuse its database.

Clients opened here are closed by the autouse fixture in conftest.py. Waiting is on events (a packet, a
closed socket, a log line, a process exit), never on a fixed sleep.
"""
from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import mqttraw as m
from petrel_paths import PETREL_BIN, free_port

TIMEOUT = 5.0  # any single expected event (ASan builds are ~3x slower)
SESSION = [(m.SESSION_EXPIRY_INTERVAL, 300)]  # v5 CONNECT properties of a persistent session
# As in tests/conftest.py (which cannot be imported from here).
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer", "runtime error:")

_open: list = []

STORE_LINE = re.compile(
    r"store '(?P<path>[^']*)' \((?P<mode>\w+) durability\): restored (?P<sessions>\d+) sessions "
    r"\((?P<subscriptions>\d+) subscriptions, (?P<queued>\d+) queued and (?P<inflight>\d+) in-flight messages, "
    r"(?P<distinct>\d+) of them distinct\) "
    r"and (?P<retained>\d+) retained messages in [0-9.]+ ms; dropped (?P<dropped_sessions>\d+) sessions and "
    r"(?P<dropped_messages>\d+) messages that expired while petrel was down")


def track(c):
    _open.append(c)
    return c


def close_all() -> None:
    while _open:
        try:
            _open.pop().close()
        except Exception:  # noqa: BLE001 - teardown must not mask the test's own failure
            pass


# ------------------------------------------------------------------ clients --

def raw(broker, version: int = 5) -> m.RawClient:
    return track(m.RawClient(broker.port, version=version, timeout=TIMEOUT))


def connect(broker, client_id: str, version: int = 5, clean: bool = True, expiry: int | None = None,
            properties: list | None = None, **kw) -> m.RawClient:
    """A connected raw client (CONNACK Success checked, kept in c.connack). v5: `expiry` is the Session
    Expiry Interval, `clean` Clean Start; 3.1.1: `clean` is Clean Session."""
    c = raw(broker, version)
    props = list(properties or [])
    if expiry is not None:
        props.append((m.SESSION_EXPIRY_INTERVAL, expiry))
    c.send(m.connect(client_id, version=version, clean=clean, properties=props if version == 5 else None, **kw))
    ack = c.expect(m.CONNACK)
    assert ack.fields["reason"] == 0, f"CONNECT of {client_id!r} refused: {ack!r}"
    c.connack = ack
    return c


def session_present(c: m.RawClient) -> int:
    return c.connack.fields["session_present"]


def subscribe(c: m.RawClient, filters, options: int = 1, packet_id: int = 1, properties=None) -> list[int]:
    """SUBSCRIBE one filter (str, with `options`) or [(filter, options)]; returns the SUBACK codes."""
    if isinstance(filters, str):
        filters = [(filters, options)]
    c.send(m.subscribe(packet_id, filters, version=c.version, properties=properties))
    ack = c.expect(m.SUBACK)
    assert ack.fields["packet_id"] == packet_id, ack
    return ack.fields["reasons"]


def unsubscribe(c: m.RawClient, filters: list[str], packet_id: int = 2) -> list[int]:
    c.send(m.unsubscribe(packet_id, filters, version=c.version))
    ack = c.expect(m.UNSUBACK)
    assert ack.fields["packet_id"] == packet_id, ack
    return ack.fields["reasons"]


def publish(c: m.RawClient, topic: str, payload: bytes = b"", qos: int = 1, packet_id: int = 1,
            retain: bool = False, properties=None) -> int | None:
    """PUBLISH and complete the publisher's side of the flow; returns the PUBACK/PUBREC reason code."""
    c.send(m.publish(topic, payload, qos=qos, retain=retain, packet_id=packet_id, version=c.version,
                     properties=properties))
    if qos == 0:
        return None
    first = c.expect(m.PUBACK if qos == 1 else m.PUBREC)
    assert first.fields["packet_id"] == packet_id, first
    if qos == 2:
        c.send(m.ack(m.PUBREL, packet_id))
        comp = c.expect(m.PUBCOMP)
        assert comp.fields["packet_id"] == packet_id and comp.fields["reason"] == 0, comp
    return first.fields["reason"]


def receive(c: m.RawClient, timeout: float = TIMEOUT) -> m.Packet:
    """The next PUBLISH, acknowledged (QoS 2 up to PUBCOMP). PUBLISHes that arrive while a PUBREL is awaited
    are kept, in order, for the following calls."""
    stash = c.__dict__.setdefault("_stash", [])
    p = stash.pop(0) if stash else c.expect(m.PUBLISH, timeout=timeout)
    pid = p.fields["packet_id"]
    if p.fields["qos"] == 1:
        c.send(m.ack(m.PUBACK, pid))
    elif p.fields["qos"] == 2:
        c.send(m.ack(m.PUBREC, pid))
        while True:
            nxt = c.recv(timeout)
            if nxt.type == m.PUBLISH:
                stash.append(nxt)
                continue
            assert nxt.type == m.PUBREL and nxt.fields["packet_id"] == pid, f"expected PUBREL {pid}, got {nxt!r}"
            break
        c.send(m.ack(m.PUBCOMP, pid))
    return p


def receive_until(c: m.RawClient, sentinel: bytes, timeout: float = TIMEOUT) -> list[m.Packet]:
    """Every PUBLISH (acknowledged) up to and including the one whose payload is `sentinel`."""
    got = []
    while True:
        p = receive(c, timeout)
        got.append(p)
        if p.fields["payload"] == sentinel:
            return got


def sentinel(broker, topic: str, payload: bytes, qos: int = 1) -> None:
    """Publishes `payload` on `topic` from a client of its own: a subscriber that receives it has received
    everything queued for it before."""
    c = connect(broker, f"sentinel-{payload.decode()}")
    assert publish(c, topic, payload, qos=qos) == 0x00
    leave(c)


def leave(c: m.RawClient) -> None:
    """Normal DISCONNECT; returns once the broker closed the connection (the session is detached)."""
    c.send(m.disconnect(0) if c.version == 5 else m.disconnect())
    assert c.expect_closed(TIMEOUT) == []


def wait_until(t: float) -> None:
    """Lets wall-clock time pass up to time.time() == t (used only where time passing is the point:
    expiry while the broker is down)."""
    while time.time() < t:
        time.sleep(min(0.05, max(0.0, t - time.time())))


# ------------------------------------------------------------ streams --

class Stream:
    """A v5 publisher with a persistent session (`client_id`) that sends numbered QoS `qos` messages
    (payload b"%06d" % n, packet identifier n) on `topic` from a thread of its own, keeping at most `window`
    unacknowledged, until the connection breaks or `limit` are sent. Its reader thread (mqttraw.AsyncClient)
    answers PUBREC with PUBREL. `acked()` is what the broker acknowledged: PUBACK, resp. PUBREC (below 0x80)."""

    def __init__(self, broker, client_id: str, topic: str, qos: int, window: int = 64, limit: int = 60000,
                 payload_size: int = 6):
        self.qos, self.topic, self.window, self.limit, self.payload_size = qos, topic, window, limit, payload_size
        self.client = track(m.AsyncClient(broker.port, version=5, name=client_id, timeout=TIMEOUT))
        self.client.connect(client_id, clean=True, properties=SESSION)
        self.sent = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"stream-{client_id}")
        self._thread.start()

    def payload(self, n: int) -> bytes:
        return (b"%06d" % n).ljust(self.payload_size, b".")

    def _acks(self) -> list[m.Packet]:
        kind = m.PUBACK if self.qos == 1 else m.PUBREC
        return [p for p in self.client.packets if p.type == kind]

    def _run(self) -> None:
        c = self.client
        kind = m.PUBACK if self.qos == 1 else m.PUBREC
        try:
            for n in range(1, self.limit + 1):
                c.hub.wait_for(lambda: c.closed or self._stop.is_set() or n - 1 - c.counts[kind] < self.window,
                               f"{c.name}: room in the window", 3 * TIMEOUT)
                if c.closed or self._stop.is_set():
                    return
                try:
                    c.send(m.publish(self.topic, self.payload(n), qos=self.qos, packet_id=n, version=5))
                except OSError:
                    return
                self.sent = n
        except BaseException as e:  # noqa: BLE001 - reported by join()
            self.error = e

    def wait_acked(self, n: int) -> None:
        kind = m.PUBACK if self.qos == 1 else m.PUBREC
        self.client.wait_for(lambda: self.client.counts[kind] >= n or self.client.closed,
                             f"{n} acknowledgements", 6 * TIMEOUT)
        assert self.client.counts[kind] >= n, f"the stream ended after {self.client.counts[kind]} acks"

    def join(self) -> None:
        """After the broker is gone: waits for the sender to notice."""
        self._stop.set()
        self._thread.join(3 * TIMEOUT)
        assert not self._thread.is_alive(), "the stream did not stop"
        assert self.error is None, f"the stream failed: {self.error!r}"
        self.client.wait_for(lambda: self.client.closed, "the connection to end", 3 * TIMEOUT)

    def acked(self) -> dict[int, int]:
        """{packet id (= message number): reason code} of every PUBACK / accepting PUBREC received."""
        with self.client.hub.cond:
            return {p.fields["packet_id"]: p.fields["reason"] for p in self._acks() if p.fields["reason"] < 0x80}

    def completed(self) -> set[int]:
        """QoS 2: packet ids whose PUBCOMP was received."""
        with self.client.hub.cond:
            return {p.fields["packet_id"] for p in self.client.packets if p.type == m.PUBCOMP}


class WriteLoad:
    """Keeps the store's writer busy: an offline persistent session `sink` subscribed to `topic`, and a
    publisher streaming QoS 1 messages of `size` bytes to it (each PUBACK waits for a commit with fsync)."""

    def __init__(self, broker, sink: str, topic: str, size: int = 2000):
        s = connect(broker, sink, expiry=300)
        assert subscribe(s, topic, 1) == [1]
        leave(s)
        self.stream = Stream(broker, f"{sink}-loader", topic, 1, window=100, payload_size=size)
        self.stream.wait_acked(50)

    def join(self) -> None:
        self.stream.join()


class ExactlyOnceReceiver:
    """The receiving side of QoS 2 as MQTT 5.0 section 4.3.3 (Method B) describes it, with state that
    outlives connections like the session state of a client with Clean Start 0: a PUBLISH is delivered to the
    application when it arrives unless its packet identifier is still awaiting a PUBREL (then it is a
    retransmission: answered with PUBREC only); PUBREL releases the identifier and is answered with PUBCOMP.
    `delivered` is what the application got, in order; `awaiting` {packet id: payload}; `resent` the
    PUBLISHes that arrived for an identifier still awaiting its PUBREL."""

    def __init__(self, client_id: str):
        self.client_id = client_id
        self.hub = m.Hub()
        self.delivered: list[bytes] = []
        self.awaiting: dict[int, bytes] = {}
        self.resent: list[m.Packet] = []
        self.publishes: list[list[m.Packet]] = []  # per connection
        self.events: list[list[tuple]] = []  # per connection: ("PUBLISH", id, dup, payload) / ("PUBREL", id)
        self.errors: list[str] = []
        self.conn: m.AsyncClient | None = None

    def connect(self, broker, clean: bool) -> m.Packet:
        receiver = self
        self.publishes.append([])
        self.events.append([])

        class Conn(m.AsyncClient):
            def _handle(self, p: m.Packet) -> None:
                f = p.fields
                if p.type == m.PUBLISH and f["qos"] == 2:
                    pid = f["packet_id"]
                    with self.hub.cond:
                        receiver.publishes[-1].append(p)
                        receiver.events[-1].append(("PUBLISH", pid, f["dup"], f["payload"]))
                        if pid in receiver.awaiting:
                            receiver.resent.append(p)
                            if not f["dup"]:
                                receiver.errors.append(f"PUBLISH with DUP=0 for packet id {pid} awaiting PUBREL")
                            if f["payload"] != receiver.awaiting[pid]:
                                receiver.errors.append(f"PUBLISH {f['payload']!r} for packet id {pid} awaiting "
                                                       f"PUBREL for {receiver.awaiting[pid]!r}")
                        else:
                            receiver.awaiting[pid] = f["payload"]
                            receiver.delivered.append(f["payload"])
                        self.hub.cond.notify_all()
                    self.send(m.ack(m.PUBREC, pid))
                elif p.type == m.PUBREL:
                    pid = f["packet_id"]
                    with self.hub.cond:
                        self.packets.append(p)
                        receiver.events[-1].append(("PUBREL", pid))
                        receiver.awaiting.pop(pid, None)
                        self.hub.cond.notify_all()
                    self.send(m.ack(m.PUBCOMP, pid))
                else:
                    super()._handle(p)

        self.conn = track(Conn(broker.port, version=5, hub=self.hub, name=self.client_id, timeout=TIMEOUT))
        return self.conn.connect(self.client_id, clean=clean, properties=SESSION)

    def history(self, payload_number: int) -> list[str]:
        """What each connection received for the packet identifiers that carried message `payload_number`
        (the streams' payloads start with the number in 6 digits)."""
        prefix = b"%06d" % payload_number
        with self.hub.cond:
            ids = {e[1] for conn in self.events for e in conn if e[0] == "PUBLISH" and e[3].startswith(prefix)}
            return [f"connection {i}: {e[0]} {e[1]}" + (f" dup={e[2]} {e[3][:6]!r}" if e[0] == "PUBLISH" else "")
                    for i, conn in enumerate(self.events) for e in conn if e[1] in ids]

    def drain(self, sentinel: bytes) -> None:
        """Waits until `sentinel` was delivered and no packet identifier awaits its PUBREL any more."""
        try:
            self.wait_for(lambda: sentinel in self.delivered and not self.awaiting, f"{sentinel!r} and every PUBREL")
        except AssertionError as e:
            with self.hub.cond:
                raise AssertionError(f"{e}: sentinel delivered: {sentinel in self.delivered}; identifiers still "
                                     f"awaiting PUBREL: {sorted(self.awaiting)[:20]}") from None

    def wait_for(self, predicate, what: str, timeout: float = 3 * TIMEOUT) -> None:
        self.hub.wait_for(predicate, f"{self.client_id}: {what}", timeout)

    def wait_closed(self) -> None:
        self.wait_for(lambda: self.conn.closed, "the connection to end")


# --------------------------------------------------------------- the store --

def store_summary(broker, timeout: float = 3 * TIMEOUT) -> dict:
    """The numbers of the start-up line 'store ...: restored ...' (waits for it)."""
    log = broker.wait_log("messages that expired while petrel was down", timeout)
    found = STORE_LINE.search(log)
    assert found, f"no store summary line in the log:\n{log[-3000:]}"
    return {k: (v if k in ("path", "mode") else int(v)) for k, v in found.groupdict().items()}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_refused(tmp_path: Path, db_path: Path, timeout: float = 20.0) -> tuple[int, str]:
    """Starts petrel on `db_path` expecting it to refuse the database; returns (exit status, output).
    Not through Broker: listeners are bound before the database is opened, so a petrel that accepts
    connections may still be about to exit. Fails at once if petrel logs that it opened the store."""
    port = free_port()
    cfg = tmp_path / f"refused-{port}.toml"
    out_path = tmp_path / f"refused-{port}.log"
    cfg.write_text(f'threads = 1\n[[listener]]\nname = "test"\nbind = "127.0.0.1"\nport = {port}\n'
                   f'[store]\npath = "{db_path}"\n[http]\nenabled = false\n')
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([PETREL_BIN, "--config", str(cfg)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        accepted = False
        while proc.poll() is None and time.monotonic() < deadline:
            if "messages that expired while petrel was down" in out_path.read_text(errors="replace"):
                accepted = True
                break
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            text = out_path.read_text(errors="replace")
            what = "opened the database" if accepted else f"was still running after {timeout} s"
            raise AssertionError(f"petrel {what}; expected it to refuse {db_path}:\n{text[-3000:]}")
    text = out_path.read_text(errors="replace")
    for mark in SANITIZER_MARKS:
        assert mark not in text, f"sanitizer report in the petrel output:\n{text[-8000:]}"
    return proc.returncode, text
