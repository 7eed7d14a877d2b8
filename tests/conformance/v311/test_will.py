"""Will messages (MQTT 3.1.1 section 3.1.2.5-3.1.2.7, 3.14.4)."""
import pytest

import mqttraw as m

from .helpers import (Stopwatch, connected, disconnect, drop, expect_closed_silently, expect_publish, raw, sentinel,
                      subscriber)


def test_will_published_on_abnormal_close(broker):
    """[MQTT-3.1.2-8] The will is published when the network connection closes without a DISCONNECT."""
    sub = subscriber(broker, "wl1-s", [("wl1/will", 2)])
    c = connected(broker, "wl1-c", will_topic="wl1/will", will_payload=b"gone", will_qos=1)
    drop(broker, c, "wl1-c")
    p = expect_publish(sub, "wl1/will", b"gone")
    assert (p.fields["qos"], p.fields["retain"]) == (1, False)


@pytest.mark.parametrize("will_qos", [0, 1, 2])
def test_will_published_at_its_qos(broker, will_qos):
    """[MQTT-3.1.2-14] The will is published with the Will QoS (the subscriber has granted QoS 2)."""
    sub = subscriber(broker, f"wl2-s{will_qos}", [(f"wl2/{will_qos}", 2)])
    c = connected(broker, f"wl2-c{will_qos}", will_topic=f"wl2/{will_qos}", will_payload=b"q", will_qos=will_qos)
    drop(broker, c, f"wl2-c{will_qos}")
    p = expect_publish(sub, f"wl2/{will_qos}", b"q", ack=False)
    assert p.fields["qos"] == will_qos


def test_will_with_retain_is_stored_as_retained(broker):
    """[MQTT-3.1.2-17] Will Retain 1: the will is published as a retained message, so a later subscriber
    gets it with RETAIN=1."""
    c = connected(broker, "wl3-c", will_topic="wl3/will", will_payload=b"last words", will_qos=1, will_retain=True)
    live = subscriber(broker, "wl3-live", [("wl3/will", 1)])
    drop(broker, c, "wl3-c")
    p = expect_publish(live, "wl3/will", b"last words")
    assert p.fields["retain"] is False  # [MQTT-3.3.1-9] live delivery
    later = subscriber(broker, "wl3-later", [("wl3/will", 1)])
    p = expect_publish(later, "wl3/will", b"last words")
    assert p.fields["retain"] is True


def test_will_without_retain_is_not_stored(broker):
    """[MQTT-3.1.2-16] Will Retain 0: the will is published as a non-retained message."""
    c = connected(broker, "wl4-c", will_topic="wl4/will", will_payload=b"not kept", will_qos=1)
    live = subscriber(broker, "wl4-live", [("wl4/will", 1)])
    drop(broker, c, "wl4-c")
    expect_publish(live, "wl4/will", b"not kept")
    later = subscriber(broker, "wl4-later", [("wl4/will", 1)])
    pub = connected(broker, "wl4-p")
    sentinel(pub, later, "wl4/will", b"live")


def test_will_not_published_after_disconnect(broker):
    """[MQTT-3.1.2-10] [MQTT-3.14.4-3] After a DISCONNECT the will is discarded, not published."""
    sub = subscriber(broker, "wl5-s", [("wl5/will", 1)])
    c = connected(broker, "wl5-c", will_topic="wl5/will", will_payload=b"must not", will_qos=1)
    disconnect(broker, c, "wl5-c")
    pub = connected(broker, "wl5-p")
    sentinel(pub, sub, "wl5/will", b"marker")


def test_will_published_on_keep_alive_timeout(broker):
    """[MQTT-3.1.2-8] [MQTT-3.1.2-24] The will is published when the server closes the connection because the
    client sent nothing for 1.5 x keep alive (keep alive 1 s)."""
    sub = subscriber(broker, "wl6-s", [("wl6/will", 1)])
    c = connected(broker, "wl6-c", keepalive=1, will_topic="wl6/will", will_payload=b"timed out", will_qos=1)
    watch = Stopwatch()
    p = expect_publish(sub, "wl6/will", b"timed out", timeout=4)
    assert watch.elapsed() >= 1.3, watch.elapsed()
    assert p.fields["qos"] == 1
    expect_closed_silently(c)


def test_will_published_on_takeover(broker):
    """[MQTT-3.1.4-2] [MQTT-3.1.2-8] When a new connection with the same client id takes over, the server
    closes the old connection without a DISCONNECT from it, so the old connection's will is published."""
    sub = subscriber(broker, "wl7-s", [("wl7/will", 1)])
    old = connected(broker, "wl7-c", will_topic="wl7/will", will_payload=b"taken over", will_qos=1)
    new = raw(broker)
    assert new.connect("wl7-c").fields["reason"] == 0
    expect_closed_silently(old)
    expect_publish(sub, "wl7/will", b"taken over")
    pub = connected(broker, "wl7-p")
    sentinel(pub, sub, "wl7/will", b"marker")  # published once only


def test_will_published_on_protocol_error(broker):
    """[MQTT-3.1.2-8] The will is published when the server closes the connection because of a protocol
    error (here a PUBLISH with QoS 3)."""
    sub = subscriber(broker, "wl8-s", [("wl8/will", 1)])
    c = connected(broker, "wl8-c", will_topic="wl8/will", will_payload=b"bad client", will_qos=1)
    c.send(m.publish("wl8/x", b"x", qos=3, packet_id=1))
    expect_closed_silently(c)
    expect_publish(sub, "wl8/will", b"bad client")


def test_will_of_new_connection_replaces_old_one(broker):
    """[MQTT-3.1.2-8] The will is associated with the network connection: after a takeover only the new connection's will is
    published when the new connection drops (the old one's was published at the takeover)."""
    sub = subscriber(broker, "wl9-s", [("wl9/will", 1)])
    old = connected(broker, "wl9-c", will_topic="wl9/will", will_payload=b"old", will_qos=1)
    new = raw(broker)
    assert new.connect("wl9-c", will_topic="wl9/will", will_payload=b"new", will_qos=1).fields["reason"] == 0
    expect_closed_silently(old)
    expect_publish(sub, "wl9/will", b"old")
    drop(broker, new, "wl9-c")
    expect_publish(sub, "wl9/will", b"new")
    pub = connected(broker, "wl9-p")
    sentinel(pub, sub, "wl9/will", b"marker")


def test_v31_will_published_on_abnormal_close(broker):
    """MQTT 3.1: the will of a 3.1 client is published when its connection drops."""
    sub = subscriber(broker, "wl10-s", [("wl10/will", 1)])
    c = connected(broker, "wl10-c", version=3, will_topic="wl10/will", will_payload=b"v31 gone", will_qos=1)
    drop(broker, c, "wl10-c")
    expect_publish(sub, "wl10/will", b"v31 gone")
