"""Topic names, topic filters and wildcards (MQTT 3.1.1 section 4.7), '$' topics, shared subscriptions
($share/group/filter, a petrel extension for 3.1.1) and overlapping subscriptions (section 3.3.5)."""
import mqttraw as m

from .helpers import (connected, disconnect, expect_publish, expect_publishes, publish_acked, raw, sentinel,
                      subscribe, subscriber)


def publish_all(pub: m.RawClient, topics: list[str], qos: int = 1) -> None:
    for i, t in enumerate(topics):
        publish_acked(pub, t, t.encode(), qos=qos, packet_id=i + 1)


def test_plus_matches_exactly_one_level(broker):
    """[MQTT-4.7.1-3] '+' matches exactly one topic level: "tp1/+/c" matches "tp1/b/c" only."""
    sub = subscriber(broker, "tp1-s", [("tp1/+/c", 1)])
    pub = connected(broker, "tp1-p")
    publish_all(pub, ["tp1/c", "tp1/b/d/c", "tp1/b/c/d", "tp1/b/c"])
    expect_publish(sub, "tp1/b/c")
    sentinel(pub, sub, "tp1/z/c")


def test_plus_matches_an_empty_level(broker):
    """4.7.1.3: "sport/+" matches "sport/" — '+' also matches a zero-length level."""
    sub = subscriber(broker, "tp2-s", [("tp2/+", 1), ("tp2/+/x", 1)])
    pub = connected(broker, "tp2-p")
    publish_all(pub, ["tp2/", "tp2//x"])
    assert [expect_publish(sub).fields["topic"] for _ in range(2)] == ["tp2/", "tp2//x"]


def test_hash_matches_all_descendant_levels(broker):
    """[MQTT-4.7.1-2] '#' matches any number of child levels."""
    sub = subscriber(broker, "tp3-s", [("tp3/#", 1)])
    pub = connected(broker, "tp3-p")
    publish_all(pub, ["tp3/a", "tp3/a/b/c", "tp3/a/"])
    assert [expect_publish(sub).fields["topic"] for _ in range(3)] == ["tp3/a", "tp3/a/b/c", "tp3/a/"]


def test_hash_matches_the_parent_level(broker):
    """4.7.1.2: "sport/tennis/player1/#" also matches "sport/tennis/player1": "tp4/#" matches "tp4"."""
    sub = subscriber(broker, "tp4-s", [("tp4/#", 1)])
    pub = connected(broker, "tp4-p")
    publish_all(pub, ["tp4"])
    expect_publish(sub, "tp4", b"tp4")


def test_hash_does_not_match_a_sibling_with_the_same_prefix(broker):
    """4.7.1.2: "tp5/#" matches levels below "tp5", not "tp5x/..." nor "tp"."""
    sub = subscriber(broker, "tp5-s", [("tp5/#", 1)])
    pub = connected(broker, "tp5-p")
    publish_all(pub, ["tp5x/a", "tp5x", "tp"])
    sentinel(pub, sub, "tp5/marker")


def test_hash_alone_matches_every_non_dollar_topic(make_broker):
    """4.7.1.2: the filter "#" matches every topic that does not start with '$' (fresh broker)."""
    broker = make_broker()
    sub = subscriber(broker, "tp6-s", [("#", 1)])
    pub = connected(broker, "tp6-p")
    topics = ["a", "/", "/x", "a/b/c/d/e", "x y/ü"]
    publish_all(pub, topics)
    assert [expect_publish(sub).fields["topic"] for _ in topics] == topics


def test_leading_slash_is_an_empty_first_level(broker):
    """4.7.1.3 / 4.7.3: "/tp7" has an empty first level: matched by "+/tp7", not by "tp7"."""
    sub = subscriber(broker, "tp7-s", [("+/tp7", 1), ("tp7", 1)])
    pub = connected(broker, "tp7-p")
    publish_all(pub, ["/tp7"])
    expect_publish(sub, "/tp7")
    sentinel(pub, sub, "tp7")


def test_topic_matching_is_case_sensitive(broker):
    """4.7.3: topic names and filters are case sensitive."""
    sub = subscriber(broker, "tp8-s", [("tp8/Ab", 1)])
    pub = connected(broker, "tp8-p")
    publish_all(pub, ["tp8/ab", "TP8/Ab", "tp8/AB"])
    sentinel(pub, sub, "tp8/Ab")


def test_non_ascii_levels_match(broker):
    """4.7.3: levels are compared as UTF-8 strings; non-ASCII levels match exactly and '+'
    spans a multi-byte level."""
    sub = subscriber(broker, "tp9-s", [("tp9/ü/+", 1)])
    pub = connected(broker, "tp9-p")
    publish_all(pub, ["tp9/u/€", "tp9/ü/€"])
    expect_publish(sub, "tp9/ü/€", "tp9/ü/€".encode())


def test_plus_and_hash_combined(broker):
    """[MQTT-4.7.1-2] [MQTT-4.7.1-3] "tp10/+/x/#" matches "tp10/a/x" and "tp10/a/x/y/z", not "tp10/a/y/x"."""
    sub = subscriber(broker, "tp10-s", [("tp10/+/x/#", 1)])
    pub = connected(broker, "tp10-p")
    publish_all(pub, ["tp10/a/y/x", "tp10/a/x", "tp10/x", "tp10/a/x/y/z"])
    assert [expect_publish(sub).fields["topic"] for _ in range(2)] == ["tp10/a/x", "tp10/a/x/y/z"]
    sentinel(pub, sub, "tp10/q/x")


def test_dollar_topic_not_matched_by_hash(make_broker):
    """[MQTT-4.7.2-1] A filter starting with '#' does not match topics starting with '$' (fresh broker)."""
    broker = make_broker()
    sub = subscriber(broker, "tp11-s", [("#", 1)])
    pub = connected(broker, "tp11-p")
    publish_all(pub, ["$tp11", "$tp11/a", "$SYS2/x"])
    sentinel(pub, sub, "tp11/marker")


def test_dollar_topic_not_matched_by_plus_first_level(broker):
    """[MQTT-4.7.2-1] A filter starting with '+' does not match topics starting with '$'."""
    sub = subscriber(broker, "tp12-s", [("+/tp12", 1), ("+/tp12/#", 1)])
    pub = connected(broker, "tp12-p")
    publish_all(pub, ["$x/tp12", "$x/tp12/y"])
    sentinel(pub, sub, "x/tp12")


def test_dollar_topic_matched_by_filter_starting_with_dollar(broker):
    """4.7.2: a filter that itself starts with the '$' level matches '$' topics: "$tp13/+" and "$tp13/#"."""
    sub = subscriber(broker, "tp13-s", [("$tp13/+", 1), ("$tp14/#", 1)])
    pub = connected(broker, "tp13-p")
    publish_all(pub, ["$tp13/a", "$tp14/b/c"])
    assert [expect_publish(sub).fields["topic"] for _ in range(2)] == ["$tp13/a", "$tp14/b/c"]


def test_sys_hash_matches_broker_sys_topics(broker):
    """4.7.2: "$SYS/#" matches the broker's $SYS topics (published retained at startup)."""
    sub = subscriber(broker, "tp15-s", [("$SYS/#", 0)])
    p = expect_publish(sub)
    assert p.fields["topic"].startswith("$SYS/broker/"), p


# ------------------------------------------------------------ shared subscriptions --

def shared_members(broker, prefix: str, flt: str, n: int = 2, qos: int = 1) -> list[m.RawClient]:
    """n members of $share/<prefix>/<flt>, each also subscribed to its own marker topic."""
    out = []
    for i in range(n):
        c = subscriber(broker, f"{prefix}-m{i}", [(f"$share/{prefix}/{flt}", qos), (f"{prefix}/mark/{i}", 1)])
        out.append(c)
    return out


def drain_until_marker(c: m.RawClient, marker: str) -> list[m.Packet]:
    """PUBLISHes received (acknowledged) before the marker topic's message."""
    got = []
    while True:
        p = expect_publish(c)
        if p.fields["topic"] == marker:
            return got
        got.append(p)


def test_shared_subscription_distributes_round_robin(broker):
    """$share/group/filter: each message goes to exactly one member; with two online members both get some,
    none is duplicated and none lost."""
    members = shared_members(broker, "sh1", "sh1/t")
    pub = connected(broker, "sh1-p")
    sent = [b"%d" % i for i in range(10)]
    for i, payload in enumerate(sent):
        publish_acked(pub, "sh1/t", payload, qos=1, packet_id=i + 1)
    for i in range(2):
        publish_acked(pub, f"sh1/mark/{i}", b"end", qos=1, packet_id=100 + i)
    got = [[p.fields["payload"] for p in drain_until_marker(c, f"sh1/mark/{i}")] for i, c in enumerate(members)]
    assert all(got), f"a member got nothing: {got}"
    assert sorted(got[0] + got[1], key=int) == sent, got


def test_shared_subscription_gets_no_retained_messages(broker):
    """petrel: retained messages are not sent to shared subscriptions (as MQTT 5 section 4.8.2 specifies)."""
    pub = connected(broker, "sh2-p")
    publish_acked(pub, "sh2/t", b"retained", qos=1, packet_id=1, retain=True)
    members = shared_members(broker, "sh2", "sh2/t", n=1)
    sentinel(pub, members[0], "sh2/mark/0")


def test_shared_group_and_plain_subscription_both_receive(broker):
    """A plain subscription of the same filter is not part of the group: it receives every message, the group
    one copy each."""
    (member,) = shared_members(broker, "sh3", "sh3/t", n=1)
    plain = subscriber(broker, "sh3-plain", [("sh3/t", 1)])
    pub = connected(broker, "sh3-p")
    publish_all(pub, ["sh3/t"] * 3)
    assert len(expect_publishes(plain, 3)) == 3
    assert len(expect_publishes(member, 3)) == 3


def test_each_share_group_gets_a_copy(broker):
    """Each group receives each message once: two groups with one member each both get every message."""
    a = subscriber(broker, "sh4-a", [("$share/sh4a/sh4/t", 1)])
    b = subscriber(broker, "sh4-b", [("$share/sh4b/sh4/t", 1)])
    pub = connected(broker, "sh4-p")
    publish_all(pub, ["sh4/t"] * 3)
    assert len(expect_publishes(a, 3)) == 3
    assert len(expect_publishes(b, 3)) == 3


def test_shared_subscription_prefers_online_members(broker):
    """petrel: messages of a group go to online members; an offline persistent member gets none of them."""
    off = subscriber(broker, "sh5-off", [("$share/sh5/sh5/t", 1), ("sh5/mark/off", 1)], clean=False)
    disconnect(broker, off, "sh5-off")
    (on,) = shared_members(broker, "sh5", "sh5/t", n=1)
    pub = connected(broker, "sh5-p")
    publish_all(pub, ["sh5/t"] * 4)
    assert len(expect_publishes(on, 4)) == 4
    back = raw(broker)
    assert back.connect("sh5-off", clean=False).fields["session_present"] == 1
    sentinel(pub, back, "sh5/mark/off")


def test_unsubscribed_member_leaves_the_group(broker):
    """After a member unsubscribes from $share/g/f the remaining member gets every message."""
    a, b = shared_members(broker, "sh6", "sh6/t")
    a.send(m.unsubscribe(7, ["$share/sh6/sh6/t"]))
    assert a.expect(m.UNSUBACK).fields["packet_id"] == 7
    pub = connected(broker, "sh6-p")
    publish_all(pub, ["sh6/t"] * 4)
    assert len(expect_publishes(b, 4)) == 4
    sentinel(pub, a, "sh6/mark/0")


# ------------------------------------------------------------ overlapping subscriptions --

def test_overlapping_subscriptions_one_copy_at_highest_qos(broker):
    """[MQTT-3.3.5-1] petrel: a message matching several subscriptions of one client is delivered once, at the
    highest granted QoS."""
    sub = subscriber(broker, "ov1-s", [("ov1/+", 0), ("ov1/#", 2), ("ov1/a", 1)])
    pub = connected(broker, "ov1-p")
    publish_acked(pub, "ov1/a", b"once", qos=2, packet_id=1)
    p = expect_publish(sub, "ov1/a", b"once", ack=False)
    assert p.fields["qos"] == 2
    sub.send(m.ack(m.PUBREC, p.fields["packet_id"]))
    sub.expect(m.PUBREL)
    sub.send(m.ack(m.PUBCOMP, p.fields["packet_id"]))
    sentinel(pub, sub, "ov1/b")


def test_overlapping_subscriptions_bounded_by_published_qos(broker):
    """[MQTT-3.3.5-1] [MQTT-3.8.4-6] The single copy's QoS is still bounded by the published QoS."""
    sub = subscriber(broker, "ov2-s", [("ov2/+", 0), ("ov2/#", 2)])
    pub = connected(broker, "ov2-p")
    publish_acked(pub, "ov2/a", b"q1", qos=1, packet_id=1)
    p = expect_publish(sub, "ov2/a", b"q1")
    assert p.fields["qos"] == 1
    sentinel(pub, sub, "ov2/b")


def test_subscriptions_from_separate_subscribes_overlap_too(broker):
    """Overlap is per client, not per SUBSCRIBE: filters from two SUBSCRIBE packets also give one copy."""
    sub = subscriber(broker, "ov3-s", [("ov3/x", 1)])
    assert subscribe(sub, [("ov3/#", 1)], packet_id=2) == [1]
    pub = connected(broker, "ov3-p")
    publish_acked(pub, "ov3/x", b"one", qos=1, packet_id=1)
    expect_publish(sub, "ov3/x", b"one")
    sentinel(pub, sub, "ov3/y")


def test_byte_order_mark_in_topic_is_not_stripped(broker):
    """[MQTT-1.5.3-3] EF BB BF (U+FEFF) in a topic is a character like any other, never skipped or stripped:
    "tp16/<U+FEFF>x" matches only the identical filter, not "tp16/x"."""
    topic = "tp16/\ufeffx"
    sub = subscriber(broker, "tp16-s", [(topic, 1), ("tp16/x", 1)])
    pub = connected(broker, "tp16-p")
    publish_all(pub, [topic])
    p = expect_publish(sub, topic)
    assert p.body[2:2 + len(topic.encode())] == topic.encode()
    sentinel(pub, sub, "tp16/x")
