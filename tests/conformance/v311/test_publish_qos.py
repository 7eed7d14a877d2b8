"""PUBLISH and the QoS 0/1/2 flows (MQTT 3.1.1 sections 3.3-3.7, 3.12, 4.3), PINGREQ.

Exact bytes are checked where 3.1.1 fixes them: acknowledgements are 4 bytes
(type, 02, packet id) with no reason code, PUBREL has flags 0010.
"""
import pytest

import mqttraw as m

from .helpers import (assert_serving, connected, expect_closed_silently, expect_publish, publish_acked, sentinel,
                      subscriber, tag)


def test_qos0_delivery_exact_bytes(broker):
    """3.3.1/3.3.2: a QoS 0 PUBLISH is forwarded as flags 0000, topic, no packet id, payload."""
    sub = subscriber(broker, "pq-0s", [("pq/0", 0)])
    pub = connected(broker, "pq-0p")
    pub.send(m.publish("pq/0", b"zero", qos=0))
    p = sub.expect(m.PUBLISH)
    assert (p.flags, p.body) == (0, m.mstr("pq/0") + b"zero")


def test_qos1_puback_carries_packet_id(broker):
    """[MQTT-3.3.4-1] [MQTT-4.3.2-2] A QoS 1 PUBLISH is answered with PUBACK 40 02 <same packet id>."""
    pub = connected(broker, "pq-1p")
    pub.send(m.publish("pq/1", b"one", qos=1, packet_id=0x1234))
    p = pub.recv()
    assert (p.type, p.flags, p.body) == (m.PUBACK, 0, b"\x12\x34")


def test_qos1_delivered_to_subscriber_with_packet_id(broker):
    """[MQTT-2.3.1-1] [MQTT-4.3.2-1] A QoS 1 delivery carries a non-zero packet id; after the PUBACK it is not
    re-sent."""
    sub = subscriber(broker, "pq-1s", [("pq/1s", 1)])
    pub = connected(broker, "pq-1sp")
    publish_acked(pub, "pq/1s", b"one", qos=1, packet_id=7)
    p = expect_publish(sub, "pq/1s", b"one", ack=True)
    assert p.fields["qos"] == 1 and p.fields["packet_id"] != 0 and p.fields["dup"] is False
    sentinel(pub, sub, "pq/1s", packet_id=8)


def test_qos2_publisher_flow(broker):
    """[MQTT-4.3.3-2] QoS 2 inbound: PUBLISH -> PUBREC 50 02 id; PUBREL 62 02 id -> PUBCOMP 70 02 id."""
    sub = subscriber(broker, "pq-2ps", [("pq/2", 2)])
    pub = connected(broker, "pq-2p")
    pub.send(m.publish("pq/2", b"two", qos=2, packet_id=0xBEEF))
    rec = pub.recv()
    assert (rec.type, rec.flags, rec.body) == (m.PUBREC, 0, b"\xbe\xef")
    pub.send(m.ack(m.PUBREL, 0xBEEF))
    comp = pub.recv()
    assert (comp.type, comp.flags, comp.body) == (m.PUBCOMP, 0, b"\xbe\xef")
    p = expect_publish(sub, "pq/2", b"two", ack=False)
    assert p.fields["qos"] == 2


def test_qos2_subscriber_flow(broker):
    """[MQTT-4.3.3-1] QoS 2 outbound: PUBLISH id; PUBREC id -> PUBREL (flags 0010) id; PUBCOMP ends the flow
    (no retransmission afterwards)."""
    sub = subscriber(broker, "pq-2s", [("pq/2s", 2)])
    pub = connected(broker, "pq-2sp")
    publish_acked(pub, "pq/2s", b"two", qos=2, packet_id=3)
    p = expect_publish(sub, "pq/2s", b"two", ack=False)
    pid = p.fields["packet_id"]
    assert p.fields["qos"] == 2 and pid != 0
    sub.send(m.ack(m.PUBREC, pid))
    rel = sub.recv()
    assert (rel.type, rel.flags, rel.body) == (m.PUBREL, 0x02, pid.to_bytes(2, "big"))
    sub.send(m.ack(m.PUBCOMP, pid))
    publish_acked(pub, "pq/2s", b"sentinel", qos=2, packet_id=4)
    p2 = sub.recv()
    assert p2.type == m.PUBLISH and p2.fields["payload"] == b"sentinel", p2


@pytest.mark.parametrize("pub_qos,sub_qos", [(2, 0), (2, 1), (1, 0), (1, 2), (0, 2)])
def test_delivered_at_min_of_published_and_granted_qos(broker, pub_qos, sub_qos):
    """[MQTT-3.8.4-6] [MQTT-3.3.5-1] A message is delivered at the lower of its QoS and the granted QoS."""
    t = tag(pub_qos, sub_qos)
    sub = subscriber(broker, f"pq-min-{t}", [(f"pq/min/{t}", sub_qos)])
    pub = connected(broker, f"pq-minp-{t}")
    publish_acked(pub, f"pq/min/{t}", b"qos", qos=pub_qos, packet_id=1)
    p = expect_publish(sub, f"pq/min/{t}", b"qos", ack=False)
    assert p.fields["qos"] == min(pub_qos, sub_qos)


def test_qos2_duplicate_publish_before_pubrel_not_routed_twice(broker):
    """[MQTT-4.3.3-2] A QoS 2 PUBLISH re-sent (DUP=1, same id) before PUBREL is acknowledged with PUBREC again
    but not delivered a second time."""
    sub = subscriber(broker, "pq-dup2", [("pq/dup2", 2)])
    pub = connected(broker, "pq-dup2p")
    pub.send(m.publish("pq/dup2", b"once", qos=2, packet_id=11))
    assert pub.expect(m.PUBREC).fields["packet_id"] == 11
    pub.send(m.publish("pq/dup2", b"once", qos=2, packet_id=11, dup=True))
    assert pub.expect(m.PUBREC).fields["packet_id"] == 11
    pub.send(m.ack(m.PUBREL, 11))
    assert pub.expect(m.PUBCOMP).fields["packet_id"] == 11
    p = expect_publish(sub, "pq/dup2", b"once", ack=False)
    sub.send(m.ack(m.PUBREC, p.fields["packet_id"]))
    sub.expect(m.PUBREL)
    sub.send(m.ack(m.PUBCOMP, p.fields["packet_id"]))
    sentinel(pub, sub, "pq/dup2", packet_id=12)


def test_qos2_packet_id_reusable_after_pubcomp(broker):
    """2.3.1: after PUBCOMP the packet id is free: a new QoS 2 PUBLISH with it is a new message."""
    sub = subscriber(broker, "pq-reuse", [("pq/reuse", 1)])
    pub = connected(broker, "pq-reusep")
    publish_acked(pub, "pq/reuse", b"first", qos=2, packet_id=21)
    publish_acked(pub, "pq/reuse", b"second", qos=2, packet_id=21)
    assert expect_publish(sub, "pq/reuse").fields["payload"] == b"first"
    assert expect_publish(sub, "pq/reuse").fields["payload"] == b"second"


def test_pubrel_for_unknown_packet_id_gets_pubcomp(broker):
    """[MQTT-4.3.3-2] The receiver answers every PUBREL with a PUBCOMP carrying the same id, even an id it does
    not know (e.g. after a crash or a retransmission)."""
    c = connected(broker, "pq-rel")
    c.send(m.ack(m.PUBREL, 0x4242))
    p = c.recv()
    assert (p.type, p.flags, p.body) == (m.PUBCOMP, 0, b"\x42\x42")


@pytest.mark.parametrize("qos", [1, 2])
def test_publish_packet_id_zero_closed(broker, qos):
    """[MQTT-2.3.1-1] A QoS 1/2 PUBLISH must carry a non-zero packet identifier; 0 closes the connection."""
    c = connected(broker, f"pq-id0-{qos}")
    c.send(m.publish("pq/id0", b"x", qos=qos, packet_id=0))
    expect_closed_silently(c)
    assert_serving(broker)


def test_publish_qos3_closed(broker):
    """[MQTT-3.3.1-4] A PUBLISH with both QoS bits set (QoS 3) closes the connection."""
    c = connected(broker, "pq-q3")
    c.send(m.publish("pq/q3", b"x", qos=3, packet_id=1))
    expect_closed_silently(c)
    assert_serving(broker)


@pytest.mark.parametrize("topic", ["pq/+", "pq/#", "#", "pq/a+"])
def test_publish_wildcard_in_topic_closed(make_broker, topic):
    """[MQTT-3.3.2-2] [MQTT-4.7.1-1] The topic name of a PUBLISH must not contain wildcard characters: the
    connection is closed and nothing is routed (a fresh broker, so that a "#" subscriber sees everything)."""
    broker = make_broker()
    sub = subscriber(broker, "pq-wild-sub", [("#", 0)])
    c = connected(broker, "pq-wild")
    c.send(m.publish(topic, b"x", qos=0))
    expect_closed_silently(c)
    pub = connected(broker, "pq-wild-pub")
    sentinel(pub, sub, "pq/after")  # and nothing was routed for the bad PUBLISH
    assert_serving(broker)


def test_publish_dup_with_qos0_closed(broker):
    """[MQTT-3.3.1-2] DUP must be 0 for QoS 0 messages; DUP=1 with QoS 0 closes the connection."""
    c = connected(broker, "pq-dup0")
    c.send(m.publish("pq/dup0", b"x", qos=0, dup=True))
    expect_closed_silently(c)
    assert_serving(broker)


def test_publish_empty_topic_closed(broker):
    """[MQTT-4.7.3-1] A topic name must be at least one character long; an empty one closes the connection."""
    c = connected(broker, "pq-empty")
    c.send(m.publish("", b"x", qos=0))
    expect_closed_silently(c)
    assert_serving(broker)


def test_pubrel_wrong_fixed_header_flags_closed(broker):
    """[MQTT-3.6.1-1] PUBREL fixed-header flags must be 0010; 0000 closes the connection."""
    c = connected(broker, "pq-relflags")
    c.send(m.packet(m.PUBREL, 0x00, m.u16(1)))
    expect_closed_silently(c)
    assert_serving(broker)


@pytest.mark.parametrize("ptype", [m.PUBACK, m.PUBREC, m.PUBCOMP])
def test_ack_wrong_fixed_header_flags_closed(broker, ptype):
    """[MQTT-2.2.2-2] PUBACK/PUBREC/PUBCOMP fixed-header flags are reserved 0000; 0010 closes the connection."""
    c = connected(broker, f"pq-ackflags-{ptype}")
    c.send(m.packet(ptype, 0x02, m.u16(1)))
    expect_closed_silently(c)
    assert_serving(broker)


def test_pingreq_gets_pingresp(broker):
    """[MQTT-3.12.4-1] PINGREQ is answered with PINGRESP D0 00."""
    c = connected(broker, "pq-ping")
    c.send(m.pingreq())
    p = c.recv()
    assert (p.type, p.flags, p.body) == (m.PINGRESP, 0, b"")


def test_outgoing_dup_flag_independent_of_incoming(broker):
    """[MQTT-3.3.1-3] The DUP flag of an outgoing PUBLISH is set independently of the incoming one: a first
    delivery has DUP=0 even if the publisher sent DUP=1."""
    sub = subscriber(broker, "pq-dupin", [("pq/dupin", 1)])
    pub = connected(broker, "pq-dupinp")
    pub.send(m.publish("pq/dupin", b"x", qos=1, packet_id=2, dup=True))
    assert pub.expect(m.PUBACK).fields["packet_id"] == 2
    p = expect_publish(sub, "pq/dupin", b"x")
    assert p.fields["dup"] is False


def test_outgoing_packet_ids_unique_while_in_flight(broker):
    """[MQTT-2.3.1-4] Unacknowledged outgoing QoS 1 PUBLISHes to one client use distinct packet ids."""
    sub = subscriber(broker, "pq-ids", [("pq/ids", 1)])
    pub = connected(broker, "pq-idsp")
    for i in range(5):
        publish_acked(pub, "pq/ids", b"%d" % i, qos=1, packet_id=i + 1)
    ids = [expect_publish(sub, "pq/ids", ack=False).fields["packet_id"] for _ in range(5)]
    assert 0 not in ids and len(set(ids)) == 5, ids


def test_messages_from_one_client_delivered_in_order(broker):
    """[MQTT-4.6.0-5] [MQTT-4.6.0-6] Messages from one publisher on one topic reach a subscriber in the order sent
    (QoS 1 publisher, QoS 1 subscriber, 30 messages)."""
    sub = subscriber(broker, "pq-order", [("pq/order", 1)])
    pub = connected(broker, "pq-orderp")
    for i in range(30):
        pub.send(m.publish("pq/order", b"%d" % i, qos=1, packet_id=i + 1))
    acks = [pub.expect(m.PUBACK).fields["packet_id"] for _ in range(30)]
    assert acks == list(range(1, 31))
    got = [expect_publish(sub, "pq/order").fields["payload"] for _ in range(30)]
    assert got == [b"%d" % i for i in range(30)]


def test_large_payload_delivered_intact(broker):
    """A 300 kB binary payload (every byte value) is delivered unchanged; remaining length uses 3 bytes."""
    payload = bytes(range(256)) * 1200
    sub = subscriber(broker, "pq-big", [("pq/big", 1)])
    pub = connected(broker, "pq-bigp")
    publish_acked(pub, "pq/big", payload, qos=1, packet_id=1)
    assert expect_publish(sub, "pq/big").fields["payload"] == payload


def test_zero_length_payload_delivered(broker):
    """[MQTT-3.3.3] A zero-length payload is valid and delivered as such."""
    sub = subscriber(broker, "pq-nil", [("pq/nil", 1)])
    pub = connected(broker, "pq-nilp")
    publish_acked(pub, "pq/nil", b"", qos=1, packet_id=1)
    assert expect_publish(sub, "pq/nil").fields["payload"] == b""


def test_publisher_receives_own_message(broker):
    """MQTT 3.1.1 has no No Local option: a client subscribed to the topic it publishes receives its message."""
    c = subscriber(broker, "pq-self", [("pq/self", 0)])
    c.send(m.publish("pq/self", b"echo", qos=0))
    expect_publish(c, "pq/self", b"echo")


def test_puback_without_subscribers_is_plain(broker):
    """3.1.1 PUBACK has no reason code: without any subscriber it is still exactly 40 02 <id>."""
    c = connected(broker, "pq-nosub")
    c.send(m.publish("pq/nobody", b"x", qos=1, packet_id=9))
    p = c.recv()
    assert (p.type, p.body) == (m.PUBACK, b"\x00\x09")
    c.send(m.publish("pq/nobody", b"x", qos=2, packet_id=10))
    p = c.recv()
    assert (p.type, p.body) == (m.PUBREC, b"\x00\x0a")


def test_many_large_messages_all_delivered(broker):
    """Flow control must not lose messages: five 900 kB QoS 0 messages (more than petrel's 1 MiB write budget
    together) all reach a subscriber, in order."""
    sub = subscriber(broker, "pq-bulk", [("pq/bulk", 0)])
    pub = connected(broker, "pq-bulkp")
    for i in range(5):
        pub.send(m.publish("pq/bulk", bytes([i]) * 900_000, qos=0))
    for i in range(5):
        p = expect_publish(sub, "pq/bulk", timeout=5)
        assert p.fields["payload"] == bytes([i]) * 900_000


# ------------------------------------------------------------ between protocol versions --

def test_message_from_v5_publisher_reaches_v311_subscriber_without_properties(broker):
    """2.2 / 3.3.2: a 3.1.1 PUBLISH has no property block: a message published by an MQTT 5 client with
    properties reaches a 3.1.1 subscriber as topic, packet id and payload only."""
    sub = subscriber(broker, "pq-x5-s", [("pq/x5", 1)])
    pub = connected(broker, "pq-x5-p", version=5)
    pub.send(m.publish("pq/x5", b"from v5", qos=1, packet_id=3, version=5,
                       properties=[(m.MESSAGE_EXPIRY_INTERVAL, 60), (m.CONTENT_TYPE, "text/plain"),
                                   (m.USER_PROPERTY, ("k", "v"))]))
    assert pub.expect(m.PUBACK).fields["packet_id"] == 3
    p = sub.expect(m.PUBLISH)
    pid = p.fields["packet_id"]
    assert p.body == m.mstr("pq/x5") + m.u16(pid) + b"from v5", p


def test_topic_alias_of_v5_publisher_resolved_for_v311_subscriber(broker):
    """MQTT 5 topic aliases are per connection: a 3.1.1 subscriber gets the full topic name also for a message
    the v5 publisher sent with an empty topic and an alias."""
    sub = subscriber(broker, "pq-alias-s", [("pq/alias", 0)])
    pub = connected(broker, "pq-alias-p", version=5)
    pub.send(m.publish("pq/alias", b"first", qos=0, version=5, properties=[(m.TOPIC_ALIAS, 1)]))
    pub.send(m.publish("", b"second", qos=0, version=5, properties=[(m.TOPIC_ALIAS, 1)]))
    for payload in (b"first", b"second"):
        p = sub.expect(m.PUBLISH)
        assert p.body == m.mstr("pq/alias") + payload, p
