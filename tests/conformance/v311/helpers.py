"""Shared helpers for the MQTT 3.1.1 / 3.1 black-box conformance tests.

Everything here speaks raw bytes through tests/lib/mqttraw.py. Clients opened
through these helpers are closed by the autouse fixture in conftest.py.
Waiting is always on an event (a packet, a closed socket, a broker log line),
never on a fixed sleep.
"""
from __future__ import annotations

import itertools
import time

import mqttraw as m

TIMEOUT = 3.0  # seconds any single expected event may take

_open: list[m.RawClient] = []
_probe_ids = itertools.count(1)


def raw(broker, version: int = 4, timeout: float = TIMEOUT) -> m.RawClient:
    """A TCP connection to the broker, nothing sent yet."""
    c = m.RawClient(broker.port, version=version, timeout=timeout)
    _open.append(c)
    return c


def close_all() -> None:
    while _open:
        _open.pop().close()


def connected(broker, client_id: str, version: int = 4, **kw) -> m.RawClient:
    """A client whose CONNECT was accepted (return code 0, checked)."""
    c = raw(broker, version)
    ack = c.connect(client_id, version=version, **kw)
    assert ack.fields["reason"] == 0, f"CONNECT of {client_id!r} refused: {ack!r}"
    return c


def subscribe(c: m.RawClient, filters: list[tuple[str, int]], packet_id: int = 1) -> list[int]:
    """Sends SUBSCRIBE and returns the SUBACK return codes (packet id checked)."""
    c.send(m.subscribe(packet_id, filters))
    ack = c.expect(m.SUBACK)
    assert ack.fields["packet_id"] == packet_id
    return ack.fields["reasons"]


def subscriber(broker, client_id: str, filters: list[tuple[str, int]], **kw) -> m.RawClient:
    """A connected client with `filters` subscribed at the granted QoS it asked for."""
    c = connected(broker, client_id, **kw)
    granted = subscribe(c, filters)
    assert granted == [q for _, q in filters], granted
    return c


def publish_acked(c: m.RawClient, topic: str, payload: bytes, qos: int = 1, packet_id: int = 1,
                  retain: bool = False) -> None:
    """Publishes and completes the publisher side of the QoS flow (QoS 0: nothing to await)."""
    c.send(m.publish(topic, payload, qos=qos, packet_id=packet_id, retain=retain))
    if qos == 1:
        assert c.expect(m.PUBACK).fields["packet_id"] == packet_id
    elif qos == 2:
        assert c.expect(m.PUBREC).fields["packet_id"] == packet_id
        c.send(m.ack(m.PUBREL, packet_id))
        assert c.expect(m.PUBCOMP).fields["packet_id"] == packet_id


def expect_publish(c: m.RawClient, topic: str | None = None, payload: bytes | None = None,
                   ack: bool = True, timeout: float | None = None) -> m.Packet:
    """The next packet must be a PUBLISH (optionally with this topic/payload). QoS 1 is
    acknowledged with PUBACK when `ack` (QoS 2 is left to the test)."""
    p = c.expect(m.PUBLISH, timeout)
    if topic is not None:
        assert p.fields["topic"] == topic, p
    if payload is not None:
        assert p.fields["payload"] == payload, p
    if ack and p.fields["qos"] == 1:
        c.send(m.ack(m.PUBACK, p.fields["packet_id"]))
    return p


def expect_publishes(c: m.RawClient, n: int, ack: bool = True) -> list[m.Packet]:
    return [expect_publish(c, ack=ack) for _ in range(n)]


def sentinel(c_pub: m.RawClient, c_sub: m.RawClient, topic: str, payload: bytes = b"sentinel",
             packet_id: int = 999) -> None:
    """Proves that nothing else is pending for `c_sub`: publishes a marker message
    (QoS 1, from `c_pub`) that `c_sub` is subscribed to, and asserts that the
    very next packet `c_sub` receives is that marker. Anything routed to
    `c_sub` before the marker was published would arrive first."""
    publish_acked(c_pub, topic, payload, qos=1, packet_id=packet_id)
    p = c_sub.recv()
    assert p.type == m.PUBLISH and p.fields["topic"] == topic and p.fields["payload"] == payload, \
        f"expected only the sentinel on {topic!r}, got {p!r}"
    if p.fields["qos"] == 1:
        c_sub.send(m.ack(m.PUBACK, p.fields["packet_id"]))


def expect_closed_silently(c: m.RawClient) -> None:
    """The broker closes the connection without sending anything (v3.x protocol errors)."""
    got = c.expect_closed()
    assert got == [], f"expected a silent close, got {got!r}"


def close_reason(broker, c: m.RawClient) -> str:
    """The reason petrel logged for closing the connection of `c` (awaited: the log line may follow the close)."""
    mark = f"peer=127.0.0.1:{c.local_port} reason="
    deadline = time.monotonic() + TIMEOUT
    while True:
        lines = [line for line in broker.log_text().splitlines() if mark in line]
        if lines:
            return lines[-1].split(mark, 1)[1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no close of port {c.local_port} in the broker log:\n{broker.log_text()[-3000:]}")
        time.sleep(0.01)


def _offline_line(client_id: str) -> str:
    return f"client disconnected: id={client_id} peer="


def offline_count(broker, client_id: str) -> int:
    """How many times the broker has logged the end of a connection of this client id."""
    return broker.log_text().count(_offline_line(client_id))


def wait_offline(broker, client_id: str, before: int = 0) -> None:
    """Awaits the broker's log line saying that a connection of the client is gone (the (before+1)-th such
    line, `before` being offline_count() taken before the close)."""
    deadline = time.monotonic() + TIMEOUT
    while offline_count(broker, client_id) <= before:
        if time.monotonic() > deadline:
            raise AssertionError(f"the broker did not log the end of {client_id}'s connection:\n"
                                 f"{broker.log_text()[-3000:]}")
        time.sleep(0.01)


def disconnect(broker, c: m.RawClient, client_id: str) -> None:
    """A normal DISCONNECT, then waits until the broker has processed it."""
    before = offline_count(broker, client_id)
    c.send(m.disconnect())
    assert c.expect_closed() == []
    c.close()
    wait_offline(broker, client_id, before)


def drop(broker, c: m.RawClient, client_id: str) -> None:
    """Closes the socket without DISCONNECT (an abnormal close) and waits for the broker to notice."""
    before = offline_count(broker, client_id)
    c.close()
    wait_offline(broker, client_id, before)


def assert_serving(broker) -> None:
    """The broker is alive and routes messages: a fresh client subscribes to a topic of
    its own, publishes QoS 1 to it and gets both the PUBACK and the message back."""
    assert broker.alive(), "petrel exited"
    cid = f"probe{next(_probe_ids)}"
    topic = f"probe/{cid}"
    with m.RawClient(broker.port, timeout=TIMEOUT) as c:
        assert c.connect(cid).fields["reason"] == 0
        c.send(m.subscribe(1, [(topic, 1)]))
        assert c.expect(m.SUBACK).fields["reasons"] == [1]
        c.send(m.publish(topic, b"still serving", qos=1, packet_id=2))
        got = {}
        for _ in range(2):
            p = c.recv()
            got[p.type] = p
        assert got.keys() == {m.PUBACK, m.PUBLISH}, got
        assert got[m.PUBACK].fields["packet_id"] == 2
        assert got[m.PUBLISH].fields["payload"] == b"still serving"
        c.send(m.disconnect())


class Stopwatch:
    def __init__(self):
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


def tag(*values) -> str:
    """A short deterministic token for parametrized tests, so that each case uses its own ids and topics."""
    import hashlib
    return hashlib.sha1(repr(values).encode()).hexdigest()[:6]
