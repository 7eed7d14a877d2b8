"""Interoperability: Debian's mosquitto_pub / mosquitto_sub (2.0.11) against petrel, in MQTT 3.1.1 and 5.0,
and mixed with paho-mqtt.

mosquitto_sub runs with -d, so the tests await its SUBACK ("Subscribed (mid: 1): ...") before publishing,
and with -C N -W 5 so it always ends by itself. Absence of a message is checked by publishing a marker
afterwards on the same topic: whatever the broker would (wrongly) send first would arrive before it.
"""
from __future__ import annotations

import json
import os

import pytest

import mqttclients as mc
from mqttclients import V311, V5, mosquitto_pub

VERSIONS = pytest.mark.parametrize("version", [V311, V5])

FMT = "%t|%q|%r|%p"  # topic | qos | retain | payload


@VERSIONS
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pub_sub_roundtrip(broker, mosq_sub, version, qos):
    """A message published by mosquitto_pub at QoS q reaches a QoS 2 mosquitto_sub at QoS q with its exact
    payload [MQTT-3.3.1-1..3, MQTT-4.3; 5.0: 3.8.4 QoS of the delivered message = min(published, granted)]."""
    sub = mosq_sub(broker.port, ["rt/a"], client_id=f"sub{qos}", version=version, qos=2, count=1, fmt=FMT)
    assert sub.wait_subscribed() == [2]
    mosquitto_pub(broker.port, "rt/a", message=f"hello qos {qos}", client_id=f"pub{qos}", version=version, qos=qos)
    assert sub.messages(1) == [f"rt/a|{qos}|0|hello qos {qos}".encode()]
    assert sub.wait() == 0


@VERSIONS
def test_qos_downgraded_to_subscription(broker, mosq_sub, version):
    """A QoS 2 message is delivered at the subscription's QoS 1 (the minimum of the two) [MQTT-3.8.4-6 (3.1.1);
    5.0 section 3.8.4]."""
    sub = mosq_sub(broker.port, ["dg/a"], client_id="subdg", version=version, qos=1, count=1, fmt=FMT)
    assert sub.wait_subscribed() == [1]
    mosquitto_pub(broker.port, "dg/a", message="down", client_id="pubdg", version=version, qos=2)
    assert sub.messages(1) == [b"dg/a|1|0|down"]


@VERSIONS
def test_retained_delivered_to_late_subscriber(broker, mosq_sub, version):
    """A retained message is sent, with RETAIN=1, to a client subscribing afterwards
    [MQTT-3.3.1-6, MQTT-3.3.1-8 (3.1.1); MQTT-3.3.1-9 (5.0)]."""
    mosquitto_pub(broker.port, "ret/a", message="kept", client_id="pubret", version=version, qos=1, retain=True)
    sub = mosq_sub(broker.port, ["ret/#"], client_id="subret", version=version, qos=1, count=1, fmt=FMT)
    assert sub.messages(1) == [b"ret/a|1|1|kept"]
    assert sub.wait() == 0


@VERSIONS
def test_empty_retained_message_clears(broker, mosq_sub, version):
    """A zero-length retained PUBLISH (-r -n) removes the retained message: a later subscriber gets nothing
    retained, the next live message is the first it sees [MQTT-3.3.1-10, MQTT-3.3.1-11 (3.1.1);
    5.0 section 3.3.1.3]."""
    mosquitto_pub(broker.port, "clr/a", message="old", client_id="pubold", version=version, qos=1, retain=True)
    mosquitto_pub(broker.port, "clr/a", client_id="pubclr", version=version, qos=1, retain=True, extra=["-n"])
    sub = mosq_sub(broker.port, ["clr/a"], client_id="subclr", version=version, qos=1, count=1, fmt=FMT)
    assert sub.wait_subscribed() == [1]
    mosquitto_pub(broker.port, "clr/a", message="marker", client_id="pubmark", version=version, qos=1)
    assert sub.messages(1) == [b"clr/a|1|0|marker"]


@VERSIONS
def test_pub_lines_from_stdin(broker, mosq_sub, version):
    """mosquitto_pub -l sends one message per stdin line over one connection; they arrive in order
    [MQTT-4.6.0-5 (3.1.1) / MQTT-4.6.0-5 (5.0): ordered topic for QoS 1]."""
    sub = mosq_sub(broker.port, ["lines"], client_id="sublines", version=version, qos=1, count=4)
    assert sub.wait_subscribed() == [1]
    mosquitto_pub(broker.port, "lines", client_id="publines", version=version, qos=1, extra=["-l"],
                  stdin=b"one\ntwo\nthree\nfour\n")
    assert sub.messages(4) == [b"one", b"two", b"three", b"four"]
    assert sub.wait() == 0


@VERSIONS
def test_large_payload_from_file(broker, mosq_sub, version, tmp_path):
    """A 200 KB binary payload sent with -f arrives intact (the remaining length is a 3-byte variable byte
    integer) [MQTT-2.2.3 / 5.0 1.5.5; payload delivered unaltered]."""
    data = os.urandom(200 * 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    sub = mosq_sub(broker.port, ["big"], client_id="subbig", version=version, qos=1, count=1, fmt="%l|%x")
    assert sub.wait_subscribed() == [1]
    mosquitto_pub(broker.port, "big", client_id="pubbig", version=version, qos=1, extra=["-f", str(path)])
    (line,) = sub.messages(1)
    length, hexdata = line.split(b"|")
    assert int(length) == len(data)
    assert bytes.fromhex(hexdata.decode()) == data


@VERSIONS
def test_wildcard_subscriptions_verbose(broker, mosq_sub, version):
    """'+' matches exactly one level and '#' also matches the parent level; -v prints "topic payload";
    non-matching topics are not delivered [MQTT-4.7.1-2, MQTT-4.7.1-3]."""
    sub = mosq_sub(broker.port, ["sport/+/score", "news/#"], client_id="subwild", version=version, qos=1,
                   count=3, verbose=True)
    assert sub.wait_subscribed() == [1, 1]
    for topic, payload in [("sport/tennis/score", "15-0"), ("sport/tennis/player1", "no"), ("sport/score", "no"),
                           ("news", "parent"), ("newsx/a", "no"), ("news/a/b", "deep")]:
        mosquitto_pub(broker.port, topic, message=payload, client_id="pubwild", version=version, qos=1)
    assert sub.messages(3) == [b"sport/tennis/score 15-0", b"news parent", b"news/a/b deep"]
    assert sub.wait() == 0


@VERSIONS
def test_dollar_topics_not_matched_by_hash(broker, mosq_sub, version):
    """A '#' subscription does not receive topics starting with '$' [MQTT-4.7.2-1]; petrel does not route
    clients' publishes to $SYS either."""
    sub = mosq_sub(broker.port, ["#"], client_id="subhash", version=version, qos=1, count=1, verbose=True)
    assert sub.wait_subscribed() == [1]
    mosquitto_pub(broker.port, "$SYS/fake", message="no", client_id="pubdollar", version=version, qos=1)
    mosquitto_pub(broker.port, "$other/x", message="no", client_id="pubdollar", version=version, qos=1)
    mosquitto_pub(broker.port, "plain", message="yes", client_id="pubdollar", version=version, qos=1)
    assert sub.messages(1) == [b"plain yes"]


def test_v5_user_properties_forwarded_in_order(broker, mosq_sub):
    """User properties (including a repeated key) are forwarded unaltered and in order [MQTT-3.3.2-17,
    MQTT-3.3.2-18]; mosquitto_sub prints them with %P."""
    sub = mosq_sub(broker.port, ["up"], client_id="subup", version=V5, qos=1, count=1, fmt="%P|%p")
    assert sub.wait_subscribed() == [1]
    mosquitto_pub(broker.port, "up", message="x", client_id="pubup", version=V5, qos=1,
                  extra=["-D", "publish", "user-property", "k", "v",
                         "-D", "publish", "user-property", "b", "2",
                         "-D", "publish", "user-property", "k", "v2"])
    assert sub.messages(1) == [b"k:v b:2 k:v2|x"]


def test_v5_publish_properties_json(broker, mosq_sub):
    """Payload format indicator, content type, response topic, correlation data and user properties are
    forwarded; the message expiry interval is forwarded reduced by the time held [MQTT-3.3.2-4, MQTT-3.3.2-6,
    MQTT-3.3.2-15, MQTT-3.3.2-16, MQTT-3.3.2-17, MQTT-3.3.2-20]. Checked through mosquitto_sub's %j JSON."""
    sub = mosq_sub(broker.port, ["js/#"], client_id="subjs", version=V5, qos=1, count=1, fmt="%j")
    assert sub.wait_subscribed() == [1]
    mosquitto_pub(broker.port, "js/a", message='{"t":21}', client_id="pubjs", version=V5, qos=1,
                  extra=["-D", "publish", "payload-format-indicator", "1",
                         "-D", "publish", "content-type", "application/json",
                         "-D", "publish", "response-topic", "reply/here",
                         "-D", "publish", "correlation-data", "corr-7",
                         "-D", "publish", "message-expiry-interval", "100",
                         "-D", "publish", "user-property", "site", "lab"])
    (line,) = sub.messages(1)
    doc = json.loads(line)
    assert (doc["topic"], doc["qos"], doc["retain"], doc["payload"]) == ("js/a", 1, 0, '{"t":21}')
    p = doc["properties"]
    assert p["payload-format-indicator"] == 1
    assert p["content-type"] == "application/json"
    assert p["response-topic"] == "reply/here"
    assert p["correlation-data"] == "corr-7"
    assert p["user-properties"] == {"site": "lab"}
    assert 99 <= p["message-expiry-interval"] <= 100


def test_v5_subscription_identifier(broker, mosq_sub):
    """A subscription identifier given in SUBSCRIBE comes back in the matching PUBLISH [MQTT-3.3.4-3];
    mosquitto_sub prints it with %S."""
    sub = mosq_sub(broker.port, ["sid/#"], client_id="subsid", version=V5, qos=1, count=1, fmt="%S|%p",
                   extra=["-D", "subscribe", "subscription-identifier", "4242"])
    assert sub.wait_subscribed() == [1]
    mosquitto_pub(broker.port, "sid/x", message="id", client_id="pubsid", version=V5, qos=1)
    assert sub.messages(1) == [b"4242|id"]


def test_v5_properties_not_sent_to_v311_subscriber(broker, mosq_sub):
    """A v5 message with properties reaches a 3.1.1 subscriber as a plain 3.1.1 PUBLISH (mosquitto_sub would
    fail to parse v5 properties in a 3.1.1 session) [MQTT 3.1.1 section 3.3]."""
    sub = mosq_sub(broker.port, ["mix/p"], client_id="sub311p", version=V311, qos=1, count=1, fmt=FMT)
    assert sub.wait_subscribed() == [1]
    mosquitto_pub(broker.port, "mix/p", message="with props", client_id="pub5p", version=V5, qos=1,
                  extra=["-D", "publish", "user-property", "k", "v",
                         "-D", "publish", "content-type", "text/plain"])
    assert sub.messages(1) == [b"mix/p|1|0|with props"]
    assert sub.wait() == 0


# --------------------------------------------------------------------------- mixed with paho

def test_paho_v5_publisher_to_mosquitto_sub_v311(broker, mosq_sub, paho):
    """A paho MQTT 5 publisher reaches a mosquitto_sub 3.1.1 subscriber; QoS 2 end to end, payload exact
    [MQTT-4.3.3; protocol versions interoperate through the broker]."""
    sub = mosq_sub(broker.port, ["mix/a"], client_id="mixsub311", version=V311, qos=2, count=1, fmt=FMT)
    assert sub.wait_subscribed() == [2]
    pub = paho(broker.port, "mixpub5", mc.mqtt.MQTTv5)
    _flags, rc, _props = pub.connect()
    assert rc == 0
    pub.publish("mix/a", b"from paho v5", qos=2,
                properties=mc.props(UserProperty=[("k", "v")], ContentType="text/plain"))
    assert sub.messages(1) == [b"mix/a|2|0|from paho v5"]
    assert sub.wait() == 0


def test_mosquitto_pub_v311_to_paho_v5(broker, paho):
    """mosquitto_pub 3.1.1 reaches a paho MQTT 5 subscriber: exact payload and QoS, and no v5 application
    properties invented on the way [5.0 section 3.3.2.3]."""
    sub = paho(broker.port, "mixsub5", mc.mqtt.MQTTv5)
    assert sub.connect()[1] == 0
    assert sub.subscribe("mix/b", 2) == [2]
    mosquitto_pub(broker.port, "mix/b", message="from mosquitto 3.1.1", client_id="mixpub311", version=V311, qos=2)
    msg = sub.message()
    assert (msg.topic, msg.payload, msg.qos, msg.retain) == ("mix/b", b"from mosquitto 3.1.1", 2, False)
    for name in ("ContentType", "ResponseTopic", "CorrelationData", "UserProperty", "MessageExpiryInterval"):
        assert not hasattr(msg.properties, name), name


def test_mosquitto_pub_v5_to_paho_v311(broker, paho):
    """mosquitto_pub MQTT 5 with properties reaches a paho 3.1.1 subscriber with the exact payload."""
    sub = paho(broker.port, "mixsub311b")
    assert sub.connect()[1] == 0
    assert sub.subscribe("mix/c", 1) == [1]
    mosquitto_pub(broker.port, "mix/c", message="from mosquitto v5", client_id="mixpub5b", version=V5, qos=1,
                  extra=["-D", "publish", "user-property", "k", "v"])
    msg = sub.message()
    assert (msg.topic, msg.payload, msg.qos) == ("mix/c", b"from mosquitto v5", 1)
