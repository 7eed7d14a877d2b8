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
