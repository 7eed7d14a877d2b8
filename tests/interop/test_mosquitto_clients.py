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


def test_mqttv31_clients(broker, mosq_sub):
    """MQTT 3.1 (protocol name MQIsdp, level 3) clients are served too: a QoS 2 round trip between
    mosquitto_pub/mosquitto_sub -V mqttv31, and to a 3.1.1 subscriber."""
    sub31 = mosq_sub(broker.port, ["v31/t"], client_id="sub31", version="mqttv31", qos=2, count=1, fmt=FMT)
    sub311 = mosq_sub(broker.port, ["v31/t"], client_id="sub311", version=V311, qos=2, count=1, fmt=FMT)
    assert sub31.wait_subscribed() == [2]
    assert sub311.wait_subscribed() == [2]
    mosquitto_pub(broker.port, "v31/t", message="old protocol", client_id="pub31", version="mqttv31", qos=2)
    assert sub31.messages(1) == [b"v31/t|2|0|old protocol"]
    assert sub311.messages(1) == [b"v31/t|2|0|old protocol"]


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
def test_dollar_topics_not_matched_by_hash(make_broker, mosq_sub, version):
    """Filters starting with '#' or '+' do not match topics starting with '$' [MQTT-4.7.2-1]: neither the
    retained $SYS values at subscribe time nor the next live $SYS publication reach '#' / '+/broker/#'
    subscribers, while an explicit '$SYS/...' subscriber gets them; clients' publishes to $SYS are not routed."""
    broker = make_broker("[sys]\ninterval = 1\n")
    wild = mosq_sub(broker.port, ["#", "+/broker/#"], client_id="subhash", version=version, qos=1, count=1,
                    fmt="%r|%t|%p")
    assert wild.wait_subscribed() == [1, 1]
    explicit = mosq_sub(broker.port, ["$SYS/broker/uptime"], client_id="subsysx", version=version, qos=0,
                        count=2, fmt="%r|%t")
    # the retained value, then a live one: a $SYS publication happened after `wild` subscribed
    assert explicit.messages(2) == [b"1|$SYS/broker/uptime", b"0|$SYS/broker/uptime"]
    mosquitto_pub(broker.port, "$SYS/fake", message="no", client_id="pubdollar", version=version, qos=1)
    mosquitto_pub(broker.port, "plain", message="yes", client_id="pubdollar", version=version, qos=1)
    assert wild.messages(1) == [b"0|plain|yes"]


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


@VERSIONS
def test_empty_payload_message(broker, mosq_sub, version):
    """A zero-length, non-retained message (-n) is delivered as an empty message [MQTT-3.3.3: a zero length
    payload is valid]."""
    sub = mosq_sub(broker.port, ["empty"], client_id="subempty", version=version, qos=1, count=1, fmt="%t|%l|%r")
    assert sub.wait_subscribed() == [1]
    mosquitto_pub(broker.port, "empty", client_id="pubempty", version=version, qos=1, extra=["-n"])
    assert sub.messages(1) == [b"empty|0|0"]


@VERSIONS
def test_utf8_topics_and_wildcards(broker, mosq_sub, version):
    """Topics are UTF-8; multi-byte characters are matched level by level [MQTT-1.5.3, MQTT-4.7.3-4]."""
    sub = mosq_sub(broker.port, ["maison/+/°C"], client_id="subutf8", version=version, qos=1, count=1,
                   verbose=True)
    assert sub.wait_subscribed() == [1]
    mosquitto_pub(broker.port, "maison/température/°F", message="no", client_id="pubutf8", version=version, qos=1)
    mosquitto_pub(broker.port, "maison/température/°C", message="21,5", client_id="pubutf8", version=version,
                  qos=1)
    assert sub.messages(1) == ["maison/température/°C 21,5".encode()]


@VERSIONS
def test_overlapping_subscriptions_one_copy(broker, mosq_sub, version):
    """Overlapping subscriptions of one client yield ONE copy at the highest granted QoS (petrel's documented
    choice, [MQTT-3.3.5-1] 3.1.1 / [MQTT-3.3.4-2] 5.0)."""
    sub = mosq_sub(broker.port, ["ovm/#", "ovm/+"], client_id="subovm", version=version, qos=1, count=2, fmt=FMT)
    assert sub.wait_subscribed() == [1, 1]
    mosquitto_pub(broker.port, "ovm/a", message="once", client_id="pubovm", version=version, qos=1)
    mosquitto_pub(broker.port, "ovm/b", message="marker", client_id="pubovm", version=version, qos=1)
    assert sub.messages(2) == [b"ovm/a|1|0|once", b"ovm/b|1|0|marker"]


@VERSIONS
def test_persistent_session_with_c(broker, mosq_sub, version):
    """mosquitto_sub -c (clean session 0; in v5 clean start 0 and an unlimited session expiry) keeps the session:
    QoS 1 messages published while it is away are delivered when it comes back [MQTT-3.1.2-4, MQTT-3.1.2-5;
    MQTT-3.1.2-23]."""
    first = mosq_sub(broker.port, ["pc/t"], client_id="subpc", version=version, qos=1, extra=["-c", "-E"])
    assert first.wait_subscribed() == [1]
    assert first.wait() == 0
    broker.wait_log("client disconnected: id=subpc ")
    mosquitto_pub(broker.port, "pc/t", message="while away 1", client_id="pubpc", version=version, qos=1)
    mosquitto_pub(broker.port, "pc/t", message="while away 2", client_id="pubpc", version=version, qos=1)
    again = mosq_sub(broker.port, ["pc/t"], client_id="subpc", version=version, qos=1, count=2, fmt=FMT,
                     extra=["-c"])
    assert again.messages(2) == [b"pc/t|1|0|while away 1", b"pc/t|1|0|while away 2"]
    assert again.wait() == 0


def test_sys_topics_readable(make_broker, mosq_sub):
    """$SYS/broker/... statistics are published retained every [sys] interval; an explicit $SYS subscription
    gets the retained values at once, then the next publication live (RETAIN=0), where clients/connected counts
    this subscriber [MQTT-4.7.2-1: '$' topics are matched by filters that start with '$'; MQTT-3.3.1-8/-9]."""
    broker = make_broker("[sys]\ninterval = 1\n")
    sub = mosq_sub(broker.port, ["$SYS/broker/version", "$SYS/broker/clients/connected"], client_id="subsys",
                   version=V311, qos=0, count=4, fmt="%r|%t|%p")
    retained = sorted(sub.messages(2))
    assert [line.rsplit(b"|", 1)[0] for line in retained] == [b"1|$SYS/broker/clients/connected",
                                                               b"1|$SYS/broker/version"]
    assert retained[1].rsplit(b"|", 1)[1]  # a non-empty version string
    live = sorted(sub.messages(2))
    assert [line.rsplit(b"|", 1)[0] for line in live] == [b"0|$SYS/broker/clients/connected",
                                                           b"0|$SYS/broker/version"]
    assert int(live[0].rsplit(b"|", 1)[1]) >= 1
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
