"""MQTT 5.0 section 3.3.1.3 RETAIN and 3.8.3.1 Retain Handling / Retain As Published."""
import time

import mqttraw as m

RAP = 0x08  # Retain As Published


def _rh(n: int) -> int:
    return n << 4


def _retain(v5, broker, topic, payload, cid="rt-pub", **kw):
    p = v5.connect(broker, cid)
    v5.publish(p, topic, payload, qos=1, retain=True, **kw)
    return p


def test_retained_message_sent_on_subscribe_with_retain_flag(broker, v5):
    """[MQTT-3.3.1-9] [3.3.1.3] A new subscription gets the retained message, with RETAIN=1."""
    _retain(v5, broker, "rt/a", b"last")
    s = v5.connect(broker, "rt-s1")
    v5.subscribe(s, "rt/#", 1)
    got = v5.receive(s)
    assert (got.fields["topic"], got.fields["payload"], got.fields["retain"]) == ("rt/a", b"last", True)


def test_retained_message_replaced(broker, v5):
    """[MQTT-3.3.1-5] A new retained message on a topic replaces the previous one."""
    p = _retain(v5, broker, "rt/r", b"old")
    v5.publish(p, "rt/r", b"new", qos=1, packet_id=2, retain=True)
    s = v5.connect(broker, "rt-srep")
    v5.subscribe(s, "rt/r", 1)
    assert v5.receive(s).fields["payload"] == b"new"
    v5.publish(p, "rt/r", b"sentinel", qos=1, packet_id=3)
    assert v5.receive(s).fields["payload"] == b"sentinel"


def test_empty_retained_payload_deletes(broker, v5):
    """[MQTT-3.3.1-6] [MQTT-3.3.1-7] A retained PUBLISH with an empty payload removes the retained message."""
    p = _retain(v5, broker, "rt/del", b"doomed")
    v5.publish(p, "rt/del", b"", qos=1, packet_id=2, retain=True)
    s = v5.connect(broker, "rt-sdel")
    v5.subscribe(s, "rt/del", 1)
    v5.publish(p, "rt/del", b"sentinel", qos=1, packet_id=3)
    got = v5.receive(s)
    assert got.fields["payload"] == b"sentinel" and got.fields["retain"] is False


def test_retained_qos_is_minimum_of_message_and_subscription(broker, v5):
    """[MQTT-3.8.4-8] A retained QoS 2 message sent to a QoS 1 subscription arrives at QoS 1."""
    p = v5.connect(broker, "rt-pq")
    v5.publish(p, "rt/q", b"x", qos=2, retain=True)
    s = v5.connect(broker, "rt-sq")
    v5.subscribe(s, "rt/q", 1)
    assert v5.receive(s).fields["qos"] == 1


def test_retained_delivery_carries_subscription_identifier(broker, v5):
    """[MQTT-3.3.4-3] A retained message sent because of a subscription carries its Subscription Identifier."""
    _retain(v5, broker, "rt/sid", b"x")
    s = v5.connect(broker, "rt-ssid")
    v5.subscribe(s, "rt/sid", 1, properties=[(m.SUBSCRIPTION_IDENTIFIER, 9)])
    assert v5.receive(s).fields["props"].get(m.SUBSCRIPTION_IDENTIFIER) == [9]


# ----------------------------------------------------------- retain handling --


def test_retain_handling_0_sends_on_every_subscribe(broker, v5):
    """[MQTT-3.3.1-9] Retain Handling 0: the retained message is sent on each SUBSCRIBE, also a repeated one."""
    _retain(v5, broker, "rt/h0", b"r")
    s = v5.connect(broker, "rt-h0")
    v5.subscribe(s, "rt/h0", 1 | _rh(0), packet_id=1)
    assert v5.receive(s).fields["retain"] is True
    v5.subscribe(s, "rt/h0", 1 | _rh(0), packet_id=2)
    again = v5.receive(s)
    assert (again.fields["payload"], again.fields["retain"]) == (b"r", True)


def test_retain_handling_1_sends_only_for_new_subscription(broker, v5):
    """[MQTT-3.3.1-10] Retain Handling 1: sent when the subscription is new, not when it already existed."""
    p = _retain(v5, broker, "rt/h1", b"r")
    s = v5.connect(broker, "rt-h1")
    v5.subscribe(s, "rt/h1", 1 | _rh(1), packet_id=1)
    assert v5.receive(s).fields["payload"] == b"r"
    v5.subscribe(s, "rt/h1", 1 | _rh(1), packet_id=2)
    v5.publish(p, "rt/h1", b"sentinel", qos=1, packet_id=2)
    got = v5.receive(s)
    assert (got.fields["payload"], got.fields["retain"]) == (b"sentinel", False)


def test_retain_handling_2_never_sends(broker, v5):
    """[MQTT-3.3.1-11] Retain Handling 2: retained messages are not sent when the subscription is made."""
    p = _retain(v5, broker, "rt/h2", b"r")
    s = v5.connect(broker, "rt-h2")
    v5.subscribe(s, "rt/h2", 1 | _rh(2))
    v5.publish(p, "rt/h2", b"sentinel", qos=1, packet_id=2)
    assert v5.receive(s).fields["payload"] == b"sentinel"


# ------------------------------------------------------- retain as published --


def test_retain_as_published_keeps_retain_flag(broker, v5):
    """[MQTT-3.3.1-13] Retain As Published 1: a live retained PUBLISH is forwarded with RETAIN=1."""
    s = v5.connect(broker, "rt-rap1")
    v5.subscribe(s, "rt/rap", 1 | RAP)
    p = v5.connect(broker, "rt-prap1")
    v5.publish(p, "rt/rap", b"kept", qos=1, retain=True)
    got = v5.receive(s)
    assert (got.fields["payload"], got.fields["retain"]) == (b"kept", True)


def test_without_retain_as_published_retain_flag_cleared(broker, v5):
    """[MQTT-3.3.1-12] Retain As Published 0: a live retained PUBLISH is forwarded with RETAIN=0."""
    s = v5.connect(broker, "rt-rap0")
    v5.subscribe(s, "rt/rap0", 1)
    p = v5.connect(broker, "rt-prap0")
    v5.publish(p, "rt/rap0", b"cleared", qos=1, retain=True)
    got = v5.receive(s)
    assert (got.fields["payload"], got.fields["retain"]) == (b"cleared", False)


def test_retain_as_published_with_non_retained_message(broker, v5):
    """[3.8.3.1] Retain As Published 1 keeps RETAIN=0 of a message that was not retained."""
    s = v5.connect(broker, "rt-rapn")
    v5.subscribe(s, "rt/rapn", 1 | RAP)
    p = v5.connect(broker, "rt-prapn")
    v5.publish(p, "rt/rapn", b"plain", qos=1)
    assert v5.receive(s).fields["retain"] is False


# ----------------------------------------------------------- retained expiry --


def test_retained_message_expiry_forwarded_reduced(broker, v5):
    """[MQTT-3.3.2-6] A retained message's Message Expiry Interval is forwarded at most as published."""
    _retain(v5, broker, "rt/mei", b"x", properties=[(m.MESSAGE_EXPIRY_INTERVAL, 30)])
    s = v5.connect(broker, "rt-smei")
    v5.subscribe(s, "rt/mei", 1)
    assert 0 < v5.receive(s).fields["props"][m.MESSAGE_EXPIRY_INTERVAL] <= 30


def test_expired_retained_message_not_sent(broker, v5):
    """[MQTT-3.3.2-5] A retained message whose Message Expiry Interval (1 s) has passed is not sent to a new
    subscriber. Waited for by a deadline from our PUBACK (sent after the broker stamped the message): expiry
    has no observable event of its own."""
    p = _retain(v5, broker, "rt/exp", b"x", properties=[(m.MESSAGE_EXPIRY_INTERVAL, 1)])
    time.sleep(1.1)
    s = v5.connect(broker, "rt-sexp")
    v5.subscribe(s, "rt/exp", 1)
    v5.publish(p, "rt/exp", b"sentinel", qos=1, packet_id=2)
    got = v5.receive(s)
    assert (got.fields["payload"], got.fields["retain"]) == (b"sentinel", False)


def test_retained_not_sent_to_shared_subscription(broker, v5):
    """[4.8.2] Retained messages are not sent when a Shared Subscription is made."""
    p = _retain(v5, broker, "rt/sh", b"r")
    s = v5.connect(broker, "rt-ssh")
    v5.subscribe(s, "$share/g/rt/sh", 1)
    v5.publish(p, "rt/sh", b"sentinel", qos=1, packet_id=2)
    assert v5.receive(s).fields["payload"] == b"sentinel"
