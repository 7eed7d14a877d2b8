"""The broker starts, accepts a CONNECT and routes one message (MQTT 3.1.1)."""
import mqttraw as m


def test_connect_subscribe_publish_roundtrip(broker):
    with m.RawClient(broker.port) as sub, m.RawClient(broker.port) as pub:
        assert sub.connect("sub").fields["reason"] == 0
        sub.send(m.subscribe(1, [("a/b", 1)]))
        assert sub.expect(m.SUBACK).fields["reasons"] == [1]
        pub.connect("pub")
        pub.send(m.publish("a/b", b"hello", qos=1, packet_id=7))
        assert pub.expect(m.PUBACK).fields["packet_id"] == 7
        got = sub.expect(m.PUBLISH)
        assert (got.fields["topic"], got.fields["payload"], got.fields["qos"]) == ("a/b", b"hello", 1)


def test_repeated_sigterm_during_shutdown_still_exits_cleanly(broker):
    """A supervisor that repeats SIGTERM while petrel shuts down gets a clean exit (status 0), not death by
    the signal: once shutdown has begun, further SIGINT/SIGTERM are ignored (app/service.cpp)."""
    import signal
    import time

    with m.RawClient(broker.port) as c:
        assert c.connect("shutdown-twice").fields["reason"] == 0
        broker.proc.send_signal(signal.SIGTERM)
        broker.wait_log("received SIGTERM")
        # Repeated until it has exited: some of them land after the signal set is gone.
        deadline = time.monotonic() + 15
        while broker.proc.poll() is None and time.monotonic() < deadline:
            broker.proc.send_signal(signal.SIGTERM)
    assert broker.proc.wait(timeout=15) == 0
