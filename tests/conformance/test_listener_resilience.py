"""Listener robustness: no connection's failure stops a listener.

A listener that runs out of file descriptors (EMFILE) logs it, backs off and
accepts again once descriptors are free; connections that fail before
CONNECT are counted per listener and never reach the listener's state.
"""
import socket
import time

import mqttraw as m


def round_trip(port: int, cid: str) -> None:
    with m.RawClient(port) as c:
        assert c.connect(cid).fields["reason"] == 0
        c.send(m.subscribe(1, [(f"rt/{cid}", 1)]))
        c.expect(m.SUBACK)
        c.send(m.publish(f"rt/{cid}", b"x", qos=1, packet_id=2))
        got = {p.type for p in (c.recv(), c.recv())}
        assert got == {m.PUBACK, m.PUBLISH}


def test_accept_resumes_after_running_out_of_file_descriptors(make_broker):
    """EMFILE on accept: logged, the listener backs off, and accepting resumes when descriptors free up."""
    broker = make_broker(max_open_files=40)
    held = []
    try:
        # Fill the descriptor table: MQTT clients that stay connected.
        for i in range(40):
            c = m.RawClient(broker.port, timeout=2.0)
            held.append(c)
            try:
                c.connect(f"fill{i}")
            except (TimeoutError, m.Closed):
                break  # this one sits in the backlog: the broker is out of descriptors
        log = broker.wait_log("Too many open files; backing off 100 ms", timeout=10)
        assert "accept failed" in log
    finally:
        for c in held:
            c.close()
    # Descriptors are free again: the listener accepts new clients.
    deadline = time.monotonic() + 10
    while True:
        try:
            round_trip(broker.port, "after-emfile")
            break
        except (TimeoutError, m.Closed, ConnectionError):
            if time.monotonic() > deadline:
                raise
    assert broker.alive()


def test_connect_timeout_is_counted_and_listener_goes_on(make_broker):
    """A connection that never sends CONNECT is closed at connect_timeout, counted, and others are unaffected."""
    broker = make_broker(config="[mqtt]\nconnect_timeout = 1\n[sys]\ninterval = 1\n")
    silent = socket.create_connection(("127.0.0.1", broker.port))
    try:
        round_trip(broker.port, "while-silent")
        broker.wait_log("no CONNECT within 1000 ms", timeout=5)
        silent.settimeout(5)
        assert silent.recv(1) == b""  # closed by the broker
    finally:
        silent.close()
    with m.RawClient(broker.port) as c:
        c.connect("metrics")
        c.send(m.subscribe(1, [("$SYS/broker/listeners/test/failures/connect_timeout", 0)]))
        c.expect(m.SUBACK)
        p = c.expect(m.PUBLISH, timeout=5)
        assert int(p.fields["payload"]) >= 1
