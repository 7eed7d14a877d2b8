"""MQTT 5.0: the acknowledgements a client sends for the broker's QoS 1/2 deliveries (4.3.2, 4.3.3, 4.13), and
wills across a new connection for the same ClientID (3.1.2.5, 3.1.3.2.2, 3.1.4).

- An acknowledgement of the wrong kind for a message in flight to the client (PUBREC or PUBCOMP for QoS 1,
  PUBACK for QoS 2, PUBCOMP before the broker sent PUBREL) is a Protocol Error: DISCONNECT 0x82, then the
  close. An acknowledgement whose packet identifier is not in flight is not: PUBREC gets PUBREL 0x92, PUBREL
  gets PUBCOMP 0x92, PUBACK and PUBCOMP are ignored, and the connection stays.
- A will is never published once a new connection to its session arrives before it was due [MQTT-3.1.3-9]:
  a takeover that continues the session (Clean Start 0, old Session Expiry > 0) publishes none, with or
  without a Will Delay; one that ends the session (new Clean Start 1, or old Session Expiry 0) makes it due
  at once. "No will" is decided by a watcher subscribed to the will topic: a marker published to the same
  topic afterwards must be the next message it gets.
"""
import time

import mqttraw as m

# ------------------------------------------------------------------ helpers --


def _in_flight(v5, broker, name: str, qos: int):
    """A subscriber at QoS `qos` with one message from another client in flight to it (the PUBLISH read, not
    acknowledged). Returns (subscriber, packet id)."""
    s = v5.connect(broker, f"{name}-s")
    v5.subscribe(s, f"ak/{name}", qos)
    p = v5.connect(broker, f"{name}-p")
    v5.publish(p, f"ak/{name}", b"in flight", qos=qos)
    pub = s.expect(m.PUBLISH)
    assert (pub.fields["qos"], pub.fields["payload"]) == (qos, b"in flight"), pub
    return s, pub.fields["packet_id"]


def _protocol_error(v5, broker, s, data: bytes, name: str) -> None:
    """`data` from `s` gets DISCONNECT 0x82 and the close; the broker then still serves other clients."""
    s.send(data)
    v5.expect_disconnect(s, 0x82)
    v5.assert_serving(broker, f"{name}-next")


def _still_open(c) -> None:
    """The connection is open and the broker sent nothing else first: PINGREQ gets PINGRESP as the next packet."""
    c.send(m.pingreq())
    p = c.recv()
    assert p.type == m.PINGRESP, f"expected PINGRESP (connection kept, nothing else sent), got {p!r}"


def _watcher(v5, broker, cid: str, topic: str):
    w = v5.connect(broker, cid)
    v5.subscribe(w, topic, 1)
    return w


def _with_will(v5, broker, cid: str, topic: str, payload: bytes, expiry: int = 0, delay: int = 0,
               clean: bool = True):
    """A v5 client with a QoS 1 will (Will Delay `delay`, absent if 0) and Session Expiry `expiry` (absent if 0)."""
    props = [(m.SESSION_EXPIRY_INTERVAL, expiry)] if expiry else None
    wprops = [(m.WILL_DELAY_INTERVAL, delay)] if delay else None
    return v5.connect(broker, cid, clean=clean, properties=props, will_topic=topic, will_payload=payload,
                      will_qos=1, will_properties=wprops)


def _wait_closed_by_broker(broker, cid: str, c) -> None:
    """Waits for the broker's log line ending the connection of `c`: whatever the end of that connection
    does (e.g. publish a will) has been done by then."""
    broker.wait_log(f"client disconnected: id={cid} peer=127.0.0.1:{c.local_port} ")


def _marker_is_next(v5, broker, w, topic: str, name: str) -> None:
    """Another client publishes a marker (QoS 1) to `topic`; the watcher's next message must be that marker,
    so nothing (no will) was published to it before."""
    p = v5.connect(broker, f"{name}-marker")
    v5.publish(p, topic, b"marker", qos=1, packet_id=99)
    got = v5.receive(w)
    assert (got.fields["topic"], got.fields["payload"]) == (topic, b"marker"), \
        f"expected only the marker on {topic!r}, got {got!r}"


# ------------------------------------- the wrong acknowledgement in flight --


def test_pubrec_for_qos1_delivery_is_protocol_error(broker, v5):
    """[MQTT-4.3.2-4] [MQTT-4.13.1-1] A QoS 1 PUBLISH must be answered with PUBACK: a PUBREC for a QoS 1 message
    in flight is a Protocol Error: DISCONNECT 0x82 and the connection is closed."""
    s, pid = _in_flight(v5, broker, "ak-rec1", 1)
    _protocol_error(v5, broker, s, m.ack(m.PUBREC, pid), "ak-rec1")


def test_pubcomp_for_qos1_delivery_is_protocol_error(broker, v5):
    """[MQTT-4.3.2-4] [MQTT-4.13.1-1] A PUBCOMP for a QoS 1 message in flight: DISCONNECT 0x82 and the close."""
    s, pid = _in_flight(v5, broker, "ak-comp1", 1)
    _protocol_error(v5, broker, s, m.ack(m.PUBCOMP, pid), "ak-comp1")


def test_puback_for_qos2_delivery_is_protocol_error(broker, v5):
    """[MQTT-4.3.3-8] [MQTT-4.13.1-1] A QoS 2 PUBLISH must be answered with PUBREC: a PUBACK for a QoS 2 message
    in flight (no PUBREC yet) is a Protocol Error: DISCONNECT 0x82 and the close."""
    s, pid = _in_flight(v5, broker, "ak-ack2", 2)
    _protocol_error(v5, broker, s, m.ack(m.PUBACK, pid), "ak-ack2")


def test_pubcomp_before_pubrel_is_protocol_error(broker, v5):
    """[MQTT-4.3.3-8] [MQTT-4.3.3-11] [MQTT-4.13.1-1] PUBCOMP answers the broker's PUBREL: a PUBCOMP for a QoS 2
    message in flight whose PUBREC was never sent (so no PUBREL either) is a Protocol Error: DISCONNECT 0x82."""
    s, pid = _in_flight(v5, broker, "ak-comp2", 2)
    _protocol_error(v5, broker, s, m.ack(m.PUBCOMP, pid), "ak-comp2")


def test_puback_after_pubrel_is_protocol_error(broker, v5):
    """[MQTT-4.3.3-11] [MQTT-4.13.1-1] A QoS 2 message whose PUBREL the broker sent awaits PUBCOMP: a PUBACK for
    it is a Protocol Error: DISCONNECT 0x82."""
    s, pid = _in_flight(v5, broker, "ak-ackrel", 2)
    s.send(m.ack(m.PUBREC, pid))
    rel = s.expect(m.PUBREL)
    assert (rel.fields["packet_id"], rel.fields["reason"]) == (pid, 0x00), rel
    _protocol_error(v5, broker, s, m.ack(m.PUBACK, pid), "ak-ackrel")


def test_pubrec_repeated_after_pubrel_gets_pubrel_again(broker, v5):
    """[4.3.3] [MQTT-4.3.3-4] Not the wrong kind: a PUBREC repeated for a QoS 2 message whose PUBREL was sent is
    answered with the PUBREL again (reason 0x00); the connection stays and PUBCOMP completes the flow."""
    s, pid = _in_flight(v5, broker, "ak-rec2x", 2)
    s.send(m.ack(m.PUBREC, pid))
    assert s.expect(m.PUBREL).fields["packet_id"] == pid
    s.send(m.ack(m.PUBREC, pid))
    rel = s.expect(m.PUBREL)
    assert (rel.fields["packet_id"], rel.fields["reason"]) == (pid, 0x00), rel
    s.send(m.ack(m.PUBCOMP, pid))
    _still_open(s)


# ------------------------------------------------ unknown packet identifiers --


def test_pubrec_unknown_id_gets_pubrel_0x92_and_connection_stays(broker, v5):
    """[3.6.2.1] A PUBREC for a packet id with nothing in flight is not a protocol error: PUBREL with the same
    id and reason 0x92 (Packet Identifier not found), and the connection stays open."""
    c = v5.connect(broker, "ak-rec92")
    c.send(m.ack(m.PUBREC, 0x1234))
    rel = c.expect(m.PUBREL)
    assert (rel.fields["packet_id"], rel.fields["reason"]) == (0x1234, 0x92), rel
    _still_open(c)


def test_pubrel_unknown_id_gets_pubcomp_0x92_and_connection_stays(broker, v5):
    """[3.7.2.1] A PUBREL for a packet id the broker holds no QoS 2 message for: PUBCOMP with the same id and
    reason 0x92 (Packet Identifier not found), and the connection stays open."""
    c = v5.connect(broker, "ak-rel92")
    c.send(m.ack(m.PUBREL, 0x2345))
    comp = c.expect(m.PUBCOMP)
    assert (comp.fields["packet_id"], comp.fields["reason"]) == (0x2345, 0x92), comp
    _still_open(c)


def test_puback_unknown_id_ignored(broker, v5):
    """[4.3.2] A PUBACK for a packet id with nothing in flight (e.g. late, after a resend) is ignored: no answer,
    no DISCONNECT; the next packet the broker sends is the PINGRESP to a PINGREQ."""
    c = v5.connect(broker, "ak-ack-unk")
    c.send(m.ack(m.PUBACK, 0x3456))
    _still_open(c)


def test_pubcomp_unknown_id_ignored(broker, v5):
    """[4.3.3] A PUBCOMP for a packet id with nothing in flight is ignored: no answer, no DISCONNECT; the next
    packet the broker sends is the PINGRESP to a PINGREQ."""
    c = v5.connect(broker, "ak-comp-unk")
    c.send(m.ack(m.PUBCOMP, 0x4567))
    _still_open(c)


def test_unknown_id_beside_message_in_flight_is_not_wrong_kind(broker, v5):
    """[3.6.2.1] [4.3.2] The check is per packet id: with a QoS 1 message in flight under id N, a PUBREC for
    another id gets PUBREL 0x92 and the connection stays; PUBACK N then completes the delivery (a marker
    published next is the next message)."""
    s, pid = _in_flight(v5, broker, "ak-beside", 1)
    other = pid % 0xFFFF + 1
    s.send(m.ack(m.PUBREC, other))
    rel = s.expect(m.PUBREL)
    assert (rel.fields["packet_id"], rel.fields["reason"]) == (other, 0x92), rel
    s.send(m.ack(m.PUBACK, pid))
    _still_open(s)
    _marker_is_next(v5, broker, s, "ak/ak-beside", "ak-beside")


# ------------------------------------------------------ wills and takeover --


def test_takeover_continuing_session_publishes_no_will(broker, v5):
    """[MQTT-3.1.2-8] [MQTT-3.1.3-9] [MQTT-3.1.4-3] Session Expiry 600 and Clean Start 0 on both connections, no
    Will Delay: the takeover opens a new connection to the session before the will is due, so the old
    connection gets DISCONNECT 0x8E and its will is not published. (The non-normative comment of 3.1.4 says
    that with Will Delay 0 the will "will be sent because the Network Connection is closed"; petrel follows
    the normative [MQTT-3.1.2-8] exception "a new Network Connection for the ClientID is opened before the
    Will Delay Interval has elapsed", as Mosquitto does. docs/architecture.md, "Wills".)"""
    w = _watcher(v5, broker, "tw-d0-w", "tw/d0")
    old = _with_will(v5, broker, "tw-d0", "tw/d0", b"will", expiry=600, clean=False)
    new = v5.connect(broker, "tw-d0", clean=False, properties=[(m.SESSION_EXPIRY_INTERVAL, 600)])
    assert new.connack.fields["session_present"] == 1
    v5.expect_disconnect(old, 0x8E)
    _wait_closed_by_broker(broker, "tw-d0", old)
    _marker_is_next(v5, broker, w, "tw/d0", "tw-d0")


def test_takeover_continuing_session_cancels_delayed_will(broker, v5):
    """[MQTT-3.1.3-9] Will Delay 30 s, Session Expiry 600, Clean Start 0 on both: after the takeover the will is
    not merely postponed but gone. The new connection (no will, Session Expiry 1) then leaves with a normal
    DISCONNECT; when the session ends 1 s later (a session ending publishes a pending will) still no will."""
    w = _watcher(v5, broker, "tw-d30-w", "tw/d30")
    old = _with_will(v5, broker, "tw-d30", "tw/d30", b"will", expiry=600, delay=30, clean=False)
    new = v5.connect(broker, "tw-d30", clean=False, properties=[(m.SESSION_EXPIRY_INTERVAL, 1)])
    assert new.connack.fields["session_present"] == 1
    v5.expect_disconnect(old, 0x8E)
    _wait_closed_by_broker(broker, "tw-d30", old)
    _marker_is_next(v5, broker, w, "tw/d30", "tw-d30a")
    new.send(m.disconnect())
    assert new.expect_closed(3) == []
    broker.wait_log("session tw-d30 expired")
    _marker_is_next(v5, broker, w, "tw/d30", "tw-d30b")


def test_takeover_with_clean_start_publishes_delayed_will_at_once(broker, v5):
    """[MQTT-3.1.2-8] [3.1.3.2.2] [3.1.4] The new connection has Clean Start 1: the old session ends at the
    takeover, so its will (Will Delay 30 s, Session Expiry 600) is published at once, not after 30 s."""
    w = _watcher(v5, broker, "tw-cs-w", "tw/cs")
    old = _with_will(v5, broker, "tw-cs", "tw/cs", b"ended", expiry=600, delay=30, clean=False)
    new = v5.connect(broker, "tw-cs", clean=True, properties=[(m.SESSION_EXPIRY_INTERVAL, 600)])
    assert new.connack.fields["session_present"] == 0
    v5.expect_disconnect(old, 0x8E)
    got = v5.receive(w)
    assert (got.fields["topic"], got.fields["payload"]) == ("tw/cs", b"ended")
    _marker_is_next(v5, broker, w, "tw/cs", "tw-cs")  # published once


def test_takeover_of_session_expiry_0_publishes_delayed_will_at_once(broker, v5):
    """[MQTT-3.1.2-8] [3.1.3.2.2] [3.1.4] The old connection had Session Expiry 0: its session ends at the
    takeover (even though the new connection has Clean Start 0), so its will (Will Delay 30 s) is published at
    once."""
    w = _watcher(v5, broker, "tw-se0-w", "tw/se0")
    old = _with_will(v5, broker, "tw-se0", "tw/se0", b"ended", delay=30, clean=False)
    new = v5.connect(broker, "tw-se0", clean=False, properties=[(m.SESSION_EXPIRY_INTERVAL, 600)])
    assert new.connack.fields["session_present"] == 0
    v5.expect_disconnect(old, 0x8E)
    got = v5.receive(w)
    assert (got.fields["topic"], got.fields["payload"]) == ("tw/se0", b"ended")
    _marker_is_next(v5, broker, w, "tw/se0", "tw-se0")  # published once


def test_reconnect_within_will_delay_after_drop_publishes_no_will(broker, v5):
    """[MQTT-3.1.3-9] Will Delay 2 s, Session Expiry 600: the client's TCP connection drops (no DISCONNECT) and
    it reconnects with Clean Start 0 within the delay; once the delay has passed (3 s after the drop: the
    passing of time is the behaviour under test) no will has been published."""
    w = _watcher(v5, broker, "tw-drop-w", "tw/drop")
    c = _with_will(v5, broker, "tw-drop", "tw/drop", b"will", expiry=600, delay=2, clean=False)
    dropped = time.monotonic()
    c.close()
    _wait_closed_by_broker(broker, "tw-drop", c)
    again = v5.connect(broker, "tw-drop", clean=False, properties=[(m.SESSION_EXPIRY_INTERVAL, 600)])
    assert time.monotonic() < dropped + 2, "the reconnect took longer than the will delay: the test proves nothing"
    assert again.connack.fields["session_present"] == 1
    time.sleep(max(0.0, dropped + 3 - time.monotonic()))
    _marker_is_next(v5, broker, w, "tw/drop", "tw-drop")


def test_reconnect_after_restart_within_will_delay_publishes_no_will(make_broker, v5):
    """[MQTT-3.1.3-9] (docs/persistence.md) Will Delay 5 s, Session Expiry 600: the client's TCP connection
    drops, petrel is restarted on the same database (SIGTERM) and the client reconnects with Clean Start 0 at
    once: its restored session is resumed within the delay, so the will is never published. Judged 6 s after
    the drop by a watcher with a persistent session (a will published while it was offline would be queued
    for it and arrive before the marker)."""
    b = make_broker()
    watcher_props = [(m.SESSION_EXPIRY_INTERVAL, 600)]
    w = v5.connect(b, "tw-rs-w", properties=watcher_props)
    v5.subscribe(w, "tw/rs", 1)
    c = _with_will(v5, b, "tw-rs", "tw/rs", b"will", expiry=600, delay=5, clean=False)
    dropped = time.monotonic()
    c.close()
    _wait_closed_by_broker(b, "tw-rs", c)
    w.close()
    assert b.stop() == 0
    b = make_broker(port=b.port)
    again = v5.connect(b, "tw-rs", clean=False, properties=[(m.SESSION_EXPIRY_INTERVAL, 600)])
    assert time.monotonic() < dropped + 5, "the restart took longer than the will delay: the test proves nothing"
    assert again.connack.fields["session_present"] == 1
    w = v5.connect(b, "tw-rs-w", clean=False, properties=watcher_props)
    assert w.connack.fields["session_present"] == 1
    time.sleep(max(0.0, dropped + 6 - time.monotonic()))
    _marker_is_next(v5, b, w, "tw/rs", "tw-rs")
