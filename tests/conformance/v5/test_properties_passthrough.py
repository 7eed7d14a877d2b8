"""MQTT 5.0 section 3.3.2.3: PUBLISH properties the broker forwards unchanged; 4.10 Request / Response."""
import pytest

import mqttraw as m


def _roundtrip(v5, broker, tag, properties, qos=1, payload=b"body"):
    s = v5.connect(broker, f"pp-s-{tag}")
    v5.subscribe(s, f"pp/{tag}", 2)
    p = v5.connect(broker, f"pp-p-{tag}")
    v5.publish(p, f"pp/{tag}", payload, qos=qos, properties=properties)
    got = v5.receive(s)
    assert got.fields["payload"] == payload
    return got.fields["props"]


def test_payload_format_indicator_forwarded(broker, v5):
    """[MQTT-3.3.2-4] The Payload Format Indicator is sent unaltered to all subscribers."""
    props = _roundtrip(v5, broker, "pfi", [(m.PAYLOAD_FORMAT_INDICATOR, 1)], payload="ünïcode".encode())
    assert props.get(m.PAYLOAD_FORMAT_INDICATOR) == 1


def test_content_type_forwarded(broker, v5):
    """[MQTT-3.3.2-20] The Content Type is sent unaltered to all subscribers."""
    props = _roundtrip(v5, broker, "ct", [(m.CONTENT_TYPE, "application/json; charset=utf-8")])
    assert props.get(m.CONTENT_TYPE) == "application/json; charset=utf-8"


def test_response_topic_forwarded(broker, v5):
    """[MQTT-3.3.2-15] The Response Topic is sent unaltered to all subscribers."""
    props = _roundtrip(v5, broker, "rt", [(m.RESPONSE_TOPIC, "replies/client-42")])
    assert props.get(m.RESPONSE_TOPIC) == "replies/client-42"


def test_correlation_data_forwarded(broker, v5):
    """[MQTT-3.3.2-16] The Correlation Data (binary, any bytes) is sent unaltered to all subscribers."""
    data = bytes(range(256))
    props = _roundtrip(v5, broker, "cd", [(m.CORRELATION_DATA, data)])
    assert props.get(m.CORRELATION_DATA) == data


def test_user_properties_order_and_duplicates_kept(broker, v5):
    """[MQTT-3.3.2-17] [MQTT-3.3.2-18] User Properties are forwarded unaltered, in order, duplicates kept."""
    ups = [("b", "2"), ("a", "1"), ("b", "2"), ("a", "3"), ("", ""), ("ключ", "значение")]
    props = _roundtrip(v5, broker, "up", [(m.USER_PROPERTY, kv) for kv in ups])
    assert props.get(m.USER_PROPERTY) == ups


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_all_properties_together_at_each_qos(broker, v5, qos):
    """[3.3.2.3] All forwardable properties together arrive exactly, whatever the QoS."""
    sent = [(m.PAYLOAD_FORMAT_INDICATOR, 0), (m.CONTENT_TYPE, "x/y"), (m.RESPONSE_TOPIC, "r/t"),
            (m.CORRELATION_DATA, b"\x00id"), (m.USER_PROPERTY, ("k", "v")), (m.USER_PROPERTY, ("k", "w"))]
    props = _roundtrip(v5, broker, f"all{qos}", sent, qos=qos)
    assert props.get(m.PAYLOAD_FORMAT_INDICATOR) == 0
    assert props.get(m.CONTENT_TYPE) == "x/y"
    assert props.get(m.RESPONSE_TOPIC) == "r/t"
    assert props.get(m.CORRELATION_DATA) == b"\x00id"
    assert props.get(m.USER_PROPERTY) == [("k", "v"), ("k", "w")]


def test_properties_reach_every_subscriber(broker, v5):
    """[MQTT-3.3.2-17] [MQTT-3.3.2-20] Each of several subscribers (v5) receives the same properties."""
    subs = []
    for i in range(3):
        s = v5.connect(broker, f"pp-multi{i}")
        v5.subscribe(s, "pp/multi", i % 3)
        subs.append(s)
    p = v5.connect(broker, "pp-pmulti")
    v5.publish(p, "pp/multi", b"x", qos=2, properties=[(m.CONTENT_TYPE, "t"), (m.USER_PROPERTY, ("n", "1"))])
    for s in subs:
        props = v5.receive(s).fields["props"]
        assert props.get(m.CONTENT_TYPE) == "t" and props.get(m.USER_PROPERTY) == [("n", "1")]


def test_properties_kept_on_retained_message(broker, v5):
    """[3.3.1.3] [MQTT-3.3.2-17] A retained message keeps its properties when sent to a later subscriber."""
    p = v5.connect(broker, "pp-pret")
    v5.publish(p, "pp/ret", b"r", qos=1, retain=True,
               properties=[(m.CONTENT_TYPE, "ret/type"), (m.USER_PROPERTY, ("x", "y"))])
    s = v5.connect(broker, "pp-sret")
    v5.subscribe(s, "pp/ret", 1)
    props = v5.receive(s).fields["props"]
    assert props.get(m.CONTENT_TYPE) == "ret/type" and props.get(m.USER_PROPERTY) == [("x", "y")]


def test_properties_kept_on_redelivery(broker, v5):
    """[4.4] A QoS 1 message re-sent (DUP=1) after a reconnect still carries its properties."""
    expiry = [(m.SESSION_EXPIRY_INTERVAL, 60)]
    s = v5.connect(broker, "pp-sdup", properties=expiry)
    v5.subscribe(s, "pp/dup", 1)
    p = v5.connect(broker, "pp-pdup")
    v5.publish(p, "pp/dup", b"d", qos=1, properties=[(m.CORRELATION_DATA, b"cid"), (m.USER_PROPERTY, ("a", "b"))])
    s.expect(m.PUBLISH)
    s.close()
    s2 = v5.connect(broker, "pp-sdup", clean=False, properties=expiry)
    again = s2.expect(m.PUBLISH)
    assert again.fields["dup"] is True
    assert again.fields["props"].get(m.CORRELATION_DATA) == b"cid"
    assert again.fields["props"].get(m.USER_PROPERTY) == [("a", "b")]


def test_request_response(broker, v5):
    """[4.10] Request/response: Response Topic and Correlation Data reach the responder unchanged; its reply,
    published to the Response Topic with the same Correlation Data, reaches the requester."""
    requester = v5.connect(broker, "pp-req")
    v5.subscribe(requester, "pp/resp/req", 1)
    responder = v5.connect(broker, "pp-svc")
    v5.subscribe(responder, "pp/svc", 1)
    corr = b"\x01\x02req-77"
    v5.publish(requester, "pp/svc", b"question", qos=1,
               properties=[(m.RESPONSE_TOPIC, "pp/resp/req"), (m.CORRELATION_DATA, corr)])
    req = v5.receive(responder)
    assert req.fields["payload"] == b"question"
    assert req.fields["props"].get(m.RESPONSE_TOPIC) == "pp/resp/req"
    assert req.fields["props"].get(m.CORRELATION_DATA) == corr
    v5.publish(responder, req.fields["props"][m.RESPONSE_TOPIC], b"answer", qos=1,
               properties=[(m.CORRELATION_DATA, req.fields["props"][m.CORRELATION_DATA])])
    reply = v5.receive(requester)
    assert (reply.fields["topic"], reply.fields["payload"]) == ("pp/resp/req", b"answer")
    assert reply.fields["props"].get(m.CORRELATION_DATA) == corr


def test_no_properties_added(broker, v5):
    """[3.3.2.3] A PUBLISH without properties arrives without properties (none invented by the broker)."""
    props = _roundtrip(v5, broker, "none", None)
    assert props == {}
