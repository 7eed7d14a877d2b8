"""CONNECT / CONNACK (MQTT 3.1.1 sections 3.1 and 3.2; MQTT 3.1 where it differs).

petrel's choices: a malformed CONNECT or a protocol violation in it closes the
connection without an answer; an unsupported protocol level gets CONNACK 0x01;
a refused CONNECT gets its CONNACK and then the connection is closed.
"""
import time

import pytest

import mqttraw as m

from .helpers import (Stopwatch, assert_serving, connected, disconnect, expect_closed_silently, raw,
                      subscriber, expect_publish, publish_acked)


def test_connect_accepted_with_connack_0(broker):
    """[MQTT-3.2.0-1] [MQTT-3.2.2-1] A valid 3.1.1 CONNECT gets CONNACK 20 02 00 00 (accepted, no session)."""
    c = raw(broker)
    c.send(m.connect("cn-ok"))
    p = c.recv()
    assert (p.type, p.flags, p.body) == (m.CONNACK, 0, b"\x00\x00")


def test_connect_v31_mqisdp_level3_accepted(broker):
    """MQTT 3.1: protocol name "MQIsdp" with level 3 is accepted with CONNACK return code 0."""
    c = raw(broker, version=3)
    c.send(m.connect("cn-v31", version=3))
    p = c.recv()
    assert (p.type, p.flags, p.body) == (m.CONNACK, 0, b"\x00\x00")


def test_v31_client_publish_subscribe_roundtrip(broker):
    """MQTT 3.1: a 3.1 subscriber and a 3.1 publisher exchange a QoS 1 message."""
    sub = connected(broker, "cn-v31-sub", version=3)
    sub.send(m.subscribe(1, [("v31/t", 1)]))
    assert sub.expect(m.SUBACK).fields["reasons"] == [1]
    pub = connected(broker, "cn-v31-pub", version=3)
    publish_acked(pub, "v31/t", b"old protocol", qos=1, packet_id=3)
    p = expect_publish(sub, "v31/t", b"old protocol")
    assert p.fields["qos"] == 1


def test_v31_connack_first_byte_reserved_on_resumed_session(broker):
    """MQTT 3.1 section 3.2: the first CONNACK byte is reserved (no Session Present flag in 3.1), so it is 0
    even when a clean-session-0 client resumes a stored session."""
    c = connected(broker, "cn-v31-keep", version=3, clean=False)
    disconnect(broker, c, "cn-v31-keep")
    c2 = raw(broker, version=3)
    c2.send(m.connect("cn-v31-keep", version=3, clean=False))
    p = c2.expect(m.CONNACK)
    assert p.body == b"\x00\x00", p


@pytest.mark.parametrize("name,level", [(b"MQTT", 0), (b"MQTT", 3), (b"MQTT", 6), (b"MQTT", 255)])
def test_unsupported_protocol_level_connack_0x01(broker, name, level):
    """[MQTT-3.1.2-2] An unsupported protocol level gets CONNACK return code 0x01, then the connection closes."""
    c = raw(broker)
    c.send(m.connect(f"cn-level-{level}", version=level, protocol_name=name))
    got = c.expect_closed()
    assert [(p.type, p.body) for p in got] == [(m.CONNACK, b"\x00\x01")], got


def test_unknown_protocol_name_closed_without_connack(broker):
    """[MQTT-3.1.2-1] A CONNECT with a protocol name that is neither "MQTT" nor "MQIsdp" is not processed as
    MQTT: petrel closes the connection without an answer."""
    c = raw(broker)
    c.send(m.connect("cn-name", version=4, protocol_name=b"MQTX"))
    expect_closed_silently(c)
    assert_serving(broker)


def test_empty_client_id_with_clean_session_accepted(broker):
    """[MQTT-3.1.3-6] A 3.1.1 CONNECT with a zero-byte client id and clean session 1 is accepted."""
    c = raw(broker)
    assert c.connect("", clean=True).fields == {"session_present": 0, "reason": 0, "props": {}}
    c.send(m.pingreq())
    c.expect(m.PINGRESP)


def test_empty_client_ids_get_distinct_identifiers(broker):
    """[MQTT-3.1.3-6] Each zero-byte client id gets a unique id: a second such client does not take over the
    first one, and both keep working."""
    a = raw(broker)
    assert a.connect("", clean=True).fields["reason"] == 0
    b = raw(broker)
    assert b.connect("", clean=True).fields["reason"] == 0
    a.send(m.pingreq())
    a.expect(m.PINGRESP)
    b.send(m.pingreq())
    b.expect(m.PINGRESP)


def test_empty_client_id_without_clean_session_refused_0x02(broker):
    """[MQTT-3.1.3-8] A zero-byte client id with clean session 0 gets CONNACK 0x02 (identifier rejected),
    then the connection closes."""
    c = raw(broker)
    c.send(m.connect("", clean=False))
    got = c.expect_closed()
    assert [(p.type, p.body) for p in got] == [(m.CONNACK, b"\x00\x02")], got


def test_v31_empty_client_id_refused_0x02(broker):
    """MQTT 3.1 requires a client id of 1 to 23 characters: a zero-byte one gets CONNACK 0x02."""
    c = raw(broker, version=3)
    c.send(m.connect("", version=3, clean=True))
    got = c.expect_closed()
    assert [(p.type, p.body) for p in got] == [(m.CONNACK, b"\x00\x02")], got


def test_client_id_of_23_allowed_characters_accepted(broker):
    """[MQTT-3.1.3-5] A client id of 1-23 characters from [0-9a-zA-Z] is accepted."""
    c = raw(broker)
    assert c.connect("0123456789abcdefghijXYZ").fields["reason"] == 0


def test_username_and_password_accepted(broker):
    """[MQTT-3.1.2-18..21] User name and password fields are read (no authentication configured: accepted)."""
    c = raw(broker)
    assert c.connect("cn-user", username="alice", password=b"\x00secret\xff").fields["reason"] == 0
    c.send(m.pingreq())
    c.expect(m.PINGRESP)


def test_reserved_connect_flag_closed(broker):
    """[MQTT-3.1.2-3] The reserved bit 0 of the Connect Flags must be 0, otherwise the connection is closed."""
    c = raw(broker)
    c.send(m.connect("cn-rsv", flags_override=0x03))
    expect_closed_silently(c)
    assert_serving(broker)


def test_connect_fixed_header_flags_nonzero_closed(broker):
    """[MQTT-2.2.2-1] [MQTT-2.2.2-2] CONNECT fixed-header flags are reserved (0000); others close the connection."""
    c = raw(broker)
    pkt = bytearray(m.connect("cn-hdr"))
    pkt[0] |= 0x01
    c.send(bytes(pkt))
    expect_closed_silently(c)
    assert_serving(broker)


def test_will_qos_without_will_flag_closed(broker):
    """[MQTT-3.1.2-13] With the Will Flag 0 the Will QoS must be 0: will QoS 1 alone closes the connection."""
    c = raw(broker)
    c.send(m.connect("cn-wq", flags_override=0x02 | 0x08))
    expect_closed_silently(c)
    assert_serving(broker)


def test_will_retain_without_will_flag_closed(broker):
    """[MQTT-3.1.2-15] With the Will Flag 0 the Will Retain must be 0: will retain alone closes the connection."""
    c = raw(broker)
    c.send(m.connect("cn-wr", flags_override=0x02 | 0x20))
    expect_closed_silently(c)
    assert_serving(broker)


def test_will_qos_3_closed(broker):
    """[MQTT-3.1.2-14] Will QoS 3 is invalid: the connection is closed."""
    c = raw(broker)
    c.send(m.connect("cn-wq3", will_topic="w/q3", will_payload=b"x", will_qos=3))
    expect_closed_silently(c)
    assert_serving(broker)


def test_will_topic_with_wildcard_refused(broker):
    """[MQTT-3.3.2-2] [MQTT-4.7.1-1] A will topic is a topic name, so wildcards are not allowed: the CONNECT is
    refused (any CONNACK has a non-zero return code) and the connection closed."""
    c = raw(broker)
    c.send(m.connect("cn-wwild", will_topic="w/#", will_payload=b"x"))
    got = c.expect_closed()
    assert all(p.type == m.CONNACK and p.body[1] != 0 for p in got), got
    assert len(got) <= 1
    assert_serving(broker)


def test_password_without_username_closed(broker):
    """[MQTT-3.1.2-22] If the User Name Flag is 0, the Password Flag must be 0: the connection is closed."""
    c = raw(broker)
    c.send(m.connect("cn-pw", password=b"secret"))
    expect_closed_silently(c)
    assert_serving(broker)


def test_second_connect_closed(broker):
    """[MQTT-3.1.0-2] A second CONNECT on a connection is a protocol violation: the connection is closed."""
    c = connected(broker, "cn-twice")
    c.send(m.connect("cn-twice"))
    expect_closed_silently(c)
    assert_serving(broker)


@pytest.mark.parametrize("first", [m.pingreq(), m.publish("a/b", b"x"), m.subscribe(1, [("a/b", 0)]),
                                   m.disconnect()], ids=["PINGREQ", "PUBLISH", "SUBSCRIBE", "DISCONNECT"])
def test_first_packet_not_connect_closed_without_answer(broker, first):
    """[MQTT-3.1.0-1] The first packet from the client must be CONNECT; otherwise the connection is closed
    without any answer."""
    c = raw(broker)
    c.send(first)
    expect_closed_silently(c)
    assert_serving(broker)


def test_keep_alive_above_maximum_refused_0x02(make_broker):
    """petrel (like Mosquitto): a 3.1.1 keep alive above [mqtt] max_keep_alive gets CONNACK 0x02, then close."""
    broker = make_broker("[mqtt]\nmax_keep_alive = 60\n")
    c = raw(broker)
    c.send(m.connect("cn-ka", keepalive=61))
    got = c.expect_closed()
    assert [(p.type, p.body) for p in got] == [(m.CONNACK, b"\x00\x02")], got


def test_keep_alive_at_maximum_accepted(make_broker):
    """A keep alive equal to [mqtt] max_keep_alive is accepted (boundary of the previous rule)."""
    broker = make_broker("[mqtt]\nmax_keep_alive = 60\n")
    c = raw(broker)
    assert c.connect("cn-ka60", keepalive=60).fields["reason"] == 0


def test_incomplete_connect_closed_after_connect_timeout(make_broker):
    """3.1.4: a CONNECT that never completes is closed after [mqtt] connect_timeout (1 s), without an answer."""
    broker = make_broker("[mqtt]\nconnect_timeout = 1\n")
    c = raw(broker, timeout=4)
    whole = m.connect("cn-slow")
    watch = Stopwatch()
    c.send(whole[:7])
    expect_closed_silently(c)
    assert 0.8 <= watch.elapsed() <= 3.0, watch.elapsed()


def test_silent_connection_closed_after_connect_timeout(make_broker):
    """3.1.4: a connection that sends nothing is closed after [mqtt] connect_timeout (1 s)."""
    broker = make_broker("[mqtt]\nconnect_timeout = 1\n")
    c = raw(broker, timeout=4)
    watch = Stopwatch()
    expect_closed_silently(c)
    assert 0.8 <= watch.elapsed() <= 3.0, watch.elapsed()


def test_connect_timeout_does_not_apply_after_connect(make_broker):
    """The connect timeout ends with the CONNECT: a connected client (keep alive 0) is still served after it."""
    broker = make_broker("[mqtt]\nconnect_timeout = 1\n")
    c = connected(broker, "cn-after", keepalive=0)
    sub = subscriber(broker, "cn-after-sub", [("after/t", 0)])
    # Outlive the connect timeout by waiting for an event that takes longer: a second client's timeout.
    idle = raw(broker, timeout=4)
    expect_closed_silently(idle)
    c.send(m.pingreq())
    c.expect(m.PINGRESP)
    sub.send(m.pingreq())
    sub.expect(m.PINGRESP)


def test_keep_alive_zero_refused_when_maximum_configured(make_broker):
    """petrel (like Mosquitto): keep alive 0 means "no limit", which exceeds a configured [mqtt] max_keep_alive,
    so a 3.1.1 client asking for it gets CONNACK 0x02."""
    broker = make_broker("[mqtt]\nmax_keep_alive = 60\n")
    c = raw(broker)
    c.send(m.connect("cn-ka0", keepalive=0))
    got = c.expect_closed()
    assert [(p.type, p.body) for p in got] == [(m.CONNACK, b"\x00\x02")], got


def test_empty_client_id_refused_when_disallowed(make_broker):
    """[MQTT-3.1.3-9] [mqtt] allow_empty_client_id = false: a zero-byte client id gets CONNACK 0x02 even with
    clean session 1."""
    broker = make_broker("[mqtt]\nallow_empty_client_id = false\n")
    c = raw(broker)
    c.send(m.connect("", clean=True))
    got = c.expect_closed()
    assert [(p.type, p.body) for p in got] == [(m.CONNACK, b"\x00\x02")], got


def test_data_after_refused_connect_not_processed(broker):
    """[MQTT-3.1.4-5] After refusing a CONNECT the server processes no further data from that connection: a
    PUBLISH sent right behind a refused CONNECT is not routed."""
    sub = subscriber(broker, "cn-refused-s", [("cn/refused", 1)])
    c = raw(broker)
    c.send(m.connect("", clean=False) + m.publish("cn/refused", b"must not arrive", qos=0))
    got = c.expect_closed()
    assert [(p.type, p.body) for p in got] == [(m.CONNACK, b"\x00\x02")], got
    pub = connected(broker, "cn-refused-p")
    publish_acked(pub, "cn/refused", b"marker", qos=1, packet_id=1)
    expect_publish(sub, "cn/refused", b"marker")


def test_packets_pipelined_behind_connect_are_processed(broker):
    """3.1.4: a client may send packets right after CONNECT without waiting for CONNACK; they are
    processed in order: CONNACK, then SUBACK, then the client's own message and the PINGRESP."""
    c = raw(broker)
    c.send(m.connect("cn-pipe") + m.subscribe(1, [("cn/pipe", 0)]) + m.publish("cn/pipe", b"self", qos=0)
           + m.pingreq())
    assert c.expect(m.CONNACK).fields["reason"] == 0
    assert c.expect(m.SUBACK).fields["reasons"] == [0]
    rest = {p.type: p for p in (c.recv(), c.recv())}
    assert rest.keys() == {m.PUBLISH, m.PINGRESP}, rest
    assert rest[m.PUBLISH].fields["payload"] == b"self"


def test_connect_delivered_one_byte_at_a_time_accepted(broker):
    """2.2 framing: a CONNECT split over many TCP segments (one byte each) is reassembled and accepted."""
    c = raw(broker)
    for b in m.connect("cn-bytes", username="u", password=b"p"):
        c.send(bytes([b]))
        time.sleep(0.001)  # pacing so that the bytes travel in separate segments, not a synchronisation
    assert c.expect(m.CONNACK).body == b"\x00\x00"


def test_empty_will_topic_refused(broker):
    """[MQTT-4.7.3-1] The will topic is a topic name, which must be at least one character long: the CONNECT
    is refused (any CONNACK has a non-zero return code) and the connection closed."""
    c = raw(broker)
    c.send(m.connect("cn-wempty", will_topic="", will_payload=b"x"))
    got = c.expect_closed()
    assert all(p.type == m.CONNACK and p.body[1] != 0 for p in got), got
    assert len(got) <= 1
    assert_serving(broker)
