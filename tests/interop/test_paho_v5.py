"""Interoperability: paho-mqtt 1.6.1 speaking MQTT 5.0 to petrel.

Every wait is on a paho callback (queue with a timeout) or on the broker's log; absence of a message is
checked by sending a marker afterwards that would arrive behind it.
"""
from __future__ import annotations

import time

import mqttclients as mc
from mqttclients import PacketTypes, SubscribeOptions, props

MQTTv5 = mc.mqtt.MQTTv5


def connected(paho, broker, client_id, **kw) -> mc.Paho:
    c = paho(broker.port, client_id, MQTTv5)
    _flags, rc, _ = c.connect(**kw)
    assert rc == 0
    return c


def session_props(expiry: int):
    return props(PacketTypes.CONNECT, SessionExpiryInterval=expiry)


def test_connack_properties(broker, paho):
    """CONNACK reason code 0 and petrel's documented CONNACK properties: Receive Maximum 1024, Topic Alias
    Maximum 64, Maximum Packet Size 1048576 [MQTT-3.2.2; 3.2.2.3]."""
    c = paho(broker.port, "p5connack", MQTTv5)
    flags, rc, p = c.connect()
    assert (rc, flags["session present"]) == (0, 0)
    assert (p.ReceiveMaximum, p.TopicAliasMaximum, p.MaximumPacketSize) == (1024, 64, 1048576)


def test_assigned_client_identifier(broker, paho):
    """An empty Client Identifier is accepted and the CONNACK carries an Assigned Client Identifier
    [MQTT-3.1.3-6, MQTT-3.2.2-16]."""
    c = paho(broker.port, "", MQTTv5)
    _flags, rc, p = c.connect()
    assert rc == 0
    assert isinstance(p.AssignedClientIdentifier, str) and p.AssignedClientIdentifier


def test_publish_properties_roundtrip(broker, paho):
    """Content Type, Response Topic, Correlation Data, User Properties (order and repeated keys kept), Payload
    Format Indicator are forwarded unaltered, Message Expiry Interval reduced by the time held
    [MQTT-3.3.2-4, MQTT-3.3.2-6, MQTT-3.3.2-15, MQTT-3.3.2-16, MQTT-3.3.2-17, MQTT-3.3.2-18, MQTT-3.3.2-20]."""
    sub = connected(paho, broker, "p5props")
    assert sub.subscribe("pr/t", 1) == [1]
    pub = connected(paho, broker, "p5propsp")
    pub.publish("pr/t", "réponse".encode(), qos=1, properties=props(
        ContentType="text/plain; charset=utf-8", ResponseTopic="pr/reply", CorrelationData=b"\x00\x01corr\xff",
        UserProperty=[("k", "v1"), ("a", "b"), ("k", "v2")], MessageExpiryInterval=300, PayloadFormatIndicator=1))
    msg = sub.message()
    p = msg.properties
    assert msg.payload == "réponse".encode()
    assert p.ContentType == "text/plain; charset=utf-8"
    assert p.ResponseTopic == "pr/reply"
    assert p.CorrelationData == b"\x00\x01corr\xff"
    assert p.UserProperty == [("k", "v1"), ("a", "b"), ("k", "v2")]
    assert p.PayloadFormatIndicator == 1
    assert 299 <= p.MessageExpiryInterval <= 300


def test_request_response(broker, paho):
    """Request/response: a responder answers on the Response Topic with the request's Correlation Data, which
    the requester gets back unaltered [5.0 section 4.10, MQTT-3.3.2-15, MQTT-3.3.2-16]."""
    responder = connected(paho, broker, "p5resp")
    assert responder.subscribe("svc/req", 1) == [1]
    requester = connected(paho, broker, "p5reqr")
    assert requester.subscribe("svc/reply/p5reqr", 1) == [1]
    requester.publish("svc/req", b"2+2", qos=1,
                      properties=props(ResponseTopic="svc/reply/p5reqr", CorrelationData=b"req-17"))
    req = responder.message()
    responder.publish(req.properties.ResponseTopic, b"4", qos=1,
                      properties=props(CorrelationData=req.properties.CorrelationData))
    reply = requester.message()
    assert (reply.topic, reply.payload, reply.properties.CorrelationData) == ("svc/reply/p5reqr", b"4", b"req-17")


def test_subscription_identifier_in_message(broker, paho):
    """The Subscription Identifier of the matching subscription is sent in the PUBLISH [MQTT-3.3.4-3]."""
    sub = connected(paho, broker, "p5sid")
    assert sub.subscribe("sid/+", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=777)) == [1]
    pub = connected(paho, broker, "p5sidp")
    pub.publish("sid/a", b"x", qos=1)
    msg = sub.message()
    assert msg.properties.SubscriptionIdentifier == [777]


def test_overlapping_subscriptions_one_copy_with_all_identifiers(broker, paho):
    """Overlapping subscriptions of one client: petrel sends ONE copy at the highest granted QoS carrying every
    matching Subscription Identifier [MQTT-3.3.4-2, MQTT-3.3.4-3, MQTT-3.3.4-4]."""
    sub = connected(paho, broker, "p5ovl")
    assert sub.subscribe("ovl/#", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=1)) == [1]
    assert sub.subscribe("ovl/+", 2, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=2)) == [2]
    pub = connected(paho, broker, "p5ovlp")
    pub.publish("ovl/a", b"once", qos=2)
    pub.publish("ovl/b", b"marker", qos=2)
    first, second = sub.message(), sub.message()
    assert (first.topic, first.payload, first.qos) == ("ovl/a", b"once", 2)
    assert sorted(first.properties.SubscriptionIdentifier) == [1, 2]
    assert (second.topic, second.payload) == ("ovl/b", b"marker")


def test_no_local(broker, paho):
    """With No Local 1 the client's own publishes are not sent back to it, while other subscribers get them
    [MQTT-3.8.3-3]."""
    c = connected(paho, broker, "p5nolocal")
    assert c.subscribe("nl/t", options=SubscribeOptions(qos=1, noLocal=True)) == [1]
    assert c.subscribe("nl/marker", 1) == [1]
    other = connected(paho, broker, "p5nlother")
    assert other.subscribe("nl/t", 1) == [1]
    c.publish("nl/t", b"mine", qos=1)
    assert other.message().payload == b"mine"  # it was routed
    c.publish("nl/marker", b"marker", qos=1)
    msg = c.message()
    assert (msg.topic, msg.payload) == ("nl/marker", b"marker")


def test_local_delivery_without_no_local(broker, paho):
    """Without No Local a client receives its own publishes (the default) [5.0 section 3.8.3.1]."""
    c = connected(paho, broker, "p5local")
    assert c.subscribe("loc/t", options=SubscribeOptions(qos=1, noLocal=False)) == [1]
    c.publish("loc/t", b"echo", qos=1)
    assert c.message().payload == b"echo"


def _retained_then_resubscribe(broker, paho, client_id, handling):
    """Stores a retained message, subscribes twice with the retain handling; returns what each SUBSCRIBE
    yielded before a live marker: a list of two lists of (payload, retain)."""
    pub = connected(paho, broker, client_id + "p")
    pub.publish("rh/t", b"retained", qos=1, retain=True)
    sub = connected(paho, broker, client_id)
    results = []
    for i in range(2):
        opts = SubscribeOptions(qos=1, retainHandling=handling)
        assert sub.subscribe("rh/t", options=opts) == [1]
        pub.publish("rh/t", f"marker{i}".encode(), qos=1)
        got = []
        while (m := sub.message()).payload != f"marker{i}".encode():
            got.append((m.payload, bool(m.retain)))
        results.append(got)
    return results


def test_retain_handling_0_sends_at_every_subscribe(broker, paho):
    """Retain Handling 0: retained messages are sent at every SUBSCRIBE, with RETAIN=1 [MQTT-3.3.1-9]."""
    assert _retained_then_resubscribe(broker, paho, "p5rh0", 0) == [[(b"retained", True)], [(b"retained", True)]]


def test_retain_handling_1_sends_only_for_new_subscription(broker, paho):
    """Retain Handling 1: retained messages are sent only if the subscription did not exist [MQTT-3.3.1-10]."""
    assert _retained_then_resubscribe(broker, paho, "p5rh1", 1) == [[(b"retained", True)], []]


def test_retain_handling_2_never_sends(broker, paho):
    """Retain Handling 2: retained messages are not sent at subscribe time [MQTT-3.3.1-11]."""
    assert _retained_then_resubscribe(broker, paho, "p5rh2", 2) == [[], []]


def test_retain_as_published(broker, paho):
    """Retain As Published 1 keeps RETAIN=1 on forwarded retained messages, 0 clears it [MQTT-3.3.1-12,
    MQTT-3.3.1-13]."""
    rap = connected(paho, broker, "p5rap1")
    assert rap.subscribe("rap/t", options=SubscribeOptions(qos=1, retainAsPublished=True)) == [1]
    plain = connected(paho, broker, "p5rap0")
    assert plain.subscribe("rap/t", options=SubscribeOptions(qos=1, retainAsPublished=False)) == [1]
    pub = connected(paho, broker, "p5rapp")
    pub.publish("rap/t", b"r", qos=1, retain=True)
    assert bool(rap.message().retain) is True
    assert bool(plain.message().retain) is False


def test_shared_subscription_distributes(broker, paho):
    """$share/group/filter: each message goes to exactly one of the two paho members, round-robin, so both get
    some and together all [5.0 section 4.8.2, MQTT-4.8.2-4]."""
    a = connected(paho, broker, "p5sha")
    b = connected(paho, broker, "p5shb")
    for c in (a, b):
        assert c.subscribe([("$share/grp/sh/t", 1), ("sh/end", 1)]) == [1, 1]
    pub = connected(paho, broker, "p5shp")
    sent = [f"m{i}".encode() for i in range(10)]
    for p in sent:
        pub.publish("sh/t", p, qos=1)
    pub.publish("sh/end", b"end", qos=1)
    got = {}
    for c in (a, b):
        got[c] = []
        while (m := c.message()).topic != "sh/end":
            got[c].append(m.payload)
    assert sorted(got[a] + got[b]) == sorted(sent)
    assert got[a] and got[b]


def test_shared_subscription_gets_no_retained(broker, paho):
    """Retained messages are not sent to a shared subscription when it is made (petrel's documented choice,
    5.0 section 4.8.2: retained messages are not sent for shared subscriptions)."""
    pub = connected(paho, broker, "p5shrp")
    pub.publish("shr/t", b"retained", qos=1, retain=True)
    sub = connected(paho, broker, "p5shr")
    assert sub.subscribe("$share/g/shr/t", 1) == [1]
    pub.publish("shr/t", b"live", qos=1)
    msg = sub.message()
    assert msg.payload == b"live"


def test_no_local_on_shared_subscription_is_protocol_error(broker, paho):
    """No Local 1 on a shared subscription is a Protocol Error: DISCONNECT 0x82 [MQTT-3.8.3-4]. (paho 1.6.1
    reports the reason code only because petrel adds a Reason String property to this DISCONNECT.)"""
    c = connected(paho, broker, "p5shnl")
    c.client.subscribe("$share/g/x", options=SubscribeOptions(qos=1, noLocal=True))
    rc, _ = c.disconnects.get(timeout=mc.TIMEOUT)
    assert rc == 0x82


def test_session_expiry_resume_with_queued_messages(broker, paho):
    """Session Expiry Interval > 0: the session outlives the connection; reconnecting with Clean Start 0 gives
    Session Present 1, the subscription, and the QoS 1/2 messages queued meanwhile [MQTT-3.1.2-23,
    MQTT-3.2.2-3]."""
    first = connected(paho, broker, "p5sess", clean_start=True, properties=session_props(60))
    assert first.subscribe([("se/t", 2)]) == [2]
    first.disconnect()
    broker.wait_log("client disconnected: id=p5sess ")
    pub = connected(paho, broker, "p5sessp")
    pub.publish("se/t", b"q1", qos=1)
    pub.publish("se/t", b"q2", qos=2)
    again = paho(broker.port, "p5sess", MQTTv5)
    flags, rc, _ = again.connect(clean_start=False, properties=session_props(60))
    assert (rc, flags["session present"]) == (0, 1)
    got = [again.message(), again.message()]
    assert [(m.payload, m.qos) for m in got] == [(b"q1", 1), (b"q2", 2)]
    pub.publish("se/t", b"live", qos=1)
    assert again.message().payload == b"live"


def test_session_expiry_zero_ends_session(broker, paho):
    """Session Expiry Interval 0 (the default): the session ends with the connection, so a Clean Start 0
    reconnect gets Session Present 0 [MQTT-3.1.2-23, MQTT-3.2.2-2]."""
    first = connected(paho, broker, "p5sess0", clean_start=True)
    assert first.subscribe("s0/t", 1) == [1]
    first.disconnect()
    broker.wait_log("client disconnected: id=p5sess0 ")
    again = paho(broker.port, "p5sess0", MQTTv5)
    flags, rc, _ = again.connect(clean_start=False)
    assert (rc, flags["session present"]) == (0, 0)


def test_queued_message_expires(broker, paho):
    """A queued message whose Message Expiry Interval passed while the client was away is not delivered
    [MQTT-3.3.2-5]. (Waits 2.1 s: expiry is a time, there is no event to await.)"""
    first = connected(paho, broker, "p5exp", clean_start=True, properties=session_props(60))
    assert first.subscribe("exp/t", 1) == [1]
    first.disconnect()
    broker.wait_log("client disconnected: id=p5exp ")
    pub = connected(paho, broker, "p5expp")
    pub.publish("exp/t", b"short-lived", qos=1, properties=props(MessageExpiryInterval=1))
    pub.publish("exp/t", b"long-lived", qos=1, properties=props(MessageExpiryInterval=100))
    time.sleep(2.1)
    again = paho(broker.port, "p5exp", MQTTv5)
    assert again.connect(clean_start=False, properties=session_props(60))[0]["session present"] == 1
    msg = again.message()
    assert msg.payload == b"long-lived"
    assert 97 <= msg.properties.MessageExpiryInterval <= 98


def test_suback_reason_codes(broker, paho):
    """SUBACK has one reason code per filter, in order, each the granted QoS [MQTT-3.9.3-1, 3.9.3 Table]."""
    c = connected(paho, broker, "p5suback")
    assert c.subscribe([("sa/0", 0), ("sa/1", 1), ("sa/2", 2)]) == [0, 1, 2]


def test_suback_downgraded_by_max_qos(make_broker, paho):
    """With max_qos = 1 the CONNACK announces Maximum QoS 1 and a QoS 2 subscription is granted QoS 1
    [MQTT-3.2.2-9, 5.0 section 3.8.4: the Server might grant a lower QoS]."""
    broker = make_broker("[mqtt]\nmax_qos = 1\n")
    c = paho(broker.port, "p5maxqos", MQTTv5)
    _flags, rc, p = c.connect()
    assert rc == 0 and p.MaximumQoS == 1
    assert c.subscribe([("mq/a", 2), ("mq/b", 0)]) == [1, 0]


def test_unsuback_reason_codes(broker, paho):
    """UNSUBACK: 0x00 for a removed subscription, 0x11 'No subscription existed' otherwise, in order
    [MQTT-3.11.3-1, 3.11.3 Table]."""
    c = connected(paho, broker, "p5unsub")
    assert c.subscribe("un/a", 1) == [1]
    rcs = c.unsubscribe(["un/a", "un/never"])
    assert [r.value for r in rcs] == [0x00, 0x11]


def test_topic_alias_from_client(broker, paho):
    """A client may replace a topic by a Topic Alias after establishing it; the broker maps it back and the
    subscriber sees the full topic [MQTT-3.3.2-10, MQTT-3.3.2-12]."""
    sub = connected(paho, broker, "p5alias")
    assert sub.subscribe("ta/long/topic", 1) == [1]
    pub = connected(paho, broker, "p5aliasp")
    pub.publish("ta/long/topic", b"first", qos=1, properties=props(TopicAlias=3))
    pub.publish("", b"second", qos=1, properties=props(TopicAlias=3))
    got = [sub.message(), sub.message()]
    assert [(m.topic, m.payload) for m in got] == [("ta/long/topic", b"first"), ("ta/long/topic", b"second")]


def test_will_properties_and_delay_zero(broker, paho):
    """The Will Message is published on an abrupt close with its Will Properties (Content Type, User Property)
    forwarded [MQTT-3.1.2-8, 5.0 section 3.1.3.2]."""
    watcher = connected(paho, broker, "p5watch")
    assert watcher.subscribe("w5/t", 1) == [1]
    dying = paho(broker.port, "p5dying", MQTTv5)
    dying.client.will_set("w5/t", b"bye", qos=1, properties=props(
        PacketTypes.WILLMESSAGE, ContentType="text/plain", UserProperty=[("why", "crash")]))
    assert dying.connect(threaded=False)[1] == 0
    dying.abort()
    msg = watcher.message()
    assert (msg.topic, msg.payload, msg.qos) == ("w5/t", b"bye", 1)
    assert msg.properties.ContentType == "text/plain"
    assert msg.properties.UserProperty == [("why", "crash")]


def test_disconnect_with_will_message(broker, paho):
    """DISCONNECT with reason code 0x04 'Disconnect with Will Message' makes the broker publish the will
    [MQTT-3.14.4-3, 3.14.2.1]."""
    watcher = connected(paho, broker, "p5watch4")
    assert watcher.subscribe("w4/t", 1) == [1]
    leaving = paho(broker.port, "p5leave4", MQTTv5)
    leaving.client.will_set("w4/t", b"on purpose", qos=1)
    assert leaving.connect()[1] == 0
    leaving.client.disconnect(reasoncode=mc.mqtt.ReasonCodes(PacketTypes.DISCONNECT, identifier=0x04))
    assert watcher.message().payload == b"on purpose"


def test_no_will_after_normal_disconnect(broker, paho):
    """DISCONNECT 0x00 deletes the will without publishing it [MQTT-3.1.2-10]."""
    watcher = connected(paho, broker, "p5watch0")
    assert watcher.subscribe("w0/t", 1) == [1]
    leaving = paho(broker.port, "p5leave0", MQTTv5)
    leaving.client.will_set("w0/t", b"should not appear", qos=1)
    assert leaving.connect()[1] == 0
    leaving.disconnect()
    broker.wait_log("client disconnected: id=p5leave0 ")
    watcher.publish("w0/t", b"marker", qos=1)
    assert watcher.message().payload == b"marker"


def test_client_takeover_disconnect_0x8e(broker, paho):
    """A second connection with the same Client Identifier takes over; the first is disconnected with 0x8E
    'Session taken over' [MQTT-3.1.4-3, 3.14.2.1] and the new one works. paho 1.6.1 only decodes a DISCONNECT
    reason code when properties follow it (remaining length > 2), so the reason is read from petrel's log here
    (the raw-socket conformance tests check the bytes)."""
    first = connected(paho, broker, "p5same")
    second = connected(paho, broker, "p5same")
    first.disconnects.get(timeout=mc.TIMEOUT)
    assert not first.connected
    broker.wait_log("reason=disconnected by server: session taken over")
    assert second.subscribe("to5/t", 1) == [1]
    second.publish("to5/t", b"mine now", qos=1)
    assert second.message().payload == b"mine now"


def test_server_keep_alive(make_broker, paho):
    """A v5 keep alive above [mqtt] max_keep_alive is accepted with Server Keep Alive = max_keep_alive in the
    CONNACK [MQTT-3.2.2-21] (petrel's documented choice)."""
    broker = make_broker("[mqtt]\nmax_keep_alive = 10\n")
    c = paho(broker.port, "p5ka", MQTTv5)
    _flags, rc, p = c.connect(keepalive=60)
    assert rc == 0 and p.ServerKeepAlive == 10


def test_will_delay_interval(broker, paho):
    """A Will Delay Interval of 1 s delays the will publication after an abrupt close [MQTT-3.1.3-9]."""
    watcher = connected(paho, broker, "p5wdw")
    assert watcher.subscribe("wd/t", 1) == [1]
    dying = paho(broker.port, "p5wd", MQTTv5)
    dying.client.will_set("wd/t", b"late", qos=1, properties=props(PacketTypes.WILLMESSAGE, WillDelayInterval=1))
    assert dying.connect(threaded=False, properties=session_props(30))[1] == 0
    closed_at = time.monotonic()
    dying.abort()
    msg = watcher.message()
    assert msg.payload == b"late"
    assert time.monotonic() - closed_at >= 0.9


def test_burst_through_client_receive_maximum(broker, paho):
    """The broker honours the client's Receive Maximum (3) for QoS 1/2 and still delivers 300 messages exactly
    once, in order for each QoS [MQTT-3.3.4-7, MQTT-4.6.0-6]."""
    sub = paho(broker.port, "p5burst", MQTTv5)
    assert sub.connect(properties=props(PacketTypes.CONNECT, ReceiveMaximum=3))[1] == 0
    assert sub.subscribe("b5/t", 2) == [2]
    pub = connected(paho, broker, "p5burstp")
    sent = []
    for i in range(300):
        sent.append((f"m{i}".encode(), 1 + i % 2))
        pub.client.publish("b5/t", *sent[-1])
    got = [(m.payload, m.qos) for m in (sub.message() for _ in sent)]
    for qos in (1, 2):
        assert [g for g in got if g[1] == qos] == [s for s in sent if s[1] == qos]


def test_client_maximum_packet_size_respected(broker, paho):
    """A message larger than the Maximum Packet Size the client announced is not sent to it (discarded), later
    ones still are [MQTT-3.1.2-24, MQTT-3.1.2-25]."""
    sub = paho(broker.port, "p5mps", MQTTv5)
    assert sub.connect(properties=props(PacketTypes.CONNECT, MaximumPacketSize=1024))[1] == 0
    assert sub.subscribe("mps/t", 1) == [1]
    pub = connected(paho, broker, "p5mpsp")
    pub.publish("mps/t", b"x" * 2000, qos=1)
    pub.publish("mps/t", b"small", qos=1)
    assert sub.message().payload == b"small"
    assert sub.connected


def test_retained_message_keeps_properties(broker, paho):
    """A retained message is delivered to a later subscriber with RETAIN=1, its application properties and a
    Message Expiry Interval reduced by the time held [MQTT-3.3.1-9, MQTT-3.3.2-6, MQTT-3.3.2-17]."""
    pub = connected(paho, broker, "p5rpp")
    pub.publish("rp/t", b"state", qos=1, retain=True, properties=props(
        MessageExpiryInterval=100, ContentType="text/plain", UserProperty=[("u", "1")]))
    sub = connected(paho, broker, "p5rps")
    assert sub.subscribe("rp/#", 1) == [1]
    msg = sub.message()
    assert (msg.topic, msg.payload, bool(msg.retain)) == ("rp/t", b"state", True)
    assert msg.properties.ContentType == "text/plain"
    assert msg.properties.UserProperty == [("u", "1")]
    assert 99 <= msg.properties.MessageExpiryInterval <= 100


def test_shared_subscription_prefers_online_member(broker, paho):
    """A shared group member whose session is kept but who is offline does not starve the group: petrel sends
    every message to the online member (documented choice; 5.0 section 4.8.2)."""
    away = connected(paho, broker, "p5shaway", clean_start=True, properties=session_props(60))
    assert away.subscribe("$share/g2/sho/t", 1) == [1]
    away.disconnect()
    broker.wait_log("client disconnected: id=p5shaway ")
    online = connected(paho, broker, "p5shon")
    assert online.subscribe("$share/g2/sho/t", 1) == [1]
    pub = connected(paho, broker, "p5shop")
    sent = [f"m{i}".encode() for i in range(6)]
    for p in sent:
        pub.publish("sho/t", p, qos=1)
    assert [online.message().payload for _ in sent] == sent


def test_subscription_identifier_replaced_on_resubscribe(broker, paho):
    """Subscribing again to the same filter replaces the subscription, including its Subscription Identifier
    [MQTT-3.8.4-3, 3.8.2.1.2]."""
    sub = connected(paho, broker, "p5sidre")
    assert sub.subscribe("sre/t", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=5)) == [1]
    assert sub.subscribe("sre/t", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=6)) == [1]
    pub = connected(paho, broker, "p5sidrep")
    pub.publish("sre/t", b"x", qos=1)
    assert sub.message().properties.SubscriptionIdentifier == [6]
    pub.publish("sre/t", b"marker", qos=1)
    assert sub.message().payload == b"marker"  # one subscription, so one copy of the first message


def test_unacknowledged_message_redelivered_with_dup(broker, paho):
    """A QoS 1 PUBLISH left unacknowledged when the connection dropped is sent again with DUP=1 when the
    session (Session Expiry Interval 60) resumes with Clean Start 0 [MQTT-4.4.0-1]."""
    sub = paho(broker.port, "p5dup", MQTTv5)
    assert sub.connect(threaded=False, properties=session_props(60))[1] == 0
    sub.client.subscribe("dup5/t", 1)
    assert sub.pump(sub.subacks)[1] == [1]
    pub = connected(paho, broker, "p5dupp")
    pub.publish("dup5/t", b"again", qos=1, properties=props(UserProperty=[("k", "v")]))
    sub.wait_readable()
    sub.abort()
    broker.wait_log("client disconnected: id=p5dup ")
    again = paho(broker.port, "p5dup", MQTTv5)
    assert again.connect(clean_start=False, properties=session_props(60))[0]["session present"] == 1
    msg = again.message()
    assert (msg.topic, msg.payload, msg.qos, bool(msg.dup)) == ("dup5/t", b"again", 1, True)
    assert msg.properties.UserProperty == [("k", "v")]


def test_will_delay_cut_short_by_session_end(broker, paho):
    """The will is published when the Will Delay Interval passes or the session ends, whichever is first
    [MQTT-3.1.3-9, 3.1.3.2.2]: with Session Expiry 0 and a 30 s will delay it comes at once on an abrupt close."""
    watcher = connected(paho, broker, "p5wsw")
    assert watcher.subscribe("ws/t", 1) == [1]
    dying = paho(broker.port, "p5ws", MQTTv5)
    dying.client.will_set("ws/t", b"session over", qos=1,
                          properties=props(PacketTypes.WILLMESSAGE, WillDelayInterval=30))
    assert dying.connect(threaded=False)[1] == 0
    closed_at = time.monotonic()
    dying.abort()
    assert watcher.message(timeout=3).payload == b"session over"
    assert time.monotonic() - closed_at < 2.5


def test_reconnect_cancels_delayed_will(broker, paho):
    """Reconnecting before the Will Delay Interval passes cancels the will [MQTT-3.1.3-9, 3.1.2.5]: checked
    after the (2 s) delay with a marker."""
    watcher = connected(paho, broker, "p5wcw")
    assert watcher.subscribe("wc/t", 1) == [1]
    dying = paho(broker.port, "p5wc", MQTTv5)
    dying.client.will_set("wc/t", b"should not appear", qos=1,
                          properties=props(PacketTypes.WILLMESSAGE, WillDelayInterval=2))
    assert dying.connect(threaded=False, properties=session_props(30))[1] == 0
    closed_at = time.monotonic()
    dying.abort()
    broker.wait_log("client disconnected: id=p5wc ")
    back = paho(broker.port, "p5wc", MQTTv5)
    assert back.connect(clean_start=False, properties=session_props(30))[0]["session present"] == 1
    time.sleep(max(0.0, closed_at + 2.5 - time.monotonic()))  # the delay is a time; nothing to await
    watcher.publish("wc/t", b"marker", qos=1)
    assert watcher.message().payload == b"marker"
