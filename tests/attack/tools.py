"""Helpers for the resource-limit and attack tests: a $SYS watcher, the canary, the RSS sampler.

- SysWatch: a v5 client (reader thread) subscribed to $SYS topics; every value is kept in arrival order so a
  test can wait for "a value published after this point that satisfies ...". Needs [sys] interval = 1.
- Canary: a well-behaved client doing a QoS 1 round trip to itself every ~20 ms on a thread; it records when
  each round trip completed and the first failure (a timeout, a close, an unexpected packet).
- RssSampler: reads VmRSS of the broker process from /proc every 20 ms on a thread.
- Guard: a Canary plus an RssSampler around one attack; `verify()` asserts the canary never failed, made
  progress while the attack ran, and the broker's RSS stayed under the bound.

Memory bounds are scaled by the environment variable PETREL_RSS_FACTOR (default 1): AddressSanitizer builds
use about four times the memory, so their runs set it (scripts/test: PETREL_RSS_FACTOR=4).
"""
from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time

import mqttraw as m

TIMEOUT = 5.0
MIB = 1 << 20
RSS_FACTOR = float(os.environ.get("PETREL_RSS_FACTOR", "1"))


def rss_bytes(pid: int) -> int:
    """VmRSS of process `pid`, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


from petrel_paths import free_port  # noqa: E402  (one implementation: below the ephemeral range)


def sys_config(mqtt: str = "", listener: str = "") -> str:
    """Extra config for make_broker: keys of the fixture's [[listener]] "test" (they must come first, the
    fixture's listener table is still open), then [mqtt], then $SYS every second."""
    out = listener
    if mqtt:
        out += "[mqtt]\n" + mqtt.strip() + "\n"
    return out + "[sys]\ninterval = 1\n"


# ------------------------------------------------------------------ clients --

def connected(port: int, client_id: str, version: int = 5, timeout: float = TIMEOUT, **kw) -> m.RawClient:
    """A RawClient whose CONNECT was accepted (reason 0, checked)."""
    c = m.RawClient(port, version=version, timeout=timeout)
    try:
        ack = c.connect(client_id, **kw)
    except BaseException:
        c.close()
        raise
    assert ack.fields["reason"] == 0, f"CONNECT of {client_id!r} refused: {ack!r}"
    return c


def round_trip(c: m.RawClient, topic: str, payload: bytes, packet_id: int = 1) -> None:
    """QoS 1 PUBLISH to a topic `c` is subscribed to: both the PUBACK and the message must come back."""
    c.send(m.publish(topic, payload, qos=1, packet_id=packet_id, version=c.version))
    got_ack = got_msg = False
    while not (got_ack and got_msg):
        p = c.recv()
        if p.type == m.PUBACK and p.fields["packet_id"] == packet_id:
            assert p.fields["reason"] < 0x80, p
            got_ack = True
        elif p.type == m.PUBLISH and p.fields["topic"] == topic and p.fields["payload"] == payload:
            if p.fields["qos"]:
                c.send(m.ack(m.PUBACK, p.fields["packet_id"]))
            got_msg = True
        else:
            raise AssertionError(f"unexpected {p!r} during a round trip on {topic!r}")


_probes = iter(range(1, 1 << 30))


def assert_serving(broker, version: int = 5) -> None:
    """The broker is alive and routes: a new client subscribes to a topic of its own and gets its own QoS 1
    message back."""
    assert broker.alive(), "petrel exited"
    cid = f"probe{next(_probes)}"
    with connected(broker.port, cid, version=version) as c:
        c.send(m.subscribe(1, [(f"probe/{cid}", 1)], version=version))
        assert c.expect(m.SUBACK).fields["reasons"] == [1]
        round_trip(c, f"probe/{cid}", b"still serving", packet_id=2)
        c.send(m.disconnect())


def wait_closed(sock: socket.socket, timeout: float) -> bytes:
    """Reads until the peer closes `sock` (EOF or reset); returns what was read. TimeoutError if it stays
    open."""
    deadline = time.monotonic() + timeout
    got = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"still open after {timeout} s (read {got[:40]!r})")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return got
        if not chunk:
            return got
        got += chunk


def abort(sock: socket.socket) -> None:
    """Closes `sock` with a RST (SO_LINGER 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


# ------------------------------------------------------------------- $SYS --

class SysWatch:
    """A v5 client subscribed to $SYS/broker/<topic> for each of `topics`. Values are kept in arrival order;
    wait() returns the first one after a given position that satisfies a predicate."""

    def __init__(self, broker, topics: list[str], client_id: str = "sys-watch"):
        self.topics = ["$SYS/broker/" + t for t in topics]
        self.c = m.AsyncClient(broker.port, version=5, name=client_id, timeout=TIMEOUT)
        self.c.connect(client_id)
        reasons = self.c.subscribe(1, [(t, 0) for t in self.topics])
        assert reasons == [0] * len(self.topics), reasons

    def mark(self) -> int:
        """A position: wait(since=mark()) only considers values that arrive after this call."""
        with self.c.hub.cond:
            return len(self.c.publishes)

    def wait(self, topic: str, predicate, what: str, since: int = 0, timeout: float = TIMEOUT) -> tuple[int, int]:
        """Waits for a value of $SYS/broker/<topic> arriving at or after position `since` with
        predicate(int(value)); returns (value, its position)."""
        full = "$SYS/broker/" + topic
        found: list[tuple[int, int]] = []

        def ready() -> bool:
            for i in range(since, len(self.c.publishes)):
                p = self.c.publishes[i]
                if p.fields["topic"] == full and predicate(int(p.fields["payload"])):
                    found.append((int(p.fields["payload"]), i))
                    return True
            return self.c.closed

        seen = lambda: [p.fields["payload"] for p in self.c.publishes[since:] if p.fields["topic"] == full]
        try:
            self.c.wait_for(ready, f"$SYS {full} {what}", timeout)
        except AssertionError:
            raise AssertionError(f"$SYS {full} never {what} within {timeout} s; values seen: {seen()}") from None
        assert found, f"the $SYS watcher was disconnected; values seen: {seen()}"
        return found[0]

    def latest(self, topic: str, timeout: float = TIMEOUT) -> int:
        """The value in the next publication of $SYS/broker/<topic> (a fresh one, not a retained copy)."""
        return self.wait(topic, lambda v: True, "published", since=self.mark(), timeout=timeout)[0]

    def snapshot(self, topics: list[str], timeout: float = TIMEOUT) -> dict[str, int]:
        """The values of the next publication of each of `topics` (published together every interval)."""
        mark = self.mark()
        return {t: self.wait(t, lambda v: True, "published", since=mark, timeout=timeout)[0] for t in topics}

    def settled(self, topic: str, timeout: float = TIMEOUT) -> int:
        """The value of $SYS/broker/<topic> computed after everything the test did so far: the second
        publication from now (the first may have been computed just before this call)."""
        _, first = self.wait(topic, lambda v: True, "published", since=self.mark(), timeout=timeout)
        return self.wait(topic, lambda v: True, "published again", since=first + 1, timeout=timeout)[0]

    def close(self) -> None:
        self.c.close()


# ------------------------------------------------------------------ canary --

class Canary:
    """A well-behaved v5 client: every ~20 ms it publishes QoS 1 to its own topic and waits for both the
    PUBACK and the message. `done` holds the completion time of every round trip; `failure` the first
    thing that went wrong (then the canary stops)."""

    PERIOD = 0.02

    def __init__(self, port: int, client_id: str = "canary", step_timeout: float = TIMEOUT):
        self.topic = f"canary/{client_id}"
        self.c = connected(port, client_id, version=5, timeout=step_timeout)
        self.c.send(m.subscribe(1, [(self.topic, 1)], version=5))
        assert self.c.expect(m.SUBACK).fields["reasons"] == [1]
        self.done: list[float] = []
        self.failure: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"canary-{client_id}")
        self._thread.start()

    def _run(self) -> None:
        seq = 0
        try:
            while not self._stop.is_set():
                seq += 1
                round_trip(self.c, self.topic, b"%d" % seq, packet_id=seq % 65535 + 1)
                self.done.append(time.monotonic())
                self._stop.wait(self.PERIOD)
        except Exception as e:  # noqa: BLE001 -- any failure of the canary is the finding
            self.failure = f"round trip {seq} failed: {type(e).__name__}: {e}"

    def completed_between(self, t0: float, t1: float) -> int:
        return sum(1 for t in list(self.done) if t0 <= t <= t1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT + 1)
        if self.failure is None:
            try:
                self.c.send(m.disconnect())
            except OSError:
                pass
        self.c.close()


# ---------------------------------------------------------------- RSS --

class RssSampler:
    """Samples the broker's VmRSS every 20 ms on a thread; `samples` is [(time, bytes)]."""

    def __init__(self, pid: int):
        self.pid = pid
        self.samples: list[tuple[float, int]] = [(time.monotonic(), rss_bytes(pid))]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.samples.append((time.monotonic(), rss_bytes(self.pid)))
            except (OSError, RuntimeError):
                return  # the process is gone; the broker fixture reports that

    def max_between(self, t0: float, t1: float) -> int:
        return max((v for t, v in self.samples if t0 <= t <= t1), default=0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


# ------------------------------------------------------------------ guard --

class Guard:
    """The canary and the RSS sampler around one attack:

        g = guard(broker)                 # starts both
        with g.attack():                  # the attack window
            ...
        g.verify()                        # asserts (after sampling the RSS once things settled)
    """

    def __init__(self, broker, name: str, rss_limit_mib: float, min_round_trips: int):
        self.broker = broker
        self.name = name
        self.rss_limit = int(rss_limit_mib * RSS_FACTOR * MIB)
        self.min_round_trips = min_round_trips
        self.rss = RssSampler(broker.proc.pid)
        self.canary = Canary(broker.port, client_id=f"canary-{name}"[:23])
        self.t0 = self.t1 = None
        self.stats: dict = {}

    @contextlib.contextmanager
    def attack(self):
        self.t0 = time.monotonic()
        try:
            yield self
        finally:
            self.t1 = time.monotonic()

    def verify(self) -> dict:
        """Asserts that the canary never failed and completed at least `min_round_trips` round trips during
        the attack (at least one in each half of it), and that the broker's RSS stayed under the bound during
        the attack and afterwards (up to now). Returns the numbers (also printed). The canary goes on until
        the fixture's teardown (close())."""
        assert self.t0 is not None and self.t1 is not None, "verify() before the attack ran"
        end = time.monotonic()
        # One more sample and a few round trips after the attack: the broker must still serve the canary.
        after_mark = len(self.canary.done)
        deadline = end + TIMEOUT
        while len(self.canary.done) < after_mark + 3 and self.canary.failure is None and time.monotonic() < deadline:
            time.sleep(0.02)
        self.rss.samples.append((time.monotonic(), rss_bytes(self.broker.proc.pid)))
        mid = (self.t0 + self.t1) / 2
        during = self.canary.completed_between(self.t0, self.t1)
        halves = (self.canary.completed_between(self.t0, mid), self.canary.completed_between(mid, self.t1))
        rss_during = self.rss.max_between(self.t0, self.t1)
        rss_after = self.rss.max_between(self.t1, time.monotonic())
        baseline = self.rss.samples[0][1]
        self.stats = {"attack": self.name, "seconds": round(self.t1 - self.t0, 2), "round_trips": during,
                      "halves": halves, "rss_before_mib": round(baseline / MIB, 1),
                      "rss_max_during_mib": round(rss_during / MIB, 1), "rss_max_after_mib": round(rss_after / MIB, 1),
                      "rss_limit_mib": round(self.rss_limit / MIB, 1)}
        print(f"\nATTACK-STATS {self.stats}")
        assert self.canary.failure is None, f"the canary failed during/after {self.name}: {self.canary.failure}"
        assert len(self.canary.done) > after_mark, "the canary made no progress after the attack"
        assert during >= self.min_round_trips, \
            f"the canary completed only {during} round trips during {self.name} (want >= {self.min_round_trips})"
        assert min(halves) >= 1, f"the canary stalled for half of the attack: round trips per half {halves}"
        assert rss_during <= self.rss_limit, \
            f"broker RSS {rss_during / MIB:.1f} MiB during {self.name} exceeds {self.rss_limit / MIB:.0f} MiB"
        assert rss_after <= self.rss_limit, \
            f"broker RSS {rss_after / MIB:.1f} MiB after {self.name} exceeds {self.rss_limit / MIB:.0f} MiB"
        assert self.broker.alive(), "petrel exited"
        return self.stats

    def close(self) -> None:
        """Stops the canary (it runs on after verify(), through the test's final checks) and the sampler;
        AssertionError if the canary failed after verify()."""
        self.canary.stop()
        self.rss.stop()
        assert self.canary.failure is None, f"the canary failed after {self.name}: {self.canary.failure}"
