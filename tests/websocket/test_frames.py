"""MQTT inside WebSocket frames on a ws listener, with raw sockets (wsraw.py): MQTT 5.0 section 6 and RFC 6455.

- MQTT travels in binary messages as a byte stream: a packet may span frames and messages, a frame may carry
  several packets [MQTT-6.0.0-2, -3]; fragmented messages (continuation frames) and control frames between the
  fragments work.
- A text frame closes the connection with status 1003 [MQTT-6.0.0-1]; a message larger than max_packet_size
  with 1009; a WebSocket ping gets a pong with the same payload.
- The close status says why the MQTT side ended: 1000 after DISCONNECT or a session takeover, 1001 when the
  broker shuts down, 1002 for a malformed packet or protocol error, 1008 for a quota, 1009 for a packet too
  large. A client's close frame is answered and ends the connection like a network close (the will is sent).
- Frames that break RFC 6455 (unmasked, RSV bits, unknown opcodes, bad fragmentation, long or fragmented control
  frames) fail that connection; the listener goes on serving.
"""
from __future__ import annotations

import pytest

import mqttraw as m

from . import wsraw as ws
from .wsraw import BINARY, CLOSE, CONT, PING, PONG, TEXT


def stream_bytes(tag: str, version: int = 4) -> tuple[bytes, str, bytes]:
    """CONNECT + SUBSCRIBE (QoS 1) + PUBLISH QoS 1 to the subscribed topic, as one byte string."""
    topic, payload = f"ws/split/{tag}", f"payload of {tag}".encode()
    data = (m.connect(f"split-{tag}", version=version)
            + m.subscribe(1, [(topic, 1)], version=version)
            + m.publish(topic, payload, qos=1, packet_id=2, version=version))
    return data, topic, payload


def expect_stream_answers(c: ws.WsClient, topic: str, payload: bytes, where: str) -> None:
    """CONNACK 0, SUBACK [1], then PUBACK 2 and the message (in either order)."""
    ack = c.expect(m.CONNACK)
    assert ack.fields["reason"] == 0, f"{where}: {ack!r}"
    sub = c.expect(m.SUBACK)
    assert sub.fields["reasons"] == [1], f"{where}: {sub!r}"
    got = {c.recv().type, c.recv().type}
    assert got == {m.PUBACK, m.PUBLISH}, f"{where}: {got}"


def test_connect_subscribe_publish_split_at_every_byte_into_two_messages(ws_broker):
    """For every split point k of CONNECT + SUBSCRIBE + PUBLISH QoS 1, the bytes sent as two binary messages
    ([:k] and [k:]) on a new connection: CONNACK, SUBACK, PUBACK and the message all arrive."""
    b = ws_broker()
    data, topic, payload = stream_bytes("msgs")
    for k in range(1, len(data)):
        with ws.WsClient(b.ws_port) as c:
            c.upgrade()
            c.send_raw(ws.frame(BINARY, data[:k]) + ws.frame(BINARY, data[k:]))
            expect_stream_answers(c, topic, payload, f"split at {k}")


def test_connect_subscribe_publish_split_at_every_byte_into_fragments(ws_broker):
    """The same stream as one fragmented binary message (binary frame [:k] without FIN, continuation [k:] with
    FIN), with a ping between the two fragments (control frames may be interleaved, RFC 6455 5.4): the pong
    carries the ping's payload and all four answers arrive, for every k."""
    b = ws_broker()
    data, topic, payload = stream_bytes("frag", version=5)
    for k in range(1, len(data)):
        with ws.WsClient(b.ws_port, version=5) as c:
            c.upgrade()
            c.send_raw(ws.frame(BINARY, data[:k], fin=False) + ws.frame(PING, b"k=%d" % k)
                       + ws.frame(CONT, data[k:], fin=True))
            expect_stream_answers(c, topic, payload, f"fragmented at {k}")
            c.ping(b"after")  # any pong that came among the packets was recorded
            assert c.pongs == [b"k=%d" % k], f"k={k}: pongs {c.pongs}"


@pytest.mark.parametrize("shape", ["one-byte-messages", "one-byte-fragments"])
def test_one_byte_per_frame(ws_broker, shape):
    """Every byte of CONNECT + SUBSCRIBE + PUBLISH in a frame of its own (as that many binary messages, or as one
    message of that many fragments), all in one write: the four answers arrive."""
    b = ws_broker()
    data, topic, payload = stream_bytes(shape)
    with ws.WsClient(b.ws_port) as c:
        c.upgrade()
        if shape == "one-byte-messages":
            c.send_raw(b"".join(ws.frame(BINARY, data[i:i + 1]) for i in range(len(data))))
        else:
            c.send_fragmented([data[i:i + 1] for i in range(len(data))])
        expect_stream_answers(c, topic, payload, shape)


def test_several_packets_in_one_frame(ws_broker):
    """CONNECT, SUBSCRIBE, two PUBLISHes (QoS 0 and 1) and PINGREQ in one binary frame: every answer (CONNACK,
    SUBACK, both messages in order, the PUBACK, PINGRESP); then DISCONNECT and DISCONNECT again in one frame:
    the close frame 1000."""
    b = ws_broker()
    data = (m.connect("many-in-one") + m.subscribe(1, [("ws/many", 1)])
            + m.publish("ws/many", b"zero") + m.publish("ws/many", b"one", qos=1, packet_id=7) + m.pingreq())
    with ws.WsClient(b.ws_port) as c:
        c.upgrade()
        c.send_binary(data)
        assert c.expect(m.CONNACK).fields["reason"] == 0
        assert c.expect(m.SUBACK).fields["reasons"] == [1]
        rest = [c.recv() for _ in range(4)]
        assert sorted(p.type for p in rest) == sorted([m.PUBLISH, m.PUBLISH, m.PUBACK, m.PINGRESP]), rest
        msgs = [(p.fields["topic"], p.fields["payload"]) for p in rest if p.type == m.PUBLISH]
        assert msgs == [("ws/many", b"zero"), ("ws/many", b"one")], rest
        c.send_binary(m.disconnect() + m.disconnect())
        closed = c.expect_close()
        assert closed.status == 1000 and closed.packets == [], closed.frame


def test_large_message_in_one_frame_and_across_frames(ws_broker):
    """A 200 KB PUBLISH (64-bit frame length) in one frame, and another split over 50 fragments: both come back
    whole to the subscriber."""
    b = ws_broker()
    big = bytes(range(256)) * 800
    with ws.open_ws(b.ws_port, "big") as c:
        c.send_binary(m.subscribe(1, [("ws/big", 0)]))
        c.expect(m.SUBACK)
        c.send_binary(m.publish("ws/big", big))
        p = c.expect(m.PUBLISH)
        assert p.fields["payload"] == big
        packet = m.publish("ws/big", big[::-1])
        step = len(packet) // 50 + 1
        c.send_fragmented([packet[i:i + step] for i in range(0, len(packet), step)])
        assert c.expect(m.PUBLISH).fields["payload"] == big[::-1]


@pytest.mark.parametrize("payload", [b"", b"hello", bytes(range(125))], ids=["empty", "short", "125-bytes"])
def test_ping_gets_pong_with_same_payload(ws_broker, payload):
    """A WebSocket ping, before the CONNECT and after it, gets a pong with the same payload; MQTT goes on."""
    b = ws_broker()
    with ws.WsClient(b.ws_port) as c:
        c.upgrade()
        c.ping(payload)
        assert c.connect("pinger").fields["reason"] == 0
        c.ping(payload)
        ws.qos1_round_trip(c, "ws/ping", b"after the ping")


def test_unsolicited_pong_is_ignored(ws_broker):
    """A pong nobody asked for (allowed as a heartbeat, RFC 6455 5.5.3) changes nothing: MQTT goes on."""
    b = ws_broker()
    with ws.open_ws(b.ws_port, "ponger") as c:
        c.send_frame(PONG, b"heartbeat")
        ws.qos1_round_trip(c, "ws/pong", b"still fine")


@pytest.mark.parametrize("when", ["before-connect", "after-connect"])
def test_text_frame_closes_with_1003(ws_broker, when):
    """[MQTT-6.0.0-1] MQTT Control Packets must be sent in binary frames: a text frame closes the connection
    with status 1003 (unsupported data); the listener goes on serving."""
    b = ws_broker()
    with ws.WsClient(b.ws_port) as c:
        c.upgrade()
        if when == "after-connect":
            assert c.connect("texter").fields["reason"] == 0
        c.send_frame(TEXT, m.publish("ws/text", b"in a text frame"))
        closed = c.expect_close()
        assert closed.status == 1003, closed.frame
        assert closed.packets == [], closed.packets
    ws.good_client(b.ws_port, f"after-text-{when}")


MAX = 256  # [mqtt] max_packet_size for the size tests


@pytest.mark.parametrize("shape", ["one-frame", "declared-length-only", "fragments"])
def test_message_larger_than_max_packet_size_closes_with_1009(ws_broker, shape):
    """max_packet_size = 256: a binary message of 1000 bytes (in one frame; as a frame header that only
    declares 2^40 bytes; or as fragments of 100 bytes each) closes the connection with 1009 (message too big)
    and no MQTT answer; the listener goes on serving."""
    b = ws_broker(mqtt=f"max_packet_size = {MAX}")
    packet = m.publish("ws/big", b"x" * 1000)
    with ws.open_ws(b.ws_port, f"big-{shape}") as c:
        if shape == "one-frame":
            c.send_binary(packet)
        elif shape == "declared-length-only":
            c.send_raw(ws.frame(BINARY, b"", length=1 << 40))  # the header (and mask key), no payload
        else:
            c.send_fragmented([packet[i:i + 100] for i in range(0, len(packet), 100)])
        closed = c.expect_close()
        assert closed.status == 1009, closed.frame
        assert closed.packets == [], closed.packets
    ws.good_client(b.ws_port, f"after-{shape}")


def test_message_of_exactly_max_packet_size_accepted(ws_broker):
    """max_packet_size = 256: a PUBLISH of exactly 256 bytes in one message is accepted (PUBACK)."""
    b = ws_broker(mqtt=f"max_packet_size = {MAX}")
    packet = next(p for n in range(MAX, 0, -1)
                  if len(p := m.publish("ws/exact", b"y" * n, qos=1, packet_id=3)) == MAX)
    with ws.open_ws(b.ws_port, "exact") as c:
        c.send_binary(packet)
        assert c.expect(m.PUBACK).fields["packet_id"] == 3


def test_mqtt_packet_too_large_across_small_messages_closes_with_1009(ws_broker):
    """max_packet_size = 256, MQTT 5: a 600-byte PUBLISH sent as three messages of 200 bytes (each within the
    limit) is a packet too large: DISCONNECT 0x95 [MQTT-3.2.2-15], then close status 1009."""
    b = ws_broker(mqtt=f"max_packet_size = {MAX}")
    packet = m.publish("ws/big", b"z" * 580, version=5)
    with ws.open_ws(b.ws_port, "big-mqtt", version=5) as c:
        for i in range(0, len(packet), 200):
            c.send_binary(packet[i:i + 200])
        closed = c.expect_close()
        assert [(p.type, p.fields.get("reason")) for p in closed.packets] == [(m.DISCONNECT, 0x95)], closed.packets
        assert closed.status == 1009, closed.frame


# ------------------------------------------------------------ close status --

@pytest.mark.parametrize("version", [4, 5])
def test_disconnect_closes_with_1000(ws_broker, version):
    """DISCONNECT: the broker sends close 1000 (normal closure) and ends the TCP connection."""
    b = ws_broker()
    with ws.open_ws(b.ws_port, f"bye-{version}", version=version) as c:
        c.send_binary(m.disconnect(0 if version == 5 else None))
        closed = c.expect_close()
        assert closed.status == 1000, closed.frame
        assert closed.packets == []
    b.wait_log(f"client disconnected: id=bye-{version} ")


@pytest.mark.parametrize("version", [4, 5])
def test_session_takeover_closes_old_connection_with_1000(ws_broker, version):
    """A second connection with the same client id takes the session over: the old one (v5: after DISCONNECT
    0x8E) gets close 1000; the new one works."""
    b = ws_broker()
    old = ws.open_ws(b.ws_port, f"twin-{version}", version=version)
    with old, ws.open_ws(b.ws_port, f"twin-{version}", version=version) as new:
        closed = old.expect_close()
        want = [(m.DISCONNECT, 0x8E)] if version == 5 else []
        assert [(p.type, p.fields.get("reason")) for p in closed.packets] == want, closed.packets
        assert closed.status == 1000, closed.frame
        ws.qos1_round_trip(new, "ws/twin", b"the new one")


@pytest.mark.parametrize("version", [4, 5])
def test_malformed_packet_closes_with_1002(ws_broker, version):
    """A PUBLISH with QoS 3 is malformed [MQTT-3.3.1-4]: (v5: DISCONNECT 0x81, then) close 1002."""
    b = ws_broker()
    good = m.publish("ws/bad", b"x", qos=1, packet_id=1, version=version)
    with ws.open_ws(b.ws_port, f"qos3-{version}", version=version) as c:
        c.send_binary(bytes([good[0] | 0x06]) + good[1:])
        closed = c.expect_close()
        want = [(m.DISCONNECT, 0x81)] if version == 5 else []
        assert [(p.type, p.fields.get("reason")) for p in closed.packets] == want, closed.packets
        assert closed.status == 1002, closed.frame
    ws.good_client(b.ws_port, f"after-qos3-{version}")


def test_protocol_error_closes_with_1002(ws_broker):
    """A second CONNECT is a Protocol Error [MQTT-3.1.0-2]: DISCONNECT 0x82, then close 1002."""
    b = ws_broker()
    with ws.open_ws(b.ws_port, "twice", version=5) as c:
        c.send_binary(m.connect("twice", version=5))
        closed = c.expect_close()
        assert [(p.type, p.fields.get("reason")) for p in closed.packets] == [(m.DISCONNECT, 0x82)], closed.packets
        assert closed.status == 1002, closed.frame


def test_quota_closes_with_1008(ws_broker):
    """max_user_properties = 2: a PUBLISH with 3 User Properties exceeds the quota: DISCONNECT 0x97, then
    close 1008 (policy violation)."""
    b = ws_broker(mqtt="max_user_properties = 2")
    props = [(m.USER_PROPERTY, (f"k{i}", "v")) for i in range(3)]
    with ws.open_ws(b.ws_port, "greedy", version=5) as c:
        c.send_binary(m.publish("ws/quota", b"x", version=5, properties=props))
        closed = c.expect_close()
        assert [(p.type, p.fields.get("reason")) for p in closed.packets] == [(m.DISCONNECT, 0x97)], closed.packets
        assert closed.status == 1008, closed.frame


@pytest.mark.parametrize("version", [4, 5])
def test_broker_shutdown_closes_with_1001(ws_broker, version):
    """SIGTERM: connected WebSocket clients (v5: after DISCONNECT 0x8B) get close 1001 (going away), and petrel
    exits 0."""
    b = ws_broker()
    with ws.open_ws(b.ws_port, f"shut-{version}", version=version) as c:
        assert b.stop() == 0
        closed = c.expect_close()
        want = [(m.DISCONNECT, 0x8B)] if version == 5 else []
        assert [(p.type, p.fields.get("reason")) for p in closed.packets] == want, closed.packets
        assert closed.status == 1001, closed.frame


def test_client_close_frame_is_answered_and_will_is_sent(ws_broker):
    """A client that ends with a WebSocket close frame (1000) and no DISCONNECT: the broker answers with a close
    frame (RFC 6455 5.5.1) and closes the TCP connection; for MQTT that is a network close, so the will message
    is published (to a subscriber on the TCP listener)."""
    b = ws_broker()
    with m.RawClient(b.port) as watcher:
        watcher.connect("will-watcher")
        watcher.send(m.subscribe(1, [("ws/will", 1)]))
        watcher.expect(m.SUBACK)
        with ws.open_ws(b.ws_port, "leaver", version=5, will_topic="ws/will", will_payload=b"gone", will_qos=1) as c:
            c.send_frame(CLOSE, ws.close_payload(1000, b"bye"))
            f = c.recv_frame()
            assert f.opcode == CLOSE and f.close_status == 1000, f
            c.wait_eof()
        p = watcher.expect(m.PUBLISH)
        assert (p.fields["topic"], p.fields["payload"]) == ("ws/will", b"gone"), p


# ------------------------------------------------------ RFC 6455 violations --

VIOLATIONS = {
    # a client frame without a mask (RFC 6455 5.1: the server MUST close the connection)
    "unmasked": lambda pkt: ws.frame(BINARY, pkt, mask=False),
    # RSV1 set without a negotiated extension (5.2: MUST fail)
    "rsv1": lambda pkt: ws.frame(BINARY, pkt, rsv=4),
    # a reserved data opcode (5.2: MUST fail)
    "opcode-3": lambda pkt: ws.frame(0x3, pkt),
    # a reserved control opcode
    "opcode-0xb": lambda pkt: ws.frame(0xB, b""),
    # a continuation frame with no message to continue (5.4)
    "orphan-continuation": lambda pkt: ws.frame(CONT, pkt),
    # a new binary message before the fragmented one ended (5.4)
    "interleaved-message": lambda pkt: ws.frame(BINARY, pkt[:3], fin=False) + ws.frame(BINARY, pkt[3:]),
    # a fragmented control frame (5.5: MUST NOT be fragmented)
    "fragmented-ping": lambda pkt: ws.frame(PING, b"ab", fin=False),
    # a control frame longer than 125 bytes (5.5)
    "long-ping": lambda pkt: ws.frame(PING, b"p" * 126),
}


@pytest.mark.parametrize("kind", list(VIOLATIONS))
def test_rfc6455_violation_fails_the_connection(ws_broker, kind):
    """A frame that breaks RFC 6455 fails the WebSocket connection (7.1.7): the broker sends close 1002
    (protocol error) and closes, the PUBLISH in the bad frame is not routed, and the listener goes on
    serving."""
    b = ws_broker()
    with m.RawClient(b.port) as watcher:
        watcher.connect("violation-watcher")
        watcher.send(m.subscribe(1, [("ws/violation", 0)]))
        watcher.expect(m.SUBACK)
        with ws.open_ws(b.ws_port, f"violator-{kind}") as c:
            c.send_raw(VIOLATIONS[kind](m.publish("ws/violation", kind.encode())))
            f = c.expect_failed()
            assert f is not None and f.close_status == 1002, f"close frame {f}; frames {c.frames}"
        ws.good_client(b.ws_port, f"after-{kind}")
        # the good client's round trip went through the broker after the violation: nothing for the watcher
        watcher.send(m.pingreq())
        assert watcher.expect(m.PINGRESP)
