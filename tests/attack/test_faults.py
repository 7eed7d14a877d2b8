"""One failure is that failure's business: an unexpected exception is contained where it happens.

Test builds compile fault-injection points (src/broker/fault.hpp) that the environment variable PETREL_FAULT
arms: the handling of a chosen packet type, the housekeeping loop's $SYS publication, the store's commit.
Each test makes one of them throw and checks that only that connection closes (MQTT 5: DISCONNECT 0x80
Unspecified error; 3.1.1: the connection closes), that the error is logged with the exception's text and
counted ($SYS/broker/errors/internal), and that every other client goes on as if nothing happened.
"""
from __future__ import annotations

import pytest

import mqttraw as m

from .tools import assert_serving, connected, round_trip, sys_config

pytestmark = pytest.mark.timeout(60)
T = 5.0


def bystander(port: int, client_id: str = "bystander") -> m.RawClient:
    """A v5 client subscribed to everything under faults/ (QoS 1), proven to work by a round trip."""
    c = connected(port, client_id)
    c.send(m.subscribe(1, [("faults/#", 1)], version=5))
    assert c.expect(m.SUBACK).fields["reasons"] == [1]
    round_trip(c, "faults/before", b"before", packet_id=2)
    return c


def test_exception_in_packet_handling_closes_only_that_v5_connection(make_broker, sys_watch):
    b = make_broker(sys_config(), env={"PETREL_FAULT": "packet:UNSUBSCRIBE=bad_alloc"})
    watch = sys_watch(b, ["errors/internal"])
    by = bystander(b.port)
    victim = connected(b.port, "victim", will_topic="faults/will", will_payload=b"victim gone")
    victim.send(m.unsubscribe(7, ["faults/#"], version=5))
    got = victim.expect_closed(T)
    assert [p.type for p in got] == [m.DISCONNECT], got
    assert got[0].fields["reason"] == 0x80, got  # Unspecified error
    # The victim's connection ended abnormally: its will is published, the session handled as on any close.
    will = by.expect(m.PUBLISH, T)
    assert (will.fields["topic"], will.fields["payload"]) == ("faults/will", b"victim gone")
    log = b.wait_log("internal error on the connection of client 'victim'")
    assert "std::bad_alloc" in log
    watch.wait("errors/internal", lambda v: v == 1, "counted the error")
    # Everyone else goes on: the bystander's connection and new clients.
    round_trip(by, "faults/after", b"after", packet_id=3)
    assert_serving(b)


def test_exception_in_packet_handling_closes_only_that_v311_connection(make_broker):
    b = make_broker(env={"PETREL_FAULT": "packet:PINGREQ=length_error"})
    by = bystander(b.port)
    victim = connected(b.port, "victim311", version=4)
    victim.send(m.pingreq())
    assert victim.expect_closed(T) == []  # 3.1.1 has no DISCONNECT from the server: the connection closes
    log = b.wait_log("internal error on the connection of client 'victim311'")
    assert "injected fault at packet:PINGREQ" in log
    round_trip(by, "faults/after", b"after", packet_id=3)
    assert_serving(b, version=4)


def test_exception_while_handling_connect_closes_that_connection_only(make_broker):
    b = make_broker(env={"PETREL_FAULT": "packet:CONNECT@1"})
    first = m.RawClient(b.port, version=5, timeout=T)
    first.send(m.connect("first", version=5))
    assert first.expect_closed(T) == []  # no CONNACK: the connection never connected
    b.wait_log("injected fault at packet:CONNECT")
    # The fault fired once; the next client connects normally.
    assert_serving(b)


def test_exception_in_housekeeping_is_logged_and_the_loop_goes_on(make_broker, sys_watch):
    b = make_broker(sys_config(), env={"PETREL_FAULT": "sys@2"})
    b.wait_log("internal error while publishing $SYS, housekeeping continues: injected fault at sys", timeout=T)
    # The third round of $SYS publications works and reports both failures.
    watch = sys_watch(b, ["errors/internal"])
    watch.wait("errors/internal", lambda v: v == 2, "counted both failures", timeout=T)
    assert_serving(b)


def test_store_commit_failure_is_retried_and_counted(make_broker, sys_watch):
    b = make_broker(sys_config(), env={"PETREL_FAULT": "store:write@1"})
    # A persistent session's CONNACK waits for its commit; the first commit fails and is retried.
    c = connected(b.port, "durable", properties=[(m.SESSION_EXPIRY_INTERVAL, 600)], clean=False)
    c.send(m.subscribe(1, [("faults/durable", 1)], version=5))
    assert c.expect(m.SUBACK).fields["reasons"] == [1]
    round_trip(c, "faults/durable", b"committed", packet_id=2)
    log = b.wait_log("write failed, retrying")
    assert "injected fault at store:write" in log
    watch = sys_watch(b, ["store/errors"])
    watch.wait("store/errors", lambda v: v == 1, "counted the failed commit")
