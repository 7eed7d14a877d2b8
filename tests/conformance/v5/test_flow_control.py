"""MQTT 5.0 section 4.9 Flow Control (Receive Maximum) and 3.1.2.11.4 / 3.2.2.3.6 Maximum Packet Size."""
import time

import pytest

import mqttraw as m


def _subscriber(v5, broker, cid, filter_, qos, props):
    s = v5.connect(broker, cid, properties=props)
    v5.subscribe(s, filter_, qos)
    return s


# ------------------------------------------------ client Receive Maximum --


def test_client_receive_maximum_limits_unacknowledged_qos1(broker, v5):
    """[MQTT-3.3.4-9] With the client's Receive Maximum 2 the broker sends at most 2 unacknowledged QoS 1
    PUBLISHes; the 3rd comes only after a PUBACK."""
    s = _subscriber(v5, broker, "fc-rm1", "fc/rm", 1, [(m.RECEIVE_MAXIMUM, 2)])
    p = v5.connect(broker, "fc-prm1")
    for i in range(3):
        v5.publish(p, "fc/rm", b"m%d" % i, qos=1, packet_id=i + 1)
    first = s.expect(m.PUBLISH)
    second = s.expect(m.PUBLISH)
    assert [first.fields["payload"], second.fields["payload"]] == [b"m0", b"m1"]
    s.expect_nothing(0.5)
    s.send(m.ack(m.PUBACK, first.fields["packet_id"]))
    third = s.expect(m.PUBLISH, timeout=2)
    assert third.fields["payload"] == b"m2"


def test_client_receive_maximum_counts_qos2_until_pubcomp(broker, v5):
    """[MQTT-3.3.4-9] A QoS 2 PUBLISH counts against Receive Maximum until its PUBCOMP, not its PUBREC."""
    s = _subscriber(v5, broker, "fc-rm2", "fc/rm2", 2, [(m.RECEIVE_MAXIMUM, 1)])
    p = v5.connect(broker, "fc-prm2")
    v5.publish(p, "fc/rm2", b"a", qos=2, packet_id=1)
    v5.publish(p, "fc/rm2", b"b", qos=2, packet_id=2)
    first = s.expect(m.PUBLISH)
    pid = first.fields["packet_id"]
    assert first.fields["payload"] == b"a"
    s.send(m.ack(m.PUBREC, pid))
    assert s.expect(m.PUBREL).fields["packet_id"] == pid
    s.expect_nothing(0.5)
    s.send(m.ack(m.PUBCOMP, pid))
    assert s.expect(m.PUBLISH, timeout=2).fields["payload"] == b"b"


def test_qos0_not_limited_by_receive_maximum_count(broker, v5):
    """[4.9] Receive Maximum limits only QoS 1/2 in flight: with it at 1 and nothing in flight, QoS 0
    messages flow freely."""
    s = _subscriber(v5, broker, "fc-q0", "fc/q0", 0, [(m.RECEIVE_MAXIMUM, 1)])
    p = v5.connect(broker, "fc-pq0")
    for i in range(5):
        v5.publish(p, "fc/q0", b"%d" % i)
    assert [v5.receive(s).fields["payload"] for _ in range(5)] == [b"0", b"1", b"2", b"3", b"4"]


# ------------------------------------------------ broker Receive Maximum --


def test_broker_receive_maximum_exceeded_disconnects_0x93(make_broker, v5):
    """[3.2.2.3.3] [4.9] With receive_maximum = 2, a third QoS 2 PUBLISH sent before any PUBREL exceeds the
    broker's Receive Maximum: DISCONNECT 0x93 (Receive Maximum exceeded)."""
    b = make_broker("[mqtt]\nreceive_maximum = 2\n")
    c = v5.connect(b, "fc-brm")
    assert c.connack.fields["props"].get(m.RECEIVE_MAXIMUM) == 2
    for pid in (1, 2):
        c.send(m.publish("fc/brm", b"x", qos=2, packet_id=pid, version=5))
        assert c.expect(m.PUBREC).fields["packet_id"] == pid
    c.send(m.publish("fc/brm", b"x", qos=2, packet_id=3, version=5))
    v5.expect_disconnect(c, 0x93)


def test_broker_receive_maximum_frees_slot_after_pubrel(make_broker, v5):
    """[4.9] Completing one QoS 2 flow (PUBREL/PUBCOMP) frees a slot: a new QoS 2 PUBLISH is then accepted."""
    b = make_broker("[mqtt]\nreceive_maximum = 2\n")
    c = v5.connect(b, "fc-brm2")
    for pid in (1, 2):
        c.send(m.publish("fc/brm", b"x", qos=2, packet_id=pid, version=5))
        c.expect(m.PUBREC)
    c.send(m.ack(m.PUBREL, 1))
    assert c.expect(m.PUBCOMP).fields["packet_id"] == 1
    c.send(m.publish("fc/brm", b"x", qos=2, packet_id=3, version=5))
    assert c.expect(m.PUBREC).fields["packet_id"] == 3


def test_broker_receive_maximum_exceeded_leaves_broker_serving(make_broker, v5):
    """[4.13] After the 0x93 disconnect the broker still serves new clients."""
    b = make_broker("[mqtt]\nreceive_maximum = 1\n")
    c = v5.connect(b, "fc-brm3")
    c.send(m.publish("fc/brm", b"x", qos=2, packet_id=1, version=5))
    c.expect(m.PUBREC)
    c.send(m.publish("fc/brm", b"x", qos=2, packet_id=2, version=5))
    v5.expect_disconnect(c, 0x93)
    v5.assert_serving(b, "fc-after")


# ------------------------------------------------ Maximum Packet Size --


def test_message_larger_than_client_maximum_packet_size_not_sent(broker, v5):
    """[MQTT-3.1.2-24] [MQTT-3.1.2-25] The broker does not send a packet larger than the client's Maximum Packet Size
    (100): the large message is discarded for that client, the small one after it arrives."""
    s = _subscriber(v5, broker, "fc-mps", "fc/mps", 1, [(m.MAXIMUM_PACKET_SIZE, 100)])
    p = v5.connect(broker, "fc-pmps")
    v5.publish(p, "fc/mps", b"L" * 200, qos=1, packet_id=1)
    v5.publish(p, "fc/mps", b"small", qos=1, packet_id=2)
    got = v5.receive(s)
    assert got.fields["payload"] == b"small"


def test_message_at_client_maximum_packet_size_is_sent(broker, v5):
    """[MQTT-3.1.2-24] A PUBLISH exactly the client's Maximum Packet Size (100 bytes) is delivered."""
    s = _subscriber(v5, broker, "fc-mpse", "fc/mpse", 0, [(m.MAXIMUM_PACKET_SIZE, 100)])
    p = v5.connect(broker, "fc-pmpse")
    # Delivered at QoS 0 with no properties: 1 (type) + 1 (length) + 2 + 7 (topic) + 1 (property length) + payload.
    payload = b"P" * (100 - 12)
    assert len(m.publish("fc/mpse", payload, version=5)) == 100
    v5.publish(p, "fc/mpse", payload)
    got = v5.receive(s)
    assert got.fields["payload"] == payload


def test_packet_larger_than_broker_maximum_disconnects_0x95(make_broker, v5):
    """[MQTT-3.2.2-15] [4.13] With max_packet_size = 1024, a 1025-byte PUBLISH: DISCONNECT 0x95 (Packet too large)."""
    b = make_broker("[mqtt]\nmax_packet_size = 1024\n")
    c = v5.connect(b, "fc-big")
    pkt = m.publish("fc/big", b"B" * (1025 - 12), version=5)
    assert len(pkt) == 1025
    c.send(pkt)
    v5.expect_disconnect(c, 0x95)


def test_packet_at_broker_maximum_accepted(make_broker, v5):
    """[3.2.2.3.6] A PUBLISH of exactly max_packet_size (1024) bytes is accepted."""
    b = make_broker("[mqtt]\nmax_packet_size = 1024\n")
    c = v5.connect(b, "fc-edge")
    pkt = m.publish("fc/big", b"B" * (1024 - 14), qos=1, packet_id=1, version=5)
    assert len(pkt) == 1024
    c.send(pkt)
    assert c.expect(m.PUBACK).fields["packet_id"] == 1


def test_packet_too_large_leaves_broker_serving(make_broker, v5):
    """[4.13] After a 0x95 disconnect the broker still serves new clients."""
    b = make_broker("[mqtt]\nmax_packet_size = 1024\n")
    c = v5.connect(b, "fc-big2")
    c.send(m.publish("fc/big", b"B" * 2000, version=5))
    v5.expect_disconnect(c, 0x95)
    v5.assert_serving(b, "fc-after2")


def test_pubrec_error_frees_receive_maximum_slot(broker, v5):
    """[MQTT-3.3.4-9] [4.3.3] A PUBREC with a Reason Code >= 0x80 ends the QoS 2 flow (no PUBREL) and no longer
    counts against the client's Receive Maximum (1): the next message is sent."""
    s = _subscriber(v5, broker, "fc-rec80", "fc/rec80", 2, [(m.RECEIVE_MAXIMUM, 1)])
    p = v5.connect(broker, "fc-prec80")
    v5.publish(p, "fc/rec80", b"refused", qos=2, packet_id=1)
    v5.publish(p, "fc/rec80", b"next", qos=2, packet_id=2)
    first = s.expect(m.PUBLISH)
    assert first.fields["payload"] == b"refused"
    s.send(m.ack(m.PUBREC, first.fields["packet_id"], reason=0x80))
    nxt = s.expect(m.PUBLISH, timeout=2)
    assert nxt.fields["payload"] == b"next"


# ------------------------------------ CONNACK and the client's Maximum Packet Size --


def _recv_sized(c, timeout: float = 3.0) -> tuple[m.Packet, int]:
    """The next packet from the broker and its size on the wire, as read (fixed header and body)."""
    deadline = time.monotonic() + timeout
    while (got := m.take_packet(c.buf)) is None:
        c._fill(deadline)  # raises Closed / TimeoutError
    first, body, end = got
    c.buf = c.buf[end:]
    return m.parse(first >> 4, first & 0x0F, body, c.version), end


def _plain_connack_size(v5, broker) -> int:
    """The size of petrel's CONNACK to a client that names itself and sets no limit (Receive Maximum, Topic
    Alias Maximum, Maximum Packet Size; no Reason String or User Property)."""
    c = v5.client(broker)
    c.send(m.connect("fc-plain", version=5))
    ack, size = _recv_sized(c)
    assert (ack.type, ack.fields["reason"]) == (m.CONNACK, 0x00), ack
    return size


def _connect_with_limit(v5, broker, cid: str, limit: int, properties=None, **kw):
    c = v5.client(broker)
    c.send(m.connect(cid, version=5, properties=[(m.MAXIMUM_PACKET_SIZE, limit), *(properties or [])], **kw))
    return c


def test_connack_larger_than_client_maximum_packet_size_closes_silently(broker, v5):
    """[MQTT-3.1.2-24] No CONNACK fits a Maximum Packet Size of 2 bytes: the broker sends nothing and closes the
    connection (the client is not left waiting for a CONNACK); other clients still connect."""
    c = _connect_with_limit(v5, broker, "fc-cmps2", 2)
    assert c.expect_closed(3) == [], "a packet larger than the client's Maximum Packet Size was sent"
    v5.assert_serving(broker, "fc-cmps2-next")


def test_connack_one_byte_over_client_maximum_packet_size_closes_silently(broker, v5):
    """[MQTT-3.1.2-24] A Maximum Packet Size one byte below petrel's CONNACK (its properties are not optional:
    leaving out Maximum Packet Size or Receive Maximum would announce other limits): nothing is sent and the
    connection is closed."""
    size = _plain_connack_size(v5, broker)
    c = _connect_with_limit(v5, broker, "fc-cmps-1", size - 1)
    assert c.expect_closed(3) == [], "a packet larger than the client's Maximum Packet Size was sent"


@pytest.mark.parametrize("extra", [0, 4], ids=["exact", "above"])
def test_connack_within_client_maximum_packet_size_is_sent(broker, v5, extra):
    """[MQTT-3.1.2-24] [MQTT-3.2.2-19] [MQTT-3.2.2-20] A Maximum Packet Size that fits the CONNACK without the
    optional Reason String and User Properties (petrel's CONNACK size, or a few bytes more): the client gets
    CONNACK Success, no larger than its limit, and is connected."""
    limit = _plain_connack_size(v5, broker) + extra
    c = _connect_with_limit(v5, broker, "fc-cmps-ok", limit)
    ack, size = _recv_sized(c)
    assert (ack.type, ack.fields["reason"]) == (m.CONNACK, 0x00), ack
    assert size <= limit, f"CONNACK of {size} bytes, Maximum Packet Size {limit}"
    c.send(m.pingreq())
    c.expect(m.PINGRESP)


def test_connack_with_assigned_client_identifier_over_limit_closes_silently(broker, v5):
    """[MQTT-3.2.2-16] [MQTT-3.1.2-24] An empty ClientID must be answered with an Assigned Client Identifier,
    which cannot be left out: with a limit that fits the plain CONNACK but not that one, nothing is sent and
    the connection is closed."""
    limit = _plain_connack_size(v5, broker) + 4
    c = _connect_with_limit(v5, broker, "", limit)
    assert c.expect_closed(3) == [], "a packet larger than the client's Maximum Packet Size was sent"


def test_connack_too_large_publishes_no_will(broker, v5):
    """[MQTT-3.1.2-8] A will is stored "if the Connect request is accepted": a CONNECT with a will whose CONNACK
    cannot fit (Maximum Packet Size 2) is closed without an answer and its will is not published (a marker
    published to the will topic afterwards is the watcher's next message)."""
    w = v5.connect(broker, "fc-cmps-w")
    v5.subscribe(w, "fc/will", 1)
    c = _connect_with_limit(v5, broker, "fc-cmps-will", 2, will_topic="fc/will", will_payload=b"will", will_qos=1)
    assert c.expect_closed(3) == []
    p = v5.connect(broker, "fc-cmps-wp")
    v5.publish(p, "fc/will", b"marker", qos=1)
    assert v5.receive(w).fields["payload"] == b"marker"


def test_connack_too_large_does_not_take_over(broker, v5):
    """[3.1.4] A CONNECT closed because no CONNACK fits its Maximum Packet Size (2) was never accepted: the
    client already connected with that ClientID keeps its connection (no DISCONNECT 0x8E; PINGREQ answered)."""
    first = v5.connect(broker, "fc-cmps-same")
    c = _connect_with_limit(v5, broker, "fc-cmps-same", 2)
    assert c.expect_closed(3) == []
    first.send(m.pingreq())
    p = first.recv()
    assert p.type == m.PINGRESP, f"the connected client was disturbed: {p!r}"


def test_refusing_connack_larger_than_client_maximum_packet_size_not_sent(broker, v5):
    """[MQTT-3.1.2-24] [MQTT-4.12.0-1] A refused CONNECT (an Authentication Method petrel does not support) with
    Maximum Packet Size 2: the refusing CONNACK, which the broker MAY send, is larger than the limit, so it
    must not be sent; the connection is closed without a byte."""
    c = _connect_with_limit(v5, broker, "fc-cmps-ref", 2, properties=[(m.AUTHENTICATION_METHOD, "fc-none")])
    assert c.expect_closed(3) == [], "a packet larger than the client's Maximum Packet Size was sent"
