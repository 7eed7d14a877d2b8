"""MQTT 5.0 section 4.8.2 Shared Subscriptions ($share/{ShareName}/{filter})."""
import pytest

import mqttraw as m


def _members(v5, broker, names, filter_="$share/g/sh/t", qos=1):
    out = []
    for n in names:
        c = v5.connect(broker, n)
        assert v5.subscribe(c, filter_, qos) == [qos]
        out.append(c)
    return out


def test_round_robin_between_members_no_duplicates(broker, v5):
    """[4.8.2] Each message to a shared subscription goes to exactly one member; petrel alternates between
    the members (round-robin), so 6 messages give 3 to each, none twice."""
    a, b = _members(v5, broker, ["sh-a", "sh-b"])
    p = v5.connect(broker, "sh-p")
    for i in range(6):
        v5.publish(p, "sh/t", b"%d" % i, qos=1, packet_id=i + 1)
    got_a = [v5.receive(a).fields["payload"] for _ in range(3)]
    got_b = [v5.receive(b).fields["payload"] for _ in range(3)]
    a.expect_nothing(0.2)
    b.expect_nothing(0.2)
    assert sorted(got_a + got_b) == [b"%d" % i for i in range(6)]


def test_shared_and_normal_subscription_both_receive(broker, v5):
    """[4.8.2] A non-shared subscription on the same filter receives every message besides the group's copy."""
    a, b = _members(v5, broker, ["sh-a2", "sh-b2"])
    n = v5.connect(broker, "sh-n2")
    v5.subscribe(n, "sh/t", 1)
    p = v5.connect(broker, "sh-p2")
    for i in range(2):
        v5.publish(p, "sh/t", b"%d" % i, qos=1, packet_id=i + 1)
    assert [v5.receive(n).fields["payload"] for _ in range(2)] == [b"0", b"1"]
    assert sorted([v5.receive(a).fields["payload"], v5.receive(b).fields["payload"]]) == [b"0", b"1"]


def test_each_group_gets_a_copy(broker, v5):
    """[4.8.2] Two share groups on the same filter each receive every message once."""
    g1 = _members(v5, broker, ["sh-g1"], "$share/one/sh/t")[0]
    g2 = _members(v5, broker, ["sh-g2"], "$share/two/sh/t")[0]
    p = v5.connect(broker, "sh-p3")
    v5.publish(p, "sh/t", b"all", qos=1)
    assert v5.receive(g1).fields["payload"] == b"all"
    assert v5.receive(g2).fields["payload"] == b"all"


def test_shared_subscription_with_wildcard_filter(broker, v5):
    """[4.8.2] The filter part of a shared subscription may contain wildcards."""
    (a,) = _members(v5, broker, ["sh-wc"], "$share/g/sh/+/x")
    p = v5.connect(broker, "sh-pwc")
    v5.publish(p, "sh/any/x", b"m", qos=1)
    got = v5.receive(a)
    assert (got.fields["topic"], got.fields["payload"]) == ("sh/any/x", b"m")


def test_offline_member_skipped(broker, v5):
    """[4.8.2] (petrel prefers online members) While one member's session is offline, messages go to the
    online member."""
    expiry = [(m.SESSION_EXPIRY_INTERVAL, 60)]
    off = v5.connect(broker, "sh-off", properties=expiry)
    v5.subscribe(off, "$share/g/sh/t", 1)
    off.send(m.disconnect())
    assert off.expect_closed(3) == []
    (on,) = _members(v5, broker, ["sh-on"])
    p = v5.connect(broker, "sh-poff")
    for i in range(4):
        v5.publish(p, "sh/t", b"%d" % i, qos=1, packet_id=i + 1)
    assert [v5.receive(on).fields["payload"] for _ in range(4)] == [b"0", b"1", b"2", b"3"]


def test_unsubscribed_member_gets_nothing(broker, v5):
    """[4.8.2] [MQTT-3.10.4-1] After a member unsubscribes from the shared subscription, the remaining member
    gets every message."""
    a, b = _members(v5, broker, ["sh-ua", "sh-ub"])
    assert v5.unsubscribe(a, "$share/g/sh/t") == [0x00]
    p = v5.connect(broker, "sh-pu")
    for i in range(3):
        v5.publish(p, "sh/t", b"%d" % i, qos=1, packet_id=i + 1)
    assert [v5.receive(b).fields["payload"] for _ in range(3)] == [b"0", b"1", b"2"]


def test_shared_subscription_granted_qos(broker, v5):
    """[4.8.2] [MQTT-3.8.4-8] A shared member subscribed at QoS 0 receives a QoS 2 message at QoS 0."""
    (a,) = _members(v5, broker, ["sh-q0"], qos=0)
    p = v5.connect(broker, "sh-pq0")
    v5.publish(p, "sh/t", b"x", qos=2)
    assert v5.receive(a).fields["qos"] == 0


@pytest.mark.parametrize("filter_", ["$share/a+b/x", "$share//x", "$share/g", "$share/a#/x", "$share/g/"])
def test_invalid_shared_filter_gets_0x8f(broker, v5, filter_):
    """[MQTT-4.8.2-1] [MQTT-4.8.2-2] ShareName must be non-empty without '/', '+' or '#', followed by '/' and a
    non-empty Topic Filter: otherwise SUBACK 0x8F (Topic Filter invalid); the connection stays open."""
    c = v5.connect(broker, "sh-bad")
    assert v5.subscribe(c, filter_, 1) == [0x8F]
    c.send(m.pingreq())
    c.expect(m.PINGRESP)
