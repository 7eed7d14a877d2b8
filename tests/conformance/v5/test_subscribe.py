"""MQTT 5.0 sections 3.8-3.11 SUBSCRIBE/SUBACK/UNSUBSCRIBE/UNSUBACK: options, identifiers, reason codes."""
import mqttraw as m

NO_LOCAL = 0x04


# ---------------------------------------------------------------- SUBACK --


def test_suback_grants_requested_qos(broker, v5):
    """[MQTT-3.8.4-6] [MQTT-3.9.3-1] SUBACK has one reason code per filter, in order: the granted QoS 0, 1, 2."""
    c = v5.connect(broker, "sb-qos")
    assert v5.subscribe(c, [("sb/0", 0), ("sb/1", 1), ("sb/2", 2)], packet_id=11) == [0, 1, 2]


def test_invalid_filter_gets_0x8f(broker, v5):
    """[MQTT-4.7.1-1] [MQTT-4.7.1-2] [3.9.3] Invalid filters ('#' not last, '+' inside a level) are refused
    with 0x8F (Topic Filter invalid); the valid filter in the same SUBSCRIBE is granted; the connection stays."""
    c = v5.connect(broker, "sb-bad")
    assert v5.subscribe(c, [("a/#/b", 1), ("sb/ok", 1), ("a+/b", 1)]) == [0x8F, 1, 0x8F]
    c.send(m.pingreq())
    c.expect(m.PINGRESP)


def test_resubscribe_replaces_subscription(broker, v5):
    """[MQTT-3.8.4-3] Subscribing again to the same filter replaces the subscription (new QoS); one copy only."""
    s = v5.connect(broker, "sb-rep")
    assert v5.subscribe(s, "sb/rep", 0, packet_id=1) == [0]
    assert v5.subscribe(s, "sb/rep", 2, packet_id=2) == [2]
    p = v5.connect(broker, "sb-prep")
    v5.publish(p, "sb/rep", b"x", qos=2, packet_id=1)
    assert v5.receive(s).fields["qos"] == 2
    v5.publish(p, "sb/rep", b"sentinel")
    assert v5.receive(s).fields["payload"] == b"sentinel"


# ------------------------------------------------- subscription identifier --


def test_subscription_identifier_delivered(broker, v5):
    """[MQTT-3.3.4-3] A message matching a subscription made with Subscription Identifier 42 carries it."""
    s = v5.connect(broker, "sb-sid")
    v5.subscribe(s, "sb/sid/#", 1, properties=[(m.SUBSCRIPTION_IDENTIFIER, 42)])
    p = v5.connect(broker, "sb-psid")
    v5.publish(p, "sb/sid/a", b"x", qos=1)
    got = v5.receive(s)
    assert got.fields["props"].get(m.SUBSCRIPTION_IDENTIFIER) == [42]


def test_large_subscription_identifier_delivered(broker, v5):
    """[3.8.2.1.2] Subscription Identifiers up to 268,435,455 (4-byte varint) are delivered intact."""
    s = v5.connect(broker, "sb-sidl")
    v5.subscribe(s, "sb/sidl", 0, properties=[(m.SUBSCRIPTION_IDENTIFIER, 268_435_455)])
    p = v5.connect(broker, "sb-psidl")
    v5.publish(p, "sb/sidl", b"x")
    assert v5.receive(s).fields["props"].get(m.SUBSCRIPTION_IDENTIFIER) == [268_435_455]


def test_no_subscription_identifier_when_none_given(broker, v5):
    """[MQTT-3.3.4-3] A subscription made without an identifier delivers messages without one."""
    s = v5.connect(broker, "sb-nosid")
    v5.subscribe(s, "sb/nosid", 1)
    p = v5.connect(broker, "sb-pnosid")
    v5.publish(p, "sb/nosid", b"x", qos=1)
    assert m.SUBSCRIPTION_IDENTIFIER not in v5.receive(s).fields["props"]


def test_overlapping_subscriptions_one_copy_highest_qos_all_identifiers(broker, v5):
    """[MQTT-3.3.4-2] [MQTT-3.3.4-4] [MQTT-3.3.4-5] Two overlapping subscriptions (QoS 0 id 1, QoS 2 id 2) give ONE
    copy at the highest QoS (2, bounded by the published QoS 2) with both Subscription Identifiers."""
    s = v5.connect(broker, "sb-ovl")
    v5.subscribe(s, "sb/ovl/+", 0, packet_id=1, properties=[(m.SUBSCRIPTION_IDENTIFIER, 1)])
    v5.subscribe(s, "sb/#", 2, packet_id=2, properties=[(m.SUBSCRIPTION_IDENTIFIER, 2)])
    p = v5.connect(broker, "sb-povl")
    v5.publish(p, "sb/ovl/x", b"once", qos=2, packet_id=1)
    got = v5.receive(s)
    assert got.fields["qos"] == 2
    assert sorted(got.fields["props"].get(m.SUBSCRIPTION_IDENTIFIER, [])) == [1, 2]
    v5.publish(p, "sb/ovl/x", b"sentinel")
    assert v5.receive(s).fields["payload"] == b"sentinel"


def test_subscription_identifier_zero_is_protocol_error(broker, v5):
    """[3.8.2.1.2] Subscription Identifier 0 is a Protocol Error: DISCONNECT 0x82."""
    c = v5.connect(broker, "sb-sid0")
    c.send(m.subscribe(1, [("sb/x", 0)], version=5, properties=[(m.SUBSCRIPTION_IDENTIFIER, 0)]))
    v5.expect_disconnect(c, 0x82)
    v5.assert_serving(broker)


def test_two_subscription_identifiers_is_protocol_error(broker, v5):
    """[3.8.2.1.2] More than one Subscription Identifier in SUBSCRIBE is a Protocol Error: DISCONNECT 0x82."""
    c = v5.connect(broker, "sb-sid2")
    c.send(m.subscribe(1, [("sb/x", 0)], version=5,
                       properties=[(m.SUBSCRIPTION_IDENTIFIER, 1), (m.SUBSCRIPTION_IDENTIFIER, 2)]))
    v5.expect_disconnect(c, 0x82)
    v5.assert_serving(broker)


# --------------------------------------------------------------- no local --


def test_no_local_own_messages_not_received(broker, v5):
    """[MQTT-3.8.3-3] With No Local set, the client does not receive its own PUBLISHes; others' it does."""
    c = v5.connect(broker, "sb-nl")
    v5.subscribe(c, "sb/nl", 1 | NO_LOCAL)
    v5.publish(c, "sb/nl", b"mine", qos=1)
    other = v5.connect(broker, "sb-nlo")
    v5.publish(other, "sb/nl", b"theirs", qos=1)
    assert v5.receive(c).fields["payload"] == b"theirs"


def test_without_no_local_own_messages_received(broker, v5):
    """[3.8.3.1] Without No Local the client receives its own PUBLISHes."""
    c = v5.connect(broker, "sb-local")
    v5.subscribe(c, "sb/local", 1)
    c.send(m.publish("sb/local", b"mine", qos=1, packet_id=3, version=5))
    got = [c.recv(), c.recv()]
    pubs = [p for p in got if p.type == m.PUBLISH]
    assert [p.fields["payload"] for p in pubs] == [b"mine"]
    assert any(p.type == m.PUBACK for p in got)


def test_no_local_on_shared_subscription_is_protocol_error(broker, v5):
    """[MQTT-3.8.3-4] No Local on a Shared Subscription is a Protocol Error: DISCONNECT 0x82."""
    c = v5.connect(broker, "sb-nlsh")
    c.send(m.subscribe(1, [("$share/g/sb/x", 1 | NO_LOCAL)], version=5))
    v5.expect_disconnect(c, 0x82)
    v5.assert_serving(broker)


# ------------------------------------------------------- malformed options --


def test_retain_handling_3_is_protocol_error(broker, v5):
    """[3.8.3.1] Retain Handling 3 is a Protocol Error: DISCONNECT 0x82."""
    c = v5.connect(broker, "sb-rh3")
    c.send(m.subscribe(1, [("sb/x", 0x30)], version=5))
    v5.expect_disconnect(c, 0x82)
    v5.assert_serving(broker)


def test_reserved_subscription_option_bits_are_malformed(broker, v5):
    """[MQTT-3.8.3-5] Reserved bits 6-7 of the Subscription Options set: Malformed Packet, DISCONNECT 0x81."""
    c = v5.connect(broker, "sb-rsv")
    c.send(m.subscribe(1, [("sb/x", 0x40 | 1)], version=5))
    v5.expect_disconnect(c, 0x81)
    v5.assert_serving(broker)


def test_subscription_qos_3_is_protocol_error(broker, v5):
    """[3.8.3.1] "It is a Protocol Error if the Maximum QoS field has the value 3": DISCONNECT 0x82. (Unlike QoS 3
    in a PUBLISH fixed header, which [MQTT-3.3.1-4] makes a Malformed Packet.)"""
    c = v5.connect(broker, "sb-q3")
    c.send(m.subscribe(1, [("sb/x", 3)], version=5))
    v5.expect_disconnect(c, 0x82)
    v5.assert_serving(broker)


def test_subscribe_without_filters_is_protocol_error(broker, v5):
    """[MQTT-3.8.3-2] A SUBSCRIBE with no Topic Filter is a Protocol Error: DISCONNECT 0x82."""
    c = v5.connect(broker, "sb-empty")
    c.send(m.subscribe(1, [], version=5))
    v5.expect_disconnect(c, 0x82)
    v5.assert_serving(broker)


def test_subscribe_reserved_header_flags_are_malformed(broker, v5):
    """[MQTT-3.8.1-1] SUBSCRIBE fixed header flags must be 0010: otherwise DISCONNECT 0x81."""
    c = v5.connect(broker, "sb-hdr")
    good = m.subscribe(1, [("sb/x", 0)], version=5)
    c.send(bytes([0x80]) + good[1:])
    v5.expect_disconnect(c, 0x81)
    v5.assert_serving(broker)


# ------------------------------------------------------------- UNSUBSCRIBE --


def test_unsuback_success_and_no_more_messages(broker, v5):
    """[MQTT-3.10.4-1] [3.11.3] UNSUBACK 0x00 for an existing subscription; messages stop."""
    s = v5.connect(broker, "sb-uns")
    v5.subscribe(s, [("sb/gone", 1), ("sb/kept", 1)])
    assert v5.unsubscribe(s, "sb/gone") == [0x00]
    p = v5.connect(broker, "sb-puns")
    assert v5.publish(p, "sb/gone", b"x", qos=1) == 0x10
    v5.publish(p, "sb/kept", b"sentinel", qos=1)
    assert v5.receive(s).fields["payload"] == b"sentinel"


def test_unsuback_no_subscription_existed(broker, v5):
    """[3.11.3] UNSUBACK 0x11 (No subscription existed) for a filter that had no subscription."""
    c = v5.connect(broker, "sb-u11")
    v5.subscribe(c, "sb/a", 0)
    assert v5.unsubscribe(c, ["sb/never", "sb/a"], packet_id=7) == [0x11, 0x00]


def test_unsubscribe_without_filters_is_protocol_error(broker, v5):
    """[MQTT-3.10.3-2] An UNSUBSCRIBE with no Topic Filter is a Protocol Error: DISCONNECT 0x82."""
    c = v5.connect(broker, "sb-uempty")
    c.send(m.unsubscribe(1, [], version=5))
    v5.expect_disconnect(c, 0x82)
    v5.assert_serving(broker)


# --------------------------------------------------------------- matching --


def test_single_level_wildcard(broker, v5):
    """[4.7.1.3] '+' matches exactly one level: a/+/c matches a/b/c but not a/b/x/c."""
    s = v5.connect(broker, "sb-plus")
    v5.subscribe(s, "sb/+/c", 0)
    p = v5.connect(broker, "sb-pplus")
    v5.publish(p, "sb/b/x/c", b"no")
    v5.publish(p, "sb/b/c", b"yes")
    assert v5.receive(s).fields["payload"] == b"yes"


def test_multi_level_wildcard_matches_parent(broker, v5):
    """[4.7.1.2] 'a/#' matches 'a' itself and every level below it."""
    s = v5.connect(broker, "sb-hash")
    v5.subscribe(s, "sb/h/#", 0)
    p = v5.connect(broker, "sb-phash")
    v5.publish(p, "sb/h", b"parent")
    v5.publish(p, "sb/h/x/y", b"deep")
    assert [v5.receive(s).fields["payload"] for _ in range(2)] == [b"parent", b"deep"]


def test_overlapping_subscriptions_qos_bounded_by_published_qos(broker, v5):
    """[MQTT-3.3.4-2] [MQTT-3.8.4-8] Overlapping subscriptions at QoS 0 and 2, message published at QoS 1: one
    copy at QoS 1 (the highest granted QoS, but never above the published QoS)."""
    s = v5.connect(broker, "sb-ovq")
    v5.subscribe(s, [("sb/ovq", 0), ("sb/+", 2)])
    p = v5.connect(broker, "sb-povq")
    v5.publish(p, "sb/ovq", b"x", qos=1)
    assert v5.receive(s).fields["qos"] == 1
    v5.publish(p, "sb/ovq", b"sentinel")
    assert v5.receive(s).fields["payload"] == b"sentinel"
