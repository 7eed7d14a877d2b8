"""Real MQTT clients driven from tests: Debian's mosquitto_pub / mosquitto_sub and paho-mqtt 1.6.1.

Nothing here sleeps to synchronise: mosquitto_sub runs with -d so its own debug
output tells when the SUBACK arrived ("Subscribed (mid: N): q, q"), and every
paho callback feeds a queue.Queue that the tests read with a timeout.
"""
from __future__ import annotations

import queue
import select
import socket
import subprocess
import threading
from typing import Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

TIMEOUT = 5.0  # upper bound for any single wait; tests normally finish far sooner

V311 = "mqttv311"
V5 = "mqttv5"


# --------------------------------------------------------------------------- mosquitto_pub / mosquitto_sub

def mosquitto_pub(port: int, topic: str, *, message: str | None = None, client_id: str, version: str = V311,
                  qos: int = 0, retain: bool = False, extra: Iterable[str] = (), stdin: bytes | None = None,
                  timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Runs mosquitto_pub once; asserts it exited 0. With qos >= 1 it returns only after the broker's ack."""
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-i", client_id, "-V", version,
            "-q", str(qos), "-t", topic]
    if message is not None:
        args += ["-m", message]
    if retain:
        args.append("-r")
    args += list(extra)
    res = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    assert res.returncode == 0, f"{args} exited {res.returncode}: {res.stderr.decode(errors='replace')}"
    return res


class MosquittoSub:
    """A mosquitto_sub process. Output lines that are mosquitto's own -d chatter are kept apart from
    message lines, so `wait_subscribed()` can await the SUBACK and `messages()` returns only messages."""

    def __init__(self, port: int, topics: Iterable[str], *, client_id: str, version: str = V311, qos: int = 0,
                 count: int | None = None, fmt: str | None = None, verbose: bool = False,
                 extra: Iterable[str] = (), wait_secs: int = 5):
        self.client_id = client_id
        # stdbuf: mosquitto_sub only flushes stdout after a message; its -d lines (the SUBACK) must come at once.
        args = ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-i", client_id, "-V", version,
                "-q", str(qos), "-d", "-W", str(wait_secs)]
        for t in topics:
            args += ["-t", t]
        if count is not None:
            args += ["-C", str(count)]
        if fmt is not None:
            args += ["-F", fmt]
        if verbose:
            args.append("-v")
        args += list(extra)
        self.args = args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._debug: list[str] = []
        self._pending: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self._lines.put(line.rstrip(b"\n"))
        except (ValueError, OSError):
            pass  # the pipe was closed under us when the test stopped the process
        self._lines.put(None)

    def _is_debug(self, line: bytes) -> bool:
        return line.startswith(f"Client {self.client_id} ".encode()) or line.startswith(b"Subscribed (mid: ")

    def _next(self, deadline_timeout: float) -> bytes:
        try:
            line = self._lines.get(timeout=deadline_timeout)
        except queue.Empty:
            raise AssertionError(f"mosquitto_sub {self.client_id}: nothing within {deadline_timeout} s; "
                                 f"debug so far: {self._debug}") from None
        if line is None:
            self._lines.put(None)  # stay at EOF
            raise AssertionError(f"mosquitto_sub {self.client_id} ended early (rc={self.proc.wait()}): "
                                 f"stderr={self.proc.stderr.read().decode(errors='replace')!r} "
                                 f"debug={self._debug}")
        return line

    def wait_subscribed(self, timeout: float = TIMEOUT) -> list[int]:
        """Waits for the SUBACK; returns the granted QoS / reason codes mosquitto_sub printed."""
        while True:
            line = self._next(timeout)
            if self._is_debug(line):
                self._debug.append(line.decode(errors="replace"))
                if line.startswith(b"Subscribed (mid: "):
                    return [int(x) for x in line.split(b":", 2)[2].split(b",")]
            else:
                self._pending.append(line)

    def messages(self, n: int, timeout: float = TIMEOUT) -> list[bytes]:
        """Returns the next n message lines (as printed with the chosen format)."""
        out: list[bytes] = []
        while len(out) < n:
            if self._pending:
                out.append(self._pending.pop(0))
                continue
            line = self._next(timeout)
            if self._is_debug(line):
                self._debug.append(line.decode(errors="replace"))
            else:
                out.append(line)
        return out

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Waits for the process to exit (it does after -C messages); returns its exit code."""
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


# --------------------------------------------------------------------------- paho-mqtt

class Paho:
    """A paho-mqtt Client whose callbacks feed queues. protocol is mqtt.MQTTv311 or mqtt.MQTTv5."""

    def __init__(self, port: int, client_id: str, protocol: int = mqtt.MQTTv311, clean_session: bool = True):
        self.port = port
        self.protocol = protocol
        self.v5 = protocol == mqtt.MQTTv5
        self.client = mqtt.Client(client_id=client_id, protocol=protocol,
                                  clean_session=None if self.v5 else clean_session,
                                  # A test that is disconnected by the broker must see it, not a silent
                                  # automatic reconnect; the network thread ends with the connection.
                                  reconnect_on_failure=False)
        self.connacks: queue.Queue = queue.Queue()
        self.subacks: queue.Queue = queue.Queue()
        self.unsubacks: queue.Queue = queue.Queue()
        self.msgs: queue.Queue = queue.Queue()
        self.disconnects: queue.Queue = queue.Queue()
        self._looping = False
        self.connected = False  # ours: paho 1.6.1's is_connected() stays True after a server DISCONNECT
        c = self.client
        if self.v5:
            c.on_connect = lambda _c, _u, flags, rc, props: self._connack((flags, rc, props))
            c.on_subscribe = lambda _c, _u, mid, rcs, props: self.subacks.put((mid, [r.value for r in rcs], props))
            c.on_unsubscribe = lambda _c, _u, mid, props, rcs: self.unsubacks.put((mid, rcs))
            c.on_disconnect = lambda _c, _u, rc, props=None: self._disconnected((rc, props))
        else:
            c.on_connect = lambda _c, _u, flags, rc: self._connack((flags, rc, None))
            c.on_subscribe = lambda _c, _u, mid, granted: self.subacks.put((mid, list(granted), None))
            c.on_unsubscribe = lambda _c, _u, mid: self.unsubacks.put((mid, None))
            c.on_disconnect = lambda _c, _u, rc: self._disconnected((rc, None))
        c.on_message = lambda _c, _u, msg: self.msgs.put(msg)

    def _connack(self, item) -> None:
        self.connected = item[1] == 0
        self.connacks.put(item)

    def _disconnected(self, item) -> None:
        self.connected = False
        self.disconnects.put(item)

    def connect(self, *, clean_start: bool | None = None, properties: Properties | None = None,
                keepalive: int = 60, threaded: bool = True, timeout: float = TIMEOUT):
        """Connects and waits for the CONNACK; returns (flags, reason code, CONNACK properties)."""
        kw = {}
        if self.v5:
            kw["clean_start"] = True if clean_start is None else clean_start
            kw["properties"] = properties
        self.client.connect("127.0.0.1", self.port, keepalive, **kw)
        if threaded:
            self.client.loop_start()
            self._looping = True
            try:
                return self.connacks.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"{self.client._client_id!r}: no CONNACK within {timeout} s") from None
        # Unthreaded: drive the network loop by hand until the CONNACK (used before an abrupt close).
        return self.pump(self.connacks, timeout)

    def pump(self, q: queue.Queue, timeout: float = TIMEOUT):
        """Unthreaded client: runs the network loop until `q` (one of the callback queues) gets an item."""
        for _ in range(int(timeout / 0.05)):
            self.client.loop(timeout=0.05)
            try:
                return q.get_nowait()
            except queue.Empty:
                pass
        raise AssertionError("nothing arrived")

    def wait_readable(self, timeout: float = TIMEOUT) -> None:
        """Unthreaded client: waits until the broker has sent something, without reading it."""
        r, _, _ = select.select([self.client.socket()], [], [], timeout)
        assert r, "the broker sent nothing"

    def subscribe(self, topic, qos: int = 0, *, options: SubscribeOptions | None = None,
                  properties: Properties | None = None, timeout: float = TIMEOUT) -> list[int]:
        """Subscribes (topic may be a list of (filter, qos|SubscribeOptions)); returns the SUBACK codes."""
        if options is not None:
            rc, mid = self.client.subscribe(topic, options=options, properties=properties)
        else:
            rc, mid = self.client.subscribe(topic, qos, properties=properties)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        got_mid, codes, _props = self.subacks.get(timeout=timeout)
        assert got_mid == mid
        return codes

    def unsubscribe(self, topic, timeout: float = TIMEOUT):
        rc, mid = self.client.unsubscribe(topic)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        got_mid, rcs = self.unsubacks.get(timeout=timeout)
        assert got_mid == mid
        return rcs

    def publish(self, topic: str, payload: bytes | str = b"", qos: int = 0, retain: bool = False,
                properties: Properties | None = None, timeout: float = TIMEOUT) -> None:
        """Publishes and, for QoS 1/2, waits until the broker acknowledged it (PUBACK / PUBCOMP)."""
        info = self.client.publish(topic, payload, qos, retain, properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        info.wait_for_publish(timeout=timeout)
        assert info.is_published(), f"publish to {topic} not acknowledged within {timeout} s"

    def message(self, timeout: float = TIMEOUT) -> mqtt.MQTTMessage:
        try:
            return self.msgs.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client._client_id!r}: no message within {timeout} s") from None

    def disconnect(self, timeout: float = TIMEOUT) -> None:
        """Normal DISCONNECT, then stops the network thread."""
        self.client.disconnect()
        self.disconnects.get(timeout=timeout)
        self.stop()

    def stop(self) -> None:
        if self._looping:
            self.client.loop_stop()
            self._looping = False

    def abort(self) -> None:
        """Closes the TCP connection without a DISCONNECT (only for an unthreaded client)."""
        assert not self._looping
        sock = self.client.socket()
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        self.connected = False

    def close(self) -> None:
        """Teardown: disconnect if still connected, stop the thread; never raises."""
        try:
            if self.connected:
                self.client.disconnect()
                try:
                    self.disconnects.get(timeout=2)
                except queue.Empty:
                    pass
        except Exception:  # noqa: BLE001 - teardown must not mask the test's own failure
            pass
        try:
            self.stop()
        except Exception:  # noqa: BLE001
            pass


def props(packet_type: int = PacketTypes.PUBLISH, **values) -> Properties:
    """Properties(packet_type) with attributes set, e.g. props(PacketTypes.CONNECT, SessionExpiryInterval=60)."""
    p = Properties(packet_type)
    for k, v in values.items():
        if k == "UserProperty":
            for pair in v:
                p.UserProperty = pair  # paho appends on every assignment
        else:
            setattr(p, k, v)
    return p
