"""MQTT 3.1.1: the acknowledgements a client sends for the server's QoS 1/2 deliveries (4.3.2, 4.3.3, 4.8), and
the will across a new connection for the same client identifier (3.1.2.5, 3.1.4).

- An acknowledgement of the wrong kind for a message in flight to the client (PUBREC or PUBCOMP for QoS 1,
  PUBACK for QoS 2, PUBCOMP before the server sent PUBREL) is a protocol violation: the connection is closed
  without a word [MQTT-4.8.0-1] (petrel logs it as a protocol error, 0x82). An acknowledgement whose packet
  identifier is not in flight is not: PUBREC gets PUBREL, PUBREL gets PUBCOMP, PUBACK and PUBCOMP are
  ignored, and the connection stays.
- A takeover that continues the session (clean session 0 on both connections) publishes no will: petrel
  applies the rule MQTT 5 states ([MQTT-3.1.3-9]: a new connection to the session before the will was
  published cancels it; docs/architecture.md, "Wills"). A takeover that ends the session (either connection
  with clean session 1) publishes it. "No will" is decided by a watcher subscribed to the will topic: a
  marker published to the same topic afterwards must be the next message it gets.
"""
import mqttraw as m

from .helpers import (assert_serving, close_reason, connected, expect_closed_silently, expect_publish, publish_acked,
                      raw, sentinel, subscriber)

# ------------------------------------------------------------------ helpers --


def _in_flight(broker, name: str, qos: int):
    """A subscriber at QoS `qos` with one message from another client in flight to it (the PUBLISH read, not
    acknowledged). Returns (subscriber, publisher, packet id)."""
    topic = f"ak/{name}"
    s = subscriber(broker, f"{name}-s", [(topic, qos)])
    p = connected(broker, f"{name}-p")
    publish_acked(p, topic, b"in flight", qos=qos, packet_id=1)
    pub = expect_publish(s, topic, b"in flight", ack=False)
    assert pub.fields["qos"] == qos, pub
    return s, p, pub.fields["packet_id"]


def _protocol_violation(broker, s, data: bytes, expected: str) -> None:
    """`data` from `s` closes the connection without an answer; the logged reason is a protocol error (0x82)
    naming the acknowledgement the message awaited; the server still serves other clients."""
    s.send(data)
    expect_closed_silently(s)
    reason = close_reason(broker, s)
    assert "(0x82)" in reason and f"awaits {expected}" in reason, reason
    assert_serving(broker)


def _still_open(c) -> None:
    """The connection is open and the server sent nothing else first: PINGREQ gets PINGRESP as the next packet."""
    c.send(m.pingreq())
    p = c.recv()
    assert p.type == m.PINGRESP, f"expected PINGRESP (connection kept, nothing else sent), got {p!r}"


def _wait_closed_by_broker(broker, cid: str, c) -> None:
    """Waits for the broker's log line ending the connection of `c`: whatever the end of that connection
    does (e.g. publish a will) has been done by then."""
    broker.wait_log(f"client disconnected: id={cid} peer=127.0.0.1:{c.local_port} ")


def _takeover(broker, cid: str, topic: str, old_clean: bool, new_clean: bool):
    """A client `cid` with a QoS 1 will on `topic` (clean session `old_clean`) taken over by a new connection
    (clean session `new_clean`): the old connection is closed without a word. Returns (new connection,
    its CONNACK)."""
    old = connected(broker, cid, clean=old_clean, will_topic=topic, will_payload=b"will", will_qos=1)
    new = raw(broker)
    ack = new.connect(cid, clean=new_clean)
    assert ack.fields["reason"] == 0, ack
    expect_closed_silently(old)
    _wait_closed_by_broker(broker, cid, old)
    return new, ack


# ------------------------------------- the wrong acknowledgement in flight --


def test_pubrec_for_qos1_delivery_closes(broker):
    """[MQTT-4.3.2-2] [MQTT-4.8.0-1] A QoS 1 PUBLISH must be answered with PUBACK: a PUBREC for a QoS 1 message
    in flight is a protocol violation and the server closes the connection."""
    s, _, pid = _in_flight(broker, "ak-rec1", 1)
    _protocol_violation(broker, s, m.ack(m.PUBREC, pid), "PUBACK")


def test_pubcomp_for_qos1_delivery_closes(broker):
    """[MQTT-4.3.2-2] [MQTT-4.8.0-1] A PUBCOMP for a QoS 1 message in flight: the connection is closed."""
    s, _, pid = _in_flight(broker, "ak-comp1", 1)
    _protocol_violation(broker, s, m.ack(m.PUBCOMP, pid), "PUBACK")


def test_puback_for_qos2_delivery_closes(broker):
    """[MQTT-4.3.3-2] [MQTT-4.8.0-1] A QoS 2 PUBLISH must be answered with PUBREC: a PUBACK for a QoS 2 message
    in flight (no PUBREC yet) is a protocol violation and the server closes the connection."""
    s, _, pid = _in_flight(broker, "ak-ack2", 2)
    _protocol_violation(broker, s, m.ack(m.PUBACK, pid), "PUBREC")


def test_pubcomp_before_pubrel_closes(broker):
    """[MQTT-4.3.3-2] [4.3.3] [MQTT-4.8.0-1] PUBCOMP answers the server's PUBREL: a PUBCOMP for a QoS 2 message in
    flight whose PUBREC was never sent (so no PUBREL either) closes the connection."""
    s, _, pid = _in_flight(broker, "ak-comp2", 2)
    _protocol_violation(broker, s, m.ack(m.PUBCOMP, pid), "PUBREC")


def test_puback_after_pubrel_closes(broker):
    """[4.3.3] [MQTT-4.8.0-1] A QoS 2 message whose PUBREL the server sent awaits PUBCOMP: a PUBACK for it closes
    the connection."""
    s, _, pid = _in_flight(broker, "ak-ackrel", 2)
    s.send(m.ack(m.PUBREC, pid))
    rel = s.recv()
    assert (rel.type, rel.flags, rel.body) == (m.PUBREL, 0x02, m.u16(pid)), rel
    _protocol_violation(broker, s, m.ack(m.PUBACK, pid), "PUBCOMP")


def test_pubrec_repeated_after_pubrel_gets_pubrel_again(broker):
    """[4.3.3] Not the wrong kind: a PUBREC repeated for a QoS 2 message whose PUBREL was sent is answered with
    the PUBREL again; the connection stays and PUBCOMP completes the flow (a marker is the next message)."""
    s, p, pid = _in_flight(broker, "ak-rec2x", 2)
    for _ in range(2):
        s.send(m.ack(m.PUBREC, pid))
        rel = s.recv()
        assert (rel.type, rel.flags, rel.body) == (m.PUBREL, 0x02, m.u16(pid)), rel
    s.send(m.ack(m.PUBCOMP, pid))
    _still_open(s)
    sentinel(p, s, "ak/ak-rec2x", packet_id=2)


# ------------------------------------------------ unknown packet identifiers --


def test_pubrec_unknown_id_gets_pubrel_and_connection_stays(broker):
    """[4.3.3] A PUBREC for a packet id with nothing in flight is not a protocol violation: PUBREL 62 02 <id>,
    and the connection stays open."""
    c = connected(broker, "ak-rec-unk")
    c.send(m.ack(m.PUBREC, 0x1234))
    rel = c.recv()
    assert (rel.type, rel.flags, rel.body) == (m.PUBREL, 0x02, b"\x12\x34"), rel
    _still_open(c)


def test_pubrel_unknown_id_gets_pubcomp_and_connection_stays(broker):
    """[MQTT-4.3.3-2] A PUBREL for a packet id the server holds no QoS 2 message for: PUBCOMP 70 02 <id>, and the
    connection stays open."""
    c = connected(broker, "ak-rel-unk")
    c.send(m.ack(m.PUBREL, 0x2345))
    comp = c.recv()
    assert (comp.type, comp.flags, comp.body) == (m.PUBCOMP, 0, b"\x23\x45"), comp
    _still_open(c)


def test_puback_unknown_id_ignored(broker):
    """[4.3.2] A PUBACK for a packet id with nothing in flight (e.g. late, after a resend) is ignored: no answer,
    no close; the next packet the server sends is the PINGRESP to a PINGREQ."""
    c = connected(broker, "ak-ack-unk")
    c.send(m.ack(m.PUBACK, 0x3456))
    _still_open(c)


def test_pubcomp_unknown_id_ignored(broker):
    """[4.3.3] A PUBCOMP for a packet id with nothing in flight is ignored: no answer, no close; the next packet
    the server sends is the PINGRESP to a PINGREQ."""
    c = connected(broker, "ak-comp-unk")
    c.send(m.ack(m.PUBCOMP, 0x4567))
    _still_open(c)


def test_unknown_id_beside_message_in_flight_is_not_wrong_kind(broker):
    """[4.3.2] [4.3.3] The check is per packet id: with a QoS 1 message in flight under id N, a PUBREC for
    another id gets PUBREL and the connection stays; PUBACK N then completes the delivery (a marker is the
    next message)."""
    s, p, pid = _in_flight(broker, "ak-beside", 1)
    other = pid % 0xFFFF + 1
    s.send(m.ack(m.PUBREC, other))
    rel = s.recv()
    assert (rel.type, rel.body) == (m.PUBREL, m.u16(other)), rel
    s.send(m.ack(m.PUBACK, pid))
    _still_open(s)
    sentinel(p, s, "ak/ak-beside", packet_id=2)


# ------------------------------------------------------ wills and takeover --


def test_takeover_with_clean_session_0_on_both_publishes_no_will(broker):
    """[MQTT-3.1.4-2] [3.1.2.5] (MQTT 5 [MQTT-3.1.3-9]) Clean session 0 on both connections: the new connection
    resumes the session (Session Present 1) and the server closes the old one, whose will is not published.
    (MQTT 3.1.1 [MQTT-3.1.2-8] read alone would publish it, as the old connection is closed without a
    DISCONNECT; petrel, as Mosquitto, treats the resumed session as cancelling it.)"""
    sub = subscriber(broker, "tw-cs00-w", [("tw/cs00", 1)])
    _, ack = _takeover(broker, "tw-cs00", "tw/cs00", old_clean=False, new_clean=False)
    assert ack.fields["session_present"] == 1
    pub = connected(broker, "tw-cs00-p")
    sentinel(pub, sub, "tw/cs00", b"marker")


def test_takeover_of_clean_session_1_publishes_will(broker):
    """[MQTT-3.1.4-2] [MQTT-3.1.2-8] [MQTT-3.1.2-6] The old connection had clean session 1: its session ends with
    it, so the takeover (by a clean session 0 connection, Session Present 0) publishes its will, once."""
    sub = subscriber(broker, "tw-cs10-w", [("tw/cs10", 1)])
    _, ack = _takeover(broker, "tw-cs10", "tw/cs10", old_clean=True, new_clean=False)
    assert ack.fields["session_present"] == 0
    expect_publish(sub, "tw/cs10", b"will")
    pub = connected(broker, "tw-cs10-p")
    sentinel(pub, sub, "tw/cs10", b"marker")


def test_takeover_by_clean_session_1_publishes_will(broker):
    """[MQTT-3.1.4-2] [MQTT-3.1.2-8] [MQTT-3.1.2-6] The old connection had clean session 0 but the new one has
    clean session 1, which discards the session: the old connection's will is published, once."""
    sub = subscriber(broker, "tw-cs01-w", [("tw/cs01", 1)])
    _, ack = _takeover(broker, "tw-cs01", "tw/cs01", old_clean=False, new_clean=True)
    assert ack.fields["session_present"] == 0
    expect_publish(sub, "tw/cs01", b"will")
    pub = connected(broker, "tw-cs01-p")
    sentinel(pub, sub, "tw/cs01", b"marker")
