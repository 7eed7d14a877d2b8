"""MQTT 5.0 section 3.3-3.7 PUBLISH and its acknowledgements, 4.3 QoS flows, 4.4 redelivery, 3.3.2.3.3 expiry."""
import time

import mqttraw as m

# ------------------------------------------------------- reason codes --


def test_puback_no_matching_subscribers(broker, v5):
    """[3.4.2.1] QoS 1 PUBLISH nobody subscribed to: PUBACK reason 0x10 (No matching subscribers)."""
    p = v5.connect(broker, "pb-p10")
    assert v5.publish(p, "nobody/here", b"x", qos=1, packet_id=5) == 0x10


def test_puback_success_with_subscriber(broker, v5):
    """[3.4.2.1] QoS 1 PUBLISH with a matching subscriber: PUBACK reason 0x00."""
    s = v5.connect(broker, "pb-s00")
    v5.subscribe(s, "pb/t", 1)
    p = v5.connect(broker, "pb-p00")
    assert v5.publish(p, "pb/t", b"x", qos=1, packet_id=5) == 0x00


def test_pubrec_no_matching_subscribers(broker, v5):
    """[3.5.2.1] QoS 2 PUBLISH nobody subscribed to: PUBREC reason 0x10."""
    p = v5.connect(broker, "pb-r10")
    assert v5.publish(p, "nobody/here", b"x", qos=2, packet_id=6) == 0x10


def test_pubrec_success_with_subscriber(broker, v5):
    """[3.5.2.1] QoS 2 PUBLISH with a matching subscriber: PUBREC reason 0x00."""
    s = v5.connect(broker, "pb-rs")
    v5.subscribe(s, "pb/t", 2)
    p = v5.connect(broker, "pb-r00")
    assert v5.publish(p, "pb/t", b"x", qos=2, packet_id=6) == 0x00


# ------------------------------------------------------------ delivery --


def test_qos0_delivery(broker, v5):
    """[MQTT-3.3.4-1] A QoS 0 message reaches the subscriber with its topic and payload, QoS 0, no packet id."""
    s = v5.connect(broker, "pb-s0")
    v5.subscribe(s, "pb/q0", 2)
    p = v5.connect(broker, "pb-p0")
    v5.publish(p, "pb/q0", b"zero")
    got = v5.receive(s)
    assert (got.fields["topic"], got.fields["payload"], got.fields["qos"]) == ("pb/q0", b"zero", 0)


def test_delivered_qos_is_minimum_of_publish_and_subscription(broker, v5):
    """[MQTT-3.8.4-8] The delivered QoS is the lower of the published QoS and the granted QoS."""
    s = v5.connect(broker, "pb-smin")
    v5.subscribe(s, "pb/min", 0)
    p = v5.connect(broker, "pb-pmin")
    v5.publish(p, "pb/min", b"x", qos=2, packet_id=3)
    got = v5.receive(s)
    assert got.fields["qos"] == 0


def test_qos2_inbound_flow_delivers_once(broker, v5):
    """[4.3.3] Inbound QoS 2: PUBLISH -> PUBREC, PUBREL -> PUBCOMP 0x00; delivered once."""
    s = v5.connect(broker, "pb-s2i")
    v5.subscribe(s, "pb/q2", 2)
    p = v5.connect(broker, "pb-p2i")
    p.send(m.publish("pb/q2", b"once", qos=2, packet_id=9, version=5))
    rec = p.expect(m.PUBREC)
    assert rec.fields["packet_id"] == 9 and rec.fields["reason"] == 0x00
    p.send(m.ack(m.PUBREL, 9))
    comp = p.expect(m.PUBCOMP)
    assert comp.fields["packet_id"] == 9 and comp.fields["reason"] == 0x00
    got = v5.receive(s)
    assert got.fields["payload"] == b"once" and got.fields["qos"] == 2
    # Only one copy: the next message the subscriber sees is the sentinel.
    v5.publish(p, "pb/q2", b"sentinel")
    assert v5.receive(s).fields["payload"] == b"sentinel"


def test_qos2_retransmitted_publish_not_routed_twice(broker, v5):
    """[4.3.3] A QoS 2 PUBLISH re-sent (DUP=1, same id) before PUBREL is not delivered again."""
    s = v5.connect(broker, "pb-sdup")
    v5.subscribe(s, "pb/dup", 2)
    p = v5.connect(broker, "pb-pdup")
    p.send(m.publish("pb/dup", b"m", qos=2, packet_id=4, version=5))
    assert p.expect(m.PUBREC).fields["packet_id"] == 4
    p.send(m.publish("pb/dup", b"m", qos=2, packet_id=4, dup=True, version=5))
    assert p.expect(m.PUBREC).fields["packet_id"] == 4
    p.send(m.ack(m.PUBREL, 4))
    assert p.expect(m.PUBCOMP).fields["reason"] == 0
    assert v5.receive(s).fields["payload"] == b"m"
    v5.publish(p, "pb/dup", b"sentinel")
    assert v5.receive(s).fields["payload"] == b"sentinel"


def test_qos2_outbound_flow(broker, v5):
    """[4.3.3] [MQTT-2.2.1-5] Outbound QoS 2: PUBLISH, the client's PUBREC is answered by PUBREL (same id),
    the client's PUBCOMP completes the flow (the id is free: the next message may use it)."""
    s = v5.connect(broker, "pb-s2o")
    v5.subscribe(s, "pb/out2", 2)
    p = v5.connect(broker, "pb-p2o")
    v5.publish(p, "pb/out2", b"a", qos=2, packet_id=1)
    pub = s.expect(m.PUBLISH)
    pid = pub.fields["packet_id"]
    assert pub.fields["qos"] == 2 and pid
    s.send(m.ack(m.PUBREC, pid))
    rel = s.expect(m.PUBREL)
    assert rel.fields["packet_id"] == pid and rel.fields["reason"] == 0 and rel.flags == 0x02
    s.send(m.ack(m.PUBCOMP, pid))
    v5.publish(p, "pb/out2", b"b", qos=2, packet_id=2)
    assert v5.receive(s).fields["payload"] == b"b"


def test_outbound_packet_ids_unique_while_in_flight(broker, v5):
    """[MQTT-2.2.1-4] Unacknowledged outbound QoS 1 messages carry distinct non-zero packet ids."""
    s = v5.connect(broker, "pb-sids")
    v5.subscribe(s, "pb/ids", 1)
    p = v5.connect(broker, "pb-pids")
    for i in range(5):
        v5.publish(p, "pb/ids", bytes([i]), qos=1, packet_id=i + 1)
    ids = [s.expect(m.PUBLISH).fields["packet_id"] for _ in range(5)]
    assert 0 not in ids and len(set(ids)) == 5


# ---------------------------------------------------------- redelivery --


def _persistent(v5, broker, cid, **kw):
    return v5.connect(broker, cid, clean=False, properties=[(m.SESSION_EXPIRY_INTERVAL, 60)], **kw)


def test_unacknowledged_qos1_redelivered_with_dup(broker, v5):
    """[MQTT-4.4.0-1] [MQTT-3.3.1-1] On reconnect with Clean Start 0, an unacknowledged QoS 1 PUBLISH is re-sent
    with DUP=1 and the same packet id."""
    s = _persistent(v5, broker, "pb-rd1")
    v5.subscribe(s, "pb/rd1", 1)
    p = v5.connect(broker, "pb-prd1")
    v5.publish(p, "pb/rd1", b"again", qos=1, packet_id=1)
    first = s.expect(m.PUBLISH)
    assert first.fields["dup"] is False
    s.close()  # no PUBACK
    s2 = _persistent(v5, broker, "pb-rd1")
    assert s2.connack.fields["session_present"] == 1
    again = s2.expect(m.PUBLISH)
    assert again.fields["dup"] is True
    assert again.fields["packet_id"] == first.fields["packet_id"]
    assert (again.fields["topic"], again.fields["payload"], again.fields["qos"]) == ("pb/rd1", b"again", 1)


def test_unacknowledged_qos2_redelivered_with_dup(broker, v5):
    """[MQTT-4.4.0-1] An outbound QoS 2 PUBLISH without PUBREC is re-sent with DUP=1 on reconnect."""
    s = _persistent(v5, broker, "pb-rd2")
    v5.subscribe(s, "pb/rd2", 2)
    p = v5.connect(broker, "pb-prd2")
    v5.publish(p, "pb/rd2", b"two", qos=2, packet_id=1)
    first = s.expect(m.PUBLISH)
    s.close()
    s2 = _persistent(v5, broker, "pb-rd2")
    again = s2.expect(m.PUBLISH)
    assert again.fields["dup"] is True and again.fields["qos"] == 2
    assert again.fields["packet_id"] == first.fields["packet_id"]


def test_pubrel_resent_on_reconnect(broker, v5):
    """[MQTT-4.4.0-1] If PUBREC was received but not PUBCOMP, the broker re-sends PUBREL (not the PUBLISH)."""
    s = _persistent(v5, broker, "pb-rrel")
    v5.subscribe(s, "pb/rel", 2)
    p = v5.connect(broker, "pb-prel")
    v5.publish(p, "pb/rel", b"x", qos=2, packet_id=1)
    pid = s.expect(m.PUBLISH).fields["packet_id"]
    s.send(m.ack(m.PUBREC, pid))
    assert s.expect(m.PUBREL).fields["packet_id"] == pid
    s.close()
    s2 = _persistent(v5, broker, "pb-rrel")
    rel = s2.expect(m.PUBREL)
    assert rel.fields["packet_id"] == pid
    s2.send(m.ack(m.PUBCOMP, pid))
    # The flow is complete: nothing else for this message (the sentinel comes next).
    v5.publish(p, "pb/rel", b"sentinel")
    assert v5.receive(s2).fields["payload"] == b"sentinel"


def test_acknowledged_message_not_redelivered(broker, v5):
    """[4.4] A QoS 1 message acknowledged with PUBACK is not re-sent on reconnect."""
    s = _persistent(v5, broker, "pb-ack")
    v5.subscribe(s, "pb/ack", 1)
    p = v5.connect(broker, "pb-pack")
    v5.publish(p, "pb/ack", b"done", qos=1, packet_id=1)
    v5.receive(s)  # acknowledged
    s.send(m.disconnect())
    assert s.expect_closed(3) == []
    s2 = _persistent(v5, broker, "pb-ack")
    v5.publish(p, "pb/ack", b"sentinel")
    got = v5.receive(s2)
    assert got.fields["payload"] == b"sentinel"


# ------------------------------------------------------- unknown ids --


def test_pubrel_unknown_id_gets_pubcomp_0x92(broker, v5):
    """[3.7.2.1] PUBREL for a packet id the broker does not know: PUBCOMP 0x92 (Packet Identifier not found)."""
    c = v5.connect(broker, "pb-rel92")
    c.send(m.ack(m.PUBREL, 77))
    comp = c.expect(m.PUBCOMP)
    assert comp.fields["packet_id"] == 77 and comp.fields["reason"] == 0x92


def test_pubrec_unknown_id_gets_pubrel_0x92(broker, v5):
    """[3.6.2.1] PUBREC for a packet id the broker never sent: PUBREL 0x92 (Packet Identifier not found)."""
    c = v5.connect(broker, "pb-rec92")
    c.send(m.ack(m.PUBREC, 78))
    rel = c.expect(m.PUBREL)
    assert rel.fields["packet_id"] == 78 and rel.fields["reason"] == 0x92


def test_pubcomp_unknown_id_ignored(broker, v5):
    """[4.3.3] A PUBCOMP (or PUBACK) for an unknown id needs no answer and does not end the connection."""
    c = v5.connect(broker, "pb-comp")
    c.send(m.ack(m.PUBCOMP, 79))
    c.send(m.ack(m.PUBACK, 80))
    c.send(m.pingreq())
    assert c.expect(m.PINGRESP)


# ------------------------------------------------------ message expiry --


def test_forwarded_message_expiry_not_above_original(broker, v5):
    """[MQTT-3.3.2-6] The Message Expiry Interval forwarded to a subscriber is at most the published one."""
    s = v5.connect(broker, "pb-mei")
    v5.subscribe(s, "pb/mei", 1)
    p = v5.connect(broker, "pb-pmei")
    v5.publish(p, "pb/mei", b"x", qos=1, properties=[(m.MESSAGE_EXPIRY_INTERVAL, 60)])
    got = v5.receive(s)
    assert 0 < got.fields["props"][m.MESSAGE_EXPIRY_INTERVAL] <= 60


def test_forwarded_message_expiry_reduced_by_time_queued(broker, v5):
    """[MQTT-3.3.2-6] A message held for an offline session for more than 1 s is forwarded with its Message
    Expiry Interval reduced (<= original - 1). The wait is a deadline measured from our PUBACK, which the broker
    sent after it stamped the message: no event exists for "time has passed"."""
    s = _persistent(v5, broker, "pb-meq")
    v5.subscribe(s, "pb/meq", 1)
    s.send(m.disconnect())
    assert s.expect_closed(3) == []
    p = v5.connect(broker, "pb-pmeq")
    v5.publish(p, "pb/meq", b"x", qos=1, properties=[(m.MESSAGE_EXPIRY_INTERVAL, 5)])
    time.sleep(1.1)  # measured from the PUBACK, see the docstring
    s2 = _persistent(v5, broker, "pb-meq")
    got = v5.receive(s2)
    assert got.fields["payload"] == b"x"
    assert 0 < got.fields["props"][m.MESSAGE_EXPIRY_INTERVAL] <= 4


def test_expired_message_not_delivered_from_offline_queue(broker, v5):
    """[MQTT-3.3.2-5] A message whose Message Expiry Interval (1 s) passed while the session was offline is not
    delivered; a later message without expiry is.

    How we wait: the broker starts the expiry clock when it receives the PUBLISH, before it sends our PUBACK,
    so 1.1 s after the PUBACK arrived the message has certainly expired. A $SYS counter cannot be polled
    instead: dropping an expired message is only observable when the queue is drained, i.e. on reconnect."""
    s = _persistent(v5, broker, "pb-exp")
    v5.subscribe(s, "pb/exp", 1)
    s.send(m.disconnect())
    assert s.expect_closed(3) == []
    p = v5.connect(broker, "pb-pexp")
    assert v5.publish(p, "pb/exp", b"short-lived", qos=1, packet_id=1,
                      properties=[(m.MESSAGE_EXPIRY_INTERVAL, 1)]) == 0x00
    expired_at = time.monotonic() + 1.1
    v5.publish(p, "pb/exp", b"durable", qos=1, packet_id=2)
    time.sleep(max(0.0, expired_at - time.monotonic()))
    s2 = _persistent(v5, broker, "pb-exp")
    assert s2.connack.fields["session_present"] == 1
    assert v5.receive(s2).fields["payload"] == b"durable"


# ---------------------------------------------------- payload format --


def test_payload_format_utf8_with_invalid_payload_disconnects_0x99(broker, v5):
    """[3.3.2.3.2] Payload Format Indicator 1 with a payload that is not UTF-8: DISCONNECT 0x99."""
    c = v5.connect(broker, "pb-pfi")
    c.send(m.publish("pb/pfi", b"\xff\xfe\xfd", qos=1, version=5, properties=[(m.PAYLOAD_FORMAT_INDICATOR, 1)]))
    v5.expect_disconnect(c, 0x99)
    v5.assert_serving(broker)


def test_payload_format_utf8_with_valid_payload_accepted(broker, v5):
    """[3.3.2.3.2] Payload Format Indicator 1 with a UTF-8 payload is accepted and acknowledged."""
    c = v5.connect(broker, "pb-pfiok")
    assert v5.publish(c, "pb/pfi", "héllo".encode(), qos=1, properties=[(m.PAYLOAD_FORMAT_INDICATOR, 1)]) == 0x10


def test_payload_format_0_allows_any_bytes(broker, v5):
    """[3.3.2.3.2] Payload Format Indicator 0 (unspecified bytes) accepts a non-UTF-8 payload unchanged."""
    s = v5.connect(broker, "pb-sbin")
    v5.subscribe(s, "pb/bin", 1)
    p = v5.connect(broker, "pb-pbin")
    v5.publish(p, "pb/bin", b"\xff\x00\xfe", qos=1, properties=[(m.PAYLOAD_FORMAT_INDICATOR, 0)])
    assert v5.receive(s).fields["payload"] == b"\xff\x00\xfe"


# ------------------------------------------------------------ $ topics --


def test_client_publish_to_sys_not_routed(broker, v5):
    """[MQTT-4.7.2-1] (petrel) A client's PUBLISH to $SYS/... is acknowledged but not delivered to anyone."""
    s = v5.connect(broker, "pb-ssys")
    v5.subscribe(s, "$SYS/test/x", 1)
    p = v5.connect(broker, "pb-psys")
    assert v5.publish(p, "$SYS/test/x", b"fake", qos=1) == 0x10
    v5.subscribe(s, "pb/sys-sentinel", 1, packet_id=2)
    v5.publish(p, "pb/sys-sentinel", b"sentinel")
    assert v5.receive(s).fields["payload"] == b"sentinel"


def test_wildcard_filters_do_not_match_dollar_topics(broker, v5):
    """[MQTT-4.7.2-1] Filters starting with '#' or '+' do not match topics starting with '$'."""
    s = v5.connect(broker, "pb-sdol")
    v5.subscribe(s, [("#", 0), ("+/x", 0)])
    p = v5.connect(broker, "pb-pdol")
    v5.publish(p, "$app/x", b"hidden")
    v5.publish(p, "plain/x", b"visible")
    assert v5.receive(s).fields["payload"] == b"visible"


def test_inbound_qos2_state_survives_reconnect(broker, v5):
    """[MQTT-4.4.0-1] [4.3.3] The broker keeps an inbound QoS 2 packet id (PUBREC sent, PUBREL awaited) in the
    session: re-sent after a reconnect (DUP=1) it is not delivered again, and PUBREL completes it with 0x00."""
    s = v5.connect(broker, "pb-s2r")
    v5.subscribe(s, "pb/q2r", 2)
    p = _persistent(v5, broker, "pb-p2r")
    p.send(m.publish("pb/q2r", b"only-once", qos=2, packet_id=12, version=5))
    assert p.expect(m.PUBREC).fields["packet_id"] == 12
    assert v5.receive(s).fields["payload"] == b"only-once"
    p.close()
    p2 = _persistent(v5, broker, "pb-p2r")
    assert p2.connack.fields["session_present"] == 1
    p2.send(m.publish("pb/q2r", b"only-once", qos=2, packet_id=12, dup=True, version=5))
    assert p2.expect(m.PUBREC).fields["packet_id"] == 12
    p2.send(m.ack(m.PUBREL, 12))
    comp = p2.expect(m.PUBCOMP)
    assert comp.fields["packet_id"] == 12 and comp.fields["reason"] == 0x00
    v5.publish(p2, "pb/q2r", b"sentinel")
    assert v5.receive(s).fields["payload"] == b"sentinel"


def test_qos2_packet_id_reusable_after_pubcomp(broker, v5):
    """[MQTT-2.2.1-3] [4.3.3] Once PUBCOMP is sent the packet id is free: a new QoS 2 PUBLISH with the same id is a
    new message and is delivered."""
    s = v5.connect(broker, "pb-sreuse")
    v5.subscribe(s, "pb/reuse", 2)
    p = v5.connect(broker, "pb-preuse")
    v5.publish(p, "pb/reuse", b"first", qos=2, packet_id=1)
    v5.publish(p, "pb/reuse", b"second", qos=2, packet_id=1)
    assert [v5.receive(s).fields["payload"] for _ in range(2)] == [b"first", b"second"]
