"""Helpers for the MQTT 5.0 black-box conformance tests.

The `v5` fixture opens MQTT 5.0 RawClients on a broker (closed at teardown)
and wraps the handshakes every test repeats: CONNECT/CONNACK, SUBSCRIBE/SUBACK,
a QoS 1/2 PUBLISH with its acknowledgements, "the broker answered this with
DISCONNECT <reason> and closed", and "the broker still serves new clients".
Everything here asserts on bytes read from the socket; nothing looks inside
petrel.
"""
from __future__ import annotations

import time

import pytest

import mqttraw as m


class V5:
    def __init__(self) -> None:
        self._clients: list[m.RawClient] = []

    # ------------------------------------------------------------ clients --

    def client(self, broker, timeout: float = 5.0) -> m.RawClient:
        """A TCP connection speaking MQTT 5.0, not yet connected."""
        c = m.RawClient(broker.port, version=5, timeout=timeout)
        self._clients.append(c)
        return c

    def connect(self, broker, client_id: str, **kw) -> m.RawClient:
        """A connected client; CONNACK must be Success. The CONNACK is kept in `c.connack`."""
        c = self.client(broker)
        kw.setdefault("version", 5)
        c.send(m.connect(client_id, **kw))
        ack = c.expect(m.CONNACK, timeout=3)
        assert ack.fields["reason"] == 0, f"CONNECT of {client_id!r} refused: {ack!r}"
        c.connack = ack
        return c

    def close_all(self) -> None:
        for c in self._clients:
            c.close()

    # ---------------------------------------------------------- subscribe --

    @staticmethod
    def subscribe(c: m.RawClient, filters, options: int = 1, packet_id: int = 1, properties=None) -> list[int]:
        """SUBSCRIBE to one filter (str) or [(filter, options)]; returns the SUBACK reason codes."""
        if isinstance(filters, str):
            filters = [(filters, options)]
        c.send(m.subscribe(packet_id, filters, version=5, properties=properties))
        ack = c.expect(m.SUBACK, timeout=3)
        assert ack.fields["packet_id"] == packet_id, ack
        return ack.fields["reasons"]

    @staticmethod
    def unsubscribe(c: m.RawClient, filters, packet_id: int = 2) -> list[int]:
        if isinstance(filters, str):
            filters = [filters]
        c.send(m.unsubscribe(packet_id, filters, version=5))
        ack = c.expect(m.UNSUBACK, timeout=3)
        assert ack.fields["packet_id"] == packet_id, ack
        return ack.fields["reasons"]

    # ------------------------------------------------------------ publish --

    @staticmethod
    def publish(c: m.RawClient, topic, payload: bytes = b"", qos: int = 0, packet_id: int = 1, retain: bool = False,
                properties=None) -> int | None:
        """PUBLISH and complete the QoS flow; returns the PUBACK/PUBREC reason code (None for QoS 0)."""
        c.send(m.publish(topic, payload, qos=qos, retain=retain, packet_id=packet_id, version=5,
                         properties=properties))
        if qos == 0:
            return None
        if qos == 1:
            ack = c.expect(m.PUBACK, timeout=3)
            assert ack.fields["packet_id"] == packet_id, ack
            return ack.fields["reason"]
        rec = c.expect(m.PUBREC, timeout=3)
        assert rec.fields["packet_id"] == packet_id, rec
        c.send(m.ack(m.PUBREL, packet_id))
        comp = c.expect(m.PUBCOMP, timeout=3)
        assert comp.fields["packet_id"] == packet_id and comp.fields["reason"] == 0, comp
        return rec.fields["reason"]

    @staticmethod
    def receive(c: m.RawClient, timeout: float = 3.0, ack: bool = True) -> m.Packet:
        """The next PUBLISH (anything else is an error); QoS 1/2 are acknowledged, QoS 2 up to PUBCOMP.
        PUBLISHes that arrive while waiting for a PUBREL are kept, in order, for the following calls."""
        stash = c.__dict__.setdefault("_stash", [])
        p = stash.pop(0) if stash else c.expect(m.PUBLISH, timeout=timeout)
        if ack and p.fields["qos"] == 1:
            c.send(m.ack(m.PUBACK, p.fields["packet_id"]))
        elif ack and p.fields["qos"] == 2:
            pid = p.fields["packet_id"]
            c.send(m.ack(m.PUBREC, pid))
            while True:
                nxt = c.recv(timeout)
                if nxt.type == m.PUBLISH:
                    stash.append(nxt)
                    continue
                assert nxt.type == m.PUBREL, f"expected PUBREL {pid}, got {nxt!r}"
                assert nxt.fields["packet_id"] == pid and nxt.fields["reason"] == 0, nxt
                break
            c.send(m.ack(m.PUBCOMP, pid))
        return p

    # ------------------------------------------------------------- errors --

    @staticmethod
    def expect_disconnect(c: m.RawClient, reason: int, timeout: float = 3.0) -> m.Packet:
        """The broker sends DISCONNECT with `reason` (after any other packets) and closes the connection."""
        got: list[m.Packet] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(c.recv(max(0.0, deadline - time.monotonic())))
            except m.Closed:
                break
            except TimeoutError:
                raise AssertionError(f"expected DISCONNECT {reason:#04x} and a close; the connection stayed open "
                                     f"for {timeout} s after receiving {got!r}") from None
        assert got, f"connection closed without a DISCONNECT (expected reason {reason:#04x})"
        last = got[-1]
        assert last.type == m.DISCONNECT, f"expected DISCONNECT {reason:#04x} before the close, got {got!r}"
        assert last.fields["reason"] == reason, f"expected DISCONNECT {reason:#04x}, got {last!r}"
        return last

    @staticmethod
    def expect_refused(c: m.RawClient, reason: int, timeout: float = 3.0) -> m.Packet:
        """The broker answers CONNECT with CONNACK `reason`, then closes the connection."""
        ack = c.expect(m.CONNACK, timeout=timeout)
        assert ack.fields["reason"] == reason, f"expected CONNACK {reason:#04x}, got {ack!r}"
        assert ack.fields["session_present"] == 0, ack
        rest = c.expect_closed(timeout)
        assert rest == [], f"packets after a refusing CONNACK: {rest!r}"
        return ack

    def assert_serving(self, broker, client_id: str = "after-error") -> None:
        """The broker still accepts a new client and answers it (after a protocol error elsewhere)."""
        c = self.connect(broker, client_id)
        c.send(m.pingreq())
        c.expect(m.PINGRESP, timeout=3)
        c.send(m.disconnect())
        assert c.expect_closed(3) == []
        assert broker.alive()


@pytest.fixture
def v5():
    helper = V5()
    yield helper
    helper.close_all()
