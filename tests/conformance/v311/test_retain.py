"""Retained messages (MQTT 3.1.1 section 3.3.1.3)."""
import pytest

import mqttraw as m

from .helpers import connected, expect_publish, publish_acked, sentinel, subscribe, subscriber, tag


def retain(pub: m.RawClient, topic: str, payload: bytes, qos: int = 1, packet_id: int = 1) -> None:
    publish_acked(pub, topic, payload, qos=qos, packet_id=packet_id, retain=True)


def test_retained_message_sent_on_subscribe_with_retain_1(broker):
    """[MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8] A retained message is stored and sent to a new
    subscription, with RETAIN=1."""
    pub = connected(broker, "rt1-p")
    retain(pub, "rt1/t", b"stored")
    sub = subscriber(broker, "rt1-s", [("rt1/t", 1)])
    p = expect_publish(sub, "rt1/t", b"stored")
    assert (p.fields["retain"], p.fields["qos"]) == (True, 1)


def test_retained_message_replaced_by_newer_one(broker):
    """[MQTT-3.3.1-5] A new retained message replaces the previous one for that topic."""
    pub = connected(broker, "rt2-p")
    retain(pub, "rt2/t", b"v1", packet_id=1)
    retain(pub, "rt2/t", b"v2", packet_id=2)
    sub = subscriber(broker, "rt2-s", [("rt2/t", 1)])
    expect_publish(sub, "rt2/t", b"v2")
    sentinel(pub, sub, "rt2/t", b"live")


def test_retained_message_deleted_by_empty_payload(broker):
    """[MQTT-3.3.1-10] A retained PUBLISH with a zero-byte payload removes the retained message."""
    pub = connected(broker, "rt3-p")
    retain(pub, "rt3/t", b"soon gone", packet_id=1)
    retain(pub, "rt3/t", b"", packet_id=2)
    sub = subscriber(broker, "rt3-s", [("rt3/t", 1)])
    sentinel(pub, sub, "rt3/t", b"live")


def test_empty_retained_publish_forwarded_to_current_subscribers(broker):
    """3.3.1.3: a zero-byte retained PUBLISH is processed as normal and sent to matching subscribers (with
    RETAIN=0, as for any live delivery)."""
    sub = subscriber(broker, "rt4-s", [("rt4/t", 1)])
    pub = connected(broker, "rt4-p")
    retain(pub, "rt4/t", b"")
    p = expect_publish(sub, "rt4/t", b"")
    assert p.fields["retain"] is False


def test_empty_retained_payload_not_stored(broker):
    """[MQTT-3.3.1-11] A zero-byte retained message is never stored as a retained message."""
    pub = connected(broker, "rt5-p")
    retain(pub, "rt5/t", b"")
    sub = subscriber(broker, "rt5-s", [("rt5/t", 1)])
    sentinel(pub, sub, "rt5/t", b"live")


def test_live_delivery_has_retain_0(broker):
    """[MQTT-3.3.1-9] A message sent to an established subscription has RETAIN=0, even if it was published
    with RETAIN=1."""
    sub = subscriber(broker, "rt6-s", [("rt6/t", 1)])
    pub = connected(broker, "rt6-p")
    retain(pub, "rt6/t", b"retained but live")
    p = expect_publish(sub, "rt6/t", b"retained but live")
    assert p.fields["retain"] is False


def test_non_retained_publish_keeps_the_retained_message(broker):
    """[MQTT-3.3.1-12] A PUBLISH with RETAIN=0 neither stores nor replaces the retained message."""
    pub = connected(broker, "rt7-p")
    retain(pub, "rt7/t", b"keep", packet_id=1)
    publish_acked(pub, "rt7/t", b"not retained", qos=1, packet_id=2)
    sub = subscriber(broker, "rt7-s", [("rt7/t", 1)])
    expect_publish(sub, "rt7/t", b"keep")
    sentinel(pub, sub, "rt7/t", b"live")


def test_qos0_retained_message_replaces(broker):
    """[MQTT-3.3.1-7] A QoS 0 retained message discards the previous retained message and is stored itself."""
    pub = connected(broker, "rt8-p")
    retain(pub, "rt8/t", b"old q1", qos=1, packet_id=1)
    retain(pub, "rt8/t", b"new q0", qos=0)
    sub = subscriber(broker, "rt8-s", [("rt8/t", 2)])
    p = expect_publish(sub, "rt8/t", b"new q0")
    assert (p.fields["qos"], p.fields["retain"]) == (0, True)
    sentinel(pub, sub, "rt8/t", b"live")


@pytest.mark.parametrize("msg_qos,sub_qos", [(2, 1), (0, 2), (1, 1), (2, 0)])
def test_retained_delivered_at_min_of_message_and_granted_qos(broker, msg_qos, sub_qos):
    """[MQTT-3.8.4-6] A retained message is delivered at the lower of its QoS and the granted QoS."""
    t = tag(msg_qos, sub_qos)
    pub = connected(broker, f"rt9-p-{t}")
    retain(pub, f"rt9/{t}", b"r", qos=msg_qos)
    sub = subscriber(broker, f"rt9-s-{t}", [(f"rt9/{t}", sub_qos)])
    p = expect_publish(sub, f"rt9/{t}", b"r", ack=False)
    assert (p.fields["qos"], p.fields["retain"]) == (min(msg_qos, sub_qos), True)


def test_retained_messages_matched_by_hash(broker):
    """[MQTT-3.3.1-6] Every retained message matching a wildcard filter is sent: "rt10/#" gets all three."""
    pub = connected(broker, "rt10-p")
    for i, t in enumerate(["rt10", "rt10/a", "rt10/b/c"]):
        retain(pub, t, t.encode(), packet_id=i + 1)
    sub = subscriber(broker, "rt10-s", [("rt10/#", 1)])
    got = sorted(expect_publish(sub).fields["topic"] for _ in range(3))
    assert got == ["rt10", "rt10/a", "rt10/b/c"]
    sentinel(pub, sub, "rt10/live", b"live")


def test_retained_messages_matched_by_plus(broker):
    """[MQTT-3.3.1-6] "rt11/+" gets the retained "rt11/a" but not "rt11/b/c" nor "rt11"."""
    pub = connected(broker, "rt11-p")
    for i, t in enumerate(["rt11", "rt11/a", "rt11/b/c"]):
        retain(pub, t, t.encode(), packet_id=i + 1)
    sub = subscriber(broker, "rt11-s", [("rt11/+", 1)])
    p = expect_publish(sub, "rt11/a")
    assert p.fields["retain"] is True
    sentinel(pub, sub, "rt11/live", b"live")


def test_retained_dollar_topic_not_sent_to_hash(make_broker):
    """[MQTT-4.7.2-1] A retained message on a '$' topic is not sent to a "#" subscription (fresh broker with
    $SYS disabled, so the retained store holds only this test's messages)."""
    broker = make_broker("[sys]\ninterval = 0\n")
    pub = connected(broker, "rt12-p")
    retain(pub, "$rt12/x", b"hidden", packet_id=1)
    retain(pub, "rt12/marker", b"visible", packet_id=2)
    sub = subscriber(broker, "rt12-s", [("#", 1)])
    p = expect_publish(sub)
    assert (p.fields["topic"], p.fields["retain"]) == ("rt12/marker", True), p
    sentinel(pub, sub, "rt12/live", b"live")


def test_retained_sent_again_for_a_second_matching_subscription(broker):
    """[MQTT-3.3.1-6] A second, different filter matching the same retained message is a new subscription:
    the retained message is sent again for it."""
    pub = connected(broker, "rt13-p")
    retain(pub, "rt13/t", b"r")
    sub = connected(broker, "rt13-s")
    assert subscribe(sub, [("rt13/t", 1)]) == [1]
    expect_publish(sub, "rt13/t", b"r")
    assert subscribe(sub, [("rt13/+", 1)], packet_id=2) == [1]
    p = expect_publish(sub, "rt13/t", b"r")
    assert p.fields["retain"] is True


def test_retained_dollar_topic_not_sent_to_plus_first_level(broker):
    """[MQTT-4.7.2-1] A retained message on "$rt14/x" is not sent to a "+/rt14x" subscription, whereas one on
    "rt14/rt14x" is."""
    pub = connected(broker, "rt14-p")
    retain(pub, "$rt14/rt14x", b"hidden", packet_id=1)
    retain(pub, "rt14/rt14x", b"visible", packet_id=2)
    sub = subscriber(broker, "rt14-s", [("+/rt14x", 1)])
    p = expect_publish(sub, "rt14/rt14x", b"visible")
    assert p.fields["retain"] is True
    sentinel(pub, sub, "live/rt14x", b"live")
