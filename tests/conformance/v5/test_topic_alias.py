"""MQTT 5.0 section 3.3.2.3.4 Topic Alias, both directions."""
import mqttraw as m


def _alias(n):
    return [(m.TOPIC_ALIAS, n)]


# ------------------------------------------------------------ from the client --


def test_alias_set_then_used_with_empty_topic(broker, v5):
    """[3.3.2.3.4] [MQTT-3.3.2-12] PUBLISH with topic + alias 1 sets the alias; PUBLISH with an empty topic and
    alias 1 is routed to that topic. The subscriber gets the full topic name and no Topic Alias."""
    s = v5.connect(broker, "ta-s1")
    v5.subscribe(s, "ta/one", 1)
    p = v5.connect(broker, "ta-p1")
    assert v5.publish(p, "ta/one", b"first", qos=1, packet_id=1, properties=_alias(1)) == 0x00
    assert v5.publish(p, "", b"second", qos=1, packet_id=2, properties=_alias(1)) == 0x00
    for expected in (b"first", b"second"):
        got = v5.receive(s)
        assert (got.fields["topic"], got.fields["payload"]) == ("ta/one", expected)
        assert m.TOPIC_ALIAS not in got.fields["props"]


def test_alias_can_be_remapped(broker, v5):
    """[3.3.2.3.4] A PUBLISH with a topic and an existing alias replaces the mapping."""
    s = v5.connect(broker, "ta-s2")
    v5.subscribe(s, "ta/#", 0)
    p = v5.connect(broker, "ta-p2")
    v5.publish(p, "ta/a", b"1", properties=_alias(3))
    v5.publish(p, "ta/b", b"2", properties=_alias(3))
    v5.publish(p, "", b"3", properties=_alias(3))
    assert [v5.receive(s).fields["topic"] for _ in range(3)] == ["ta/a", "ta/b", "ta/b"]


def test_alias_at_maximum_accepted(make_broker, v5):
    """[MQTT-3.3.2-12] A Topic Alias equal to the broker's Topic Alias Maximum (5) is valid."""
    b = make_broker("[mqtt]\ntopic_alias_maximum = 5\n")
    p = v5.connect(b, "ta-p3")
    assert v5.publish(p, "ta/max", b"x", qos=1, properties=_alias(5)) == 0x10


def test_alias_zero_disconnects_0x94(broker, v5):
    """[MQTT-3.3.2-8] [3.3.2.3.4] Topic Alias 0 is not permitted: DISCONNECT 0x94 (Topic Alias invalid)."""
    p = v5.connect(broker, "ta-p4")
    p.send(m.publish("ta/zero", b"x", version=5, properties=_alias(0)))
    v5.expect_disconnect(p, 0x94)
    v5.assert_serving(broker)


def test_alias_above_maximum_disconnects_0x94(broker, v5):
    """[MQTT-3.3.2-9] [3.3.2.3.4] A Topic Alias above the broker's Topic Alias Maximum (64): DISCONNECT 0x94."""
    p = v5.connect(broker, "ta-p5")
    assert p.connack.fields["props"][m.TOPIC_ALIAS_MAXIMUM] == 64
    p.send(m.publish("ta/big", b"x", version=5, properties=_alias(65)))
    v5.expect_disconnect(p, 0x94)
    v5.assert_serving(broker)


def test_alias_when_broker_allows_none_disconnects_0x94(make_broker, v5):
    """[3.2.2.3.8] Topic Alias Maximum 0: the client must not send any Topic Alias; alias 1 -> DISCONNECT 0x94."""
    b = make_broker("[mqtt]\ntopic_alias_maximum = 0\n")
    p = v5.connect(b, "ta-p6")
    p.send(m.publish("ta/none", b"x", version=5, properties=_alias(1)))
    v5.expect_disconnect(p, 0x94)
    v5.assert_serving(b)


def test_unknown_alias_with_empty_topic_is_protocol_error(broker, v5):
    """[3.3.2.3.4] An empty Topic Name with an alias that was never set: DISCONNECT 0x82 (Protocol Error)."""
    p = v5.connect(broker, "ta-p7")
    p.send(m.publish("", b"x", version=5, properties=_alias(7)))
    v5.expect_disconnect(p, 0x82)
    v5.assert_serving(broker)


def test_empty_topic_without_alias_is_protocol_error(broker, v5):
    """[3.3.2.1] An empty Topic Name without a Topic Alias: DISCONNECT 0x82 (Protocol Error)."""
    p = v5.connect(broker, "ta-p8")
    p.send(m.publish("", b"x", qos=1, version=5))
    v5.expect_disconnect(p, 0x82)
    v5.assert_serving(broker)


def test_aliases_do_not_survive_reconnect(broker, v5):
    """[MQTT-3.3.2-7] Topic Alias mappings belong to one Network Connection: after reconnecting (same session)
    the old alias is unknown, so an empty topic with it is a Protocol Error (0x82)."""
    props = [(m.SESSION_EXPIRY_INTERVAL, 60)]
    p = v5.connect(broker, "ta-p9", properties=props)
    v5.publish(p, "ta/re", b"x", qos=1, properties=_alias(2))
    p.send(m.disconnect())
    assert p.expect_closed(3) == []
    p2 = v5.connect(broker, "ta-p9", clean=False, properties=props)
    assert p2.connack.fields["session_present"] == 1
    p2.send(m.publish("", b"y", qos=1, version=5, properties=_alias(2)))
    v5.expect_disconnect(p2, 0x82)
    v5.assert_serving(broker)


def test_aliases_are_per_connection(broker, v5):
    """[MQTT-3.3.2-7] An alias set by one client is unknown to another client."""
    a = v5.connect(broker, "ta-pa")
    v5.publish(a, "ta/mine", b"x", qos=1, properties=_alias(4))
    b = v5.connect(broker, "ta-pb")
    b.send(m.publish("", b"y", qos=1, version=5, properties=_alias(4)))
    v5.expect_disconnect(b, 0x82)
    v5.assert_serving(broker)


# ------------------------------------------------------------ to the client --

ALIAS_TO_CLIENT = "[mqtt]\ntopic_alias_to_client = true\n"


def test_alias_to_client_second_message_uses_alias(make_broker, v5):
    """[3.3.2.3.4] With topic_alias_to_client and the client's Topic Alias Maximum 5, the first message on a topic
    carries the topic and an alias (1..5); the second arrives with an empty topic and the same alias."""
    b = make_broker(ALIAS_TO_CLIENT)
    s = v5.connect(b, "ta-s10", properties=[(m.TOPIC_ALIAS_MAXIMUM, 5)])
    v5.subscribe(s, "ta/out", 1)
    p = v5.connect(b, "ta-p10")
    v5.publish(p, "ta/out", b"1", qos=1, packet_id=1)
    v5.publish(p, "ta/out", b"2", qos=1, packet_id=2)
    first, second = v5.receive(s), v5.receive(s)
    alias = first.fields["props"].get(m.TOPIC_ALIAS)
    assert first.fields["topic"] == "ta/out" and alias is not None and 1 <= alias <= 5
    assert second.fields["topic"] == "" and second.fields["props"].get(m.TOPIC_ALIAS) == alias
    assert second.fields["payload"] == b"2"


def test_alias_to_client_distinct_topics_get_distinct_aliases(make_broker, v5):
    """[3.3.2.3.4] Two topics get two different aliases; each alias keeps meaning its own topic."""
    b = make_broker(ALIAS_TO_CLIENT)
    s = v5.connect(b, "ta-s11", properties=[(m.TOPIC_ALIAS_MAXIMUM, 5)])
    v5.subscribe(s, "ta/#", 0)
    p = v5.connect(b, "ta-p11")
    for t in ("ta/x", "ta/y", "ta/x", "ta/y"):
        v5.publish(p, t, t.encode())
    got = [v5.receive(s) for _ in range(4)]
    mapping = {}
    for g in got:
        alias = g.fields["props"].get(m.TOPIC_ALIAS)
        assert alias is not None and 1 <= alias <= 5
        if g.fields["topic"]:
            mapping[alias] = g.fields["topic"]
        assert mapping[alias].encode() == g.fields["payload"]
    assert len(mapping) == 2


def test_alias_to_client_never_above_client_maximum(make_broker, v5):
    """[MQTT-3.3.2-11] [MQTT-3.1.2-26] The broker never sends a Topic Alias above the client's Topic Alias Maximum (1): a second
    topic is sent with its full name; messages are all intact."""
    b = make_broker(ALIAS_TO_CLIENT)
    s = v5.connect(b, "ta-s12", properties=[(m.TOPIC_ALIAS_MAXIMUM, 1)])
    v5.subscribe(s, "ta/#", 0)
    p = v5.connect(b, "ta-p12")
    for t in ("ta/x", "ta/y", "ta/y", "ta/x"):
        v5.publish(p, t, t.encode())
    mapping = {}
    for _ in range(4):
        g = v5.receive(s)
        alias = g.fields["props"].get(m.TOPIC_ALIAS)
        assert alias in (None, 1)
        topic = g.fields["topic"] or mapping[alias]
        if alias and g.fields["topic"]:
            mapping[alias] = g.fields["topic"]
        assert topic.encode() == g.fields["payload"]


def test_no_alias_to_client_without_client_maximum(make_broker, v5):
    """[MQTT-3.1.2-27] A client that sent no Topic Alias Maximum (0) never receives a Topic Alias."""
    b = make_broker(ALIAS_TO_CLIENT)
    s = v5.connect(b, "ta-s13")
    v5.subscribe(s, "ta/n", 0)
    p = v5.connect(b, "ta-p13")
    for _ in range(2):
        v5.publish(p, "ta/n", b"x")
    for _ in range(2):
        g = v5.receive(s)
        assert g.fields["topic"] == "ta/n" and m.TOPIC_ALIAS not in g.fields["props"]


def test_no_alias_to_client_by_default(broker, v5):
    """[3.3.2.3.4] (petrel default topic_alias_to_client = false) Messages carry full topics and no alias."""
    s = v5.connect(broker, "ta-s14", properties=[(m.TOPIC_ALIAS_MAXIMUM, 5)])
    v5.subscribe(s, "ta/d", 0)
    p = v5.connect(broker, "ta-p14")
    for _ in range(2):
        v5.publish(p, "ta/d", b"x")
    for _ in range(2):
        g = v5.receive(s)
        assert g.fields["topic"] == "ta/d" and m.TOPIC_ALIAS not in g.fields["props"]


def test_alias_to_client_reset_on_reconnect(make_broker, v5):
    """[MQTT-3.3.2-7] After a reconnect the broker must not use an alias from the old connection: the first
    message on the new connection carries the full topic name."""
    b = make_broker(ALIAS_TO_CLIENT)
    props = [(m.TOPIC_ALIAS_MAXIMUM, 5), (m.SESSION_EXPIRY_INTERVAL, 60)]
    s = v5.connect(b, "ta-s15", properties=props)
    v5.subscribe(s, "ta/r", 0)
    p = v5.connect(b, "ta-p15")
    v5.publish(p, "ta/r", b"1")
    assert v5.receive(s).fields["topic"] == "ta/r"
    s.send(m.disconnect())
    assert s.expect_closed(3) == []
    s2 = v5.connect(b, "ta-s15", clean=False, properties=props)
    v5.publish(p, "ta/r", b"2")
    got = v5.receive(s2)
    assert got.fields["topic"] == "ta/r" and got.fields["payload"] == b"2"


def test_alias_to_client_respects_client_maximum_packet_size(make_broker, v5):
    """[MQTT-3.1.2-24] Adding a Topic Alias must not push a PUBLISH over the client's Maximum Packet Size (100):
    a message that is exactly 100 bytes without an alias is either sent without one or not at all; no packet
    above 100 bytes arrives, and a small message after it is delivered."""
    b = make_broker(ALIAS_TO_CLIENT)
    s = v5.connect(b, "ta-s16", properties=[(m.TOPIC_ALIAS_MAXIMUM, 5), (m.MAXIMUM_PACKET_SIZE, 100)])
    v5.subscribe(s, "ta/mps", 0)
    p = v5.connect(b, "ta-p16")
    payload = b"P" * (100 - 11)
    assert len(m.publish("ta/mps", payload, version=5)) == 100
    v5.publish(p, "ta/mps", payload)
    v5.publish(p, "ta/mps", b"small")
    while True:
        g = v5.receive(s)
        size = 1 + len(m.varint(len(g.body))) + len(g.body)
        assert size <= 100, f"{size}-byte PUBLISH sent to a client with Maximum Packet Size 100"
        if g.fields["payload"] == b"small":
            break
