"""MQTT 5.0 section 4.9 Flow Control (Receive Maximum) and 3.1.2.11.4 / 3.2.2.3.6 Maximum Packet Size."""
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
