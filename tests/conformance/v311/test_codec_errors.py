"""MQTT 3.1.1: the server's answer to a broken packet is closing the connection without a word
[MQTT-4.8.0-1]; which fault petrel saw is in its log (the reason of the close), so the tests read that too.

- a packet type a client never sends is a protocol violation, whatever its body (2.2.1).
"""
import time

import pytest

import mqttraw as m

from .helpers import TIMEOUT, assert_serving, connected, expect_closed_silently


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


# ------------------------------------------ packets a client never sends (2.2.1) --

@pytest.mark.parametrize("pkt", [b"\x20\x01\xff", b"\x90\x03\x00\x01\x03", b"\xb1\x02\x00\x01", b"\xd0\x01\x00"],
                         ids=["CONNACK", "SUBACK", "UNSUBACK", "PINGRESP"])
def test_server_packet_with_malformed_body_is_protocol_violation(broker, pkt):
    """2.2.1 (direction of flow): CONNACK, SUBACK, UNSUBACK and PINGRESP go from server to client only. One from a
    client is refused for its type, from the first byte, even when its body would not parse: the connection is
    closed and the reason is a protocol error (0x82), not a malformed packet."""
    c = connected(broker, f"ce-dir-{pkt[0]:02x}")
    c.send(pkt)
    expect_closed_silently(c)
    reason = close_reason(broker, c)
    assert "(0x82)" in reason and "sent by servers only" in reason, reason
    assert_serving(broker)


def test_reserved_type_0_is_protocol_violation(broker):
    """2.2.1: packet type 0 is reserved. Known from the first byte: closed as a protocol error (0x82), however
    the body looks."""
    c = connected(broker, "ce-t0")
    c.send(b"\x0f\x03\xff\xff\xff")
    expect_closed_silently(c)
    reason = close_reason(broker, c)
    assert "(0x82)" in reason and "reserved packet type 0" in reason, reason


@pytest.mark.parametrize("first", [0xF0, 0xF1, 0xFF], ids=["flags-0", "flags-1", "flags-F"])
def test_reserved_type_15_is_protocol_violation(broker, first):
    """2.2.1: packet type 15 is reserved in 3.1.1 (AUTH exists only in MQTT 5): closed as a protocol error
    whatever its flags."""
    c = connected(broker, f"ce-t15-{first:02x}")
    c.send(bytes([first, 0x02, 0x18, 0x00]))
    expect_closed_silently(c)
    reason = close_reason(broker, c)
    assert "(0x82)" in reason and "type 15 is reserved" in reason, reason


def test_second_connect_with_malformed_body_is_protocol_violation(broker):
    """[MQTT-3.1.0-2] A second CONNECT is a protocol violation, even one cut short after the protocol level."""
    c = connected(broker, "ce-conn2")
    c.send(m.packet(m.CONNECT, 0, m.mstr("MQTT") + b"\x04"))
    expect_closed_silently(c)
    reason = close_reason(broker, c)
    assert "(0x82)" in reason and "second CONNECT" in reason, reason
