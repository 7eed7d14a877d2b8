"""MQTT 5.0 section 3.2.2.3: the properties petrel announces in CONNACK."""
import mqttraw as m


def test_default_maximum_packet_size(broker, v5):
    """[3.2.2.3.6] CONNACK carries Maximum Packet Size = max_packet_size (default 1048576)."""
    c = v5.connect(broker, "ca-mps")
    assert c.connack.fields["props"].get(m.MAXIMUM_PACKET_SIZE) == 1048576


def test_default_topic_alias_maximum(broker, v5):
    """[3.2.2.3.8] CONNACK carries Topic Alias Maximum = topic_alias_maximum (default 64)."""
    c = v5.connect(broker, "ca-tam")
    assert c.connack.fields["props"].get(m.TOPIC_ALIAS_MAXIMUM) == 64


def test_default_receive_maximum(broker, v5):
    """[3.2.2.3.3] CONNACK carries Receive Maximum = receive_maximum (default 1024)."""
    c = v5.connect(broker, "ca-rm")
    assert c.connack.fields["props"].get(m.RECEIVE_MAXIMUM) == 1024


def test_configured_limits_are_announced(make_broker, v5):
    """[3.2.2.3.3] [3.2.2.3.6] [3.2.2.3.8] Configured limits are the values announced."""
    b = make_broker("[mqtt]\nmax_packet_size = 2048\nreceive_maximum = 7\ntopic_alias_maximum = 5\n")
    props = v5.connect(b, "ca-cfg").connack.fields["props"]
    assert props.get(m.MAXIMUM_PACKET_SIZE) == 2048
    assert props.get(m.RECEIVE_MAXIMUM) == 7
    assert props.get(m.TOPIC_ALIAS_MAXIMUM) == 5


def test_topic_alias_maximum_zero_means_absent_or_zero(make_broker, v5):
    """[3.2.2.3.8] With topic aliases disabled the CONNACK says Topic Alias Maximum 0 (absent means 0)."""
    b = make_broker("[mqtt]\ntopic_alias_maximum = 0\n")
    props = v5.connect(b, "ca-tam0").connack.fields["props"]
    assert props.get(m.TOPIC_ALIAS_MAXIMUM, 0) == 0


def test_maximum_qos_announced(make_broker, v5):
    """[MQTT-3.2.2-9] A broker that does not support QoS 2 announces Maximum QoS 1."""
    b = make_broker("[mqtt]\nmax_qos = 1\n")
    props = v5.connect(b, "ca-mqos").connack.fields["props"]
    assert props.get(m.MAXIMUM_QOS) == 1


def test_maximum_qos_absent_when_qos2_supported(broker, v5):
    """[3.2.2.3.4] Maximum QoS can only be 0 or 1 on the wire; a broker supporting QoS 2 omits it (absent = 2)."""
    props = v5.connect(broker, "ca-mqos2").connack.fields["props"]
    assert m.MAXIMUM_QOS not in props


def test_retain_not_available_announced(make_broker, v5):
    """[3.2.2.3.5] A broker without retained messages announces Retain Available 0."""
    b = make_broker("[mqtt]\nretain_available = false\n")
    props = v5.connect(b, "ca-ret").connack.fields["props"]
    assert props.get(m.RETAIN_AVAILABLE) == 0


def test_session_expiry_capped_by_broker_is_announced(make_broker, v5):
    """[3.2.2.3.2] A Session Expiry Interval above the broker's maximum is answered with the value used."""
    b = make_broker("[mqtt]\nmax_session_expiry = 30\n")
    c = v5.connect(b, "ca-sei", properties=[(m.SESSION_EXPIRY_INTERVAL, 3600)])
    assert c.connack.fields["props"].get(m.SESSION_EXPIRY_INTERVAL) == 30


def test_session_expiry_within_maximum_not_changed(broker, v5):
    """[3.2.2.3.2] If the broker uses the client's Session Expiry Interval it need not send one; if sent it is equal."""
    c = v5.connect(broker, "ca-sei2", properties=[(m.SESSION_EXPIRY_INTERVAL, 60)])
    assert c.connack.fields["props"].get(m.SESSION_EXPIRY_INTERVAL, 60) == 60


def test_maximum_qos_enforced_on_publish(make_broker, v5):
    """[MQTT-3.2.2-11] A PUBLISH above the announced Maximum QoS is answered with DISCONNECT 0x9B."""
    b = make_broker("[mqtt]\nmax_qos = 1\n")
    c = v5.connect(b, "ca-q2")
    c.send(m.publish("t", b"x", qos=2, packet_id=1, version=5))
    v5.expect_disconnect(c, 0x9B)
    v5.assert_serving(b)


def test_retain_not_available_enforced(make_broker, v5):
    """[MQTT-3.2.2-14] A retained PUBLISH when Retain Available is 0: DISCONNECT 0x9A (Retain not supported)."""
    b = make_broker("[mqtt]\nretain_available = false\n")
    c = v5.connect(b, "ca-r")
    c.send(m.publish("t", b"x", qos=0, retain=True, version=5))
    v5.expect_disconnect(c, 0x9A)
    v5.assert_serving(b)


def test_granted_qos_limited_by_maximum_qos(make_broker, v5):
    """[3.8.4] [3.2.2.3.4] A subscription at QoS 2 on a Maximum-QoS-1 broker is granted QoS 1."""
    b = make_broker("[mqtt]\nmax_qos = 1\n")
    c = v5.connect(b, "ca-sq")
    assert v5.subscribe(c, "t/#", 2) == [1]


def test_will_qos_above_maximum_qos_refused(make_broker, v5):
    """[MQTT-3.2.2-12] A Will QoS the broker does not support (2 with Maximum QoS 1): CONNACK 0x9B, close."""
    b = make_broker("[mqtt]\nmax_qos = 1\n")
    c = v5.client(b)
    c.send(m.connect("ca-wq", version=5, will_topic="w", will_payload=b"x", will_qos=2))
    v5.expect_refused(c, 0x9B)


def test_will_retain_without_retain_available_refused(make_broker, v5):
    """[MQTT-3.2.2-13] Will Retain 1 on a broker without retained messages: CONNACK 0x9A, close."""
    b = make_broker("[mqtt]\nretain_available = false\n")
    c = v5.client(b)
    c.send(m.connect("ca-wr", version=5, will_topic="w", will_payload=b"x", will_retain=True))
    v5.expect_refused(c, 0x9A)
