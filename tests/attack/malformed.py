"""Every class of malformed packet and protocol violation of the conformance suites
(tests/conformance/v5/test_malformed.py and tests/conformance/v311/test_malformed.py), as data, for the
attack that sends them from many connections at once.

A Kind is sent either on a fresh TCP connection (`after_connect` False: the bytes are the first packet) or
after a successful CONNECT of protocol `version`. What the broker must do (the conformance tests' rules):
- v5 after CONNECT: DISCONNECT with `reason`, then close;
- 3.1.1 after CONNECT: close without sending anything [MQTT-4.8.0-1];
- before CONNECT: close without a CONNACK (or, for a v5-looking CONNECT, a refusing CONNACK).
"""
from __future__ import annotations

from dataclasses import dataclass

import mqttraw as m


@dataclass(frozen=True)
class Kind:
    name: str
    version: int          # 5 or 4
    after_connect: bool
    data: bytes
    reason: int | None = None  # v5 after CONNECT: the DISCONNECT reason code


def _v5(name: str, data: bytes, reason: int) -> Kind:
    return Kind(f"v5-{name}", 5, True, data, reason)


def _v3(name: str, data: bytes) -> Kind:
    return Kind(f"v311-{name}", 4, True, data)


def _pre(name: str, data: bytes) -> Kind:
    return Kind(f"pre-{name}", 4, False, data)


_qos2 = m.publish("a/b", b"x", qos=2, packet_id=1, version=5)

KINDS: list[Kind] = [
    # ---- MQTT 5 after CONNECT
    _v5("wildcard-plus-topic", m.publish("a/+/b", b"x", version=5), 0x90),
    _v5("wildcard-hash-topic", m.publish("a/#", b"x", qos=1, version=5), 0x90),
    _v5("publish-packet-id-0", m.publish("a/b", b"x", qos=1, packet_id=0, version=5), 0x82),
    _v5("subscribe-packet-id-0", m.subscribe(0, [("a/b", 0)], version=5), 0x82),
    _v5("qos-3", bytes([_qos2[0] | 0x06]) + _qos2[1:], 0x81),
    _v5("qos0-dup", m.publish("a/b", b"x", dup=True, version=5), 0x81),
    _v5("session-expiry-in-publish",
        m.publish("a/b", b"x", version=5, properties=[(m.SESSION_EXPIRY_INTERVAL, 10)]), 0x81),
    _v5("subscription-id-in-publish",
        m.publish("a/b", b"x", qos=1, version=5, properties=[(m.SUBSCRIPTION_IDENTIFIER, 5)]), 0x82),
    _v5("duplicate-content-type",
        m.publish("a/b", b"x", version=5, properties=[(m.CONTENT_TYPE, "a"), (m.CONTENT_TYPE, "b")]), 0x82),
    _v5("bad-utf8-user-property",
        m.publish("a/b", b"x", version=5, properties=[(m.USER_PROPERTY, (b"k\xc3\x28", "v"))]), 0x81),
    _v5("bad-utf8-topic", m.publish(b"a/\xff", b"x", version=5), 0x81),
    _v5("nul-in-topic", m.publish(b"a/\x00b", b"x", version=5), 0x81),
    _v5("property-length-beyond-packet", m.packet(m.PUBLISH, 0, m.mstr("a/b") + m.varint(50) + b"\x01\x00"), 0x81),
    _v5("string-length-beyond-packet", m.packet(m.PUBLISH, 0, m.u16(40) + b"a/b" + b"\x00"), 0x81),
    _v5("second-connect", m.connect("second", version=5), 0x82),
    _v5("remaining-length-5-bytes", bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]) + b"\x00" * 8, 0x81),
    _v5("pubrel-wrong-flags", bytes([0x60, 0x02, 0x00, 0x01]), 0x81),
    _v5("pingreq-with-body", bytes([0xC0, 0x01, 0x00]), 0x81),
    _v5("packet-type-0", bytes([0x00, 0x00]), 0x82),
    _v5("connack-from-client", bytes([0x20, 0x03, 0x00, 0x00, 0x00]), 0x82),
    _v5("declared-size-above-maximum", bytes([0x30]) + m.varint(2_000_000) + b"\x00\x03a/b", 0x95),
    _v5("wildcard-response-topic",
        m.publish("a/b", b"x", qos=1, version=5, properties=[(m.RESPONSE_TOPIC, "reply/#")]), 0x82),
    _v5("auth-without-method", m.auth(0x18), 0x82),
    _v5("topic-alias-in-unsubscribe", m.unsubscribe(1, ["a"], version=5, properties=[(m.TOPIC_ALIAS, 1)]), 0x81),
    _v5("suback-from-client-malformed", b"\x90\x03\x00\x01\x03", 0x82),
    _v5("control-character-in-topic", m.publish(b"a/\x07", b"x", version=5), 0x81),
    _v5("zero-length-filter", m.subscribe(1, [("", 0)], version=5), 0x81),
    # ---- MQTT 3.1.1 after CONNECT
    _v3("remaining-length-5-bytes", bytes([0xC0, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])),
    _v3("utf8-ff", m.publish(b"mf/\xff", b"x")),
    _v3("utf8-lone-continuation", m.publish(b"mf/\x80", b"x")),
    _v3("utf8-truncated", m.publish(b"mf/\xc3", b"x")),
    _v3("utf8-overlong", m.publish(b"mf/\xc0\xaf", b"x")),
    _v3("utf8-above-10ffff", m.publish(b"mf/\xf4\x90\x80\x80", b"x")),
    _v3("utf8-surrogate", m.publish(b"mf/\xed\xa0\x80", b"x")),
    _v3("nul-in-topic", m.publish(b"mf/\x00/x", b"x")),
    _v3("bad-utf8-filter", m.packet(m.SUBSCRIBE, 0x02, m.u16(1) + m.mstr(b"mf/\xff/#") + b"\x00")),
    _v3("nul-in-unsubscribe", m.packet(m.UNSUBSCRIBE, 0x02, m.u16(1) + m.mstr(b"mf\x00"))),
    _v3("pingreq-with-body", b"\xc0\x01\x00"),
    _v3("pingreq-flags", b"\xc1\x00"),
    _v3("auth-packet", m.packet(m.AUTH, 0, b"")),
    _v3("packet-type-0", b"\x00\x00"),
    _v3("connack-from-client", b"\x20\x02\x00\x00"),
    _v3("suback-from-client", b"\x90\x03\x00\x01\x00"),
    _v3("unsuback-from-client", b"\xb0\x02\x00\x01"),
    _v3("pingresp-from-client", b"\xd0\x00"),
    _v3("disconnect-with-payload", b"\xe0\x01\x00"),
    _v3("disconnect-flags", b"\xe2\x00"),
    _v3("puback-short", m.packet(m.PUBACK, 0, b"\x00")),
    _v3("puback-long", m.packet(m.PUBACK, 0, b"\x00\x01\x00")),
    _v3("string-longer-than-packet", m.packet(m.PUBLISH, 0, m.u16(100) + b"abc")),
    _v3("qos1-without-packet-id", m.packet(m.PUBLISH, 0x02, m.mstr("a"))),
    _v3("wildcard-topic", m.publish("a/#", b"x")),
    _v3("second-connect", m.connect("second")),
    _v3("control-character-in-topic", m.publish(b"a/\x1b", b"x")),
    _v3("zero-length-filter", m.subscribe(1, [("", 0)])),
    # ---- before CONNECT
    _pre("remaining-length-5-bytes", bytes([0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])),
    _pre("bad-utf8-client-id", m.connect(b"mf-\xff")),
    _pre("bad-utf8-will-topic", m.connect("mf-will", will_topic=b"mf/\xc3\x28", will_payload=b"x")),
    _pre("bad-utf8-user-name", m.connect("mf-user", username=b"\xed\xbf\xbf")),
    _pre("truncated-connect", m.packet(m.CONNECT, 0, m.mstr("MQTT") + b"\x04")),
    _pre("connect-trailing-bytes", m.packet(m.CONNECT, 0, m.connect("mf-trail")[2:] + b"\x00")),
    _pre("first-packet-not-connect", m.publish("a/b", b"x")),
    _pre("pingreq-first", m.pingreq()),
    _pre("control-character-in-client-id", m.connect(b"mf-\x01")),
]
