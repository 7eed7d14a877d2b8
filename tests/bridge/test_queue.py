"""The bridge's offline queue bound (max_queued_messages) and its drop order: while the remote is away and the
queue is full, the oldest QoS 0 message goes first; a QoS 1/2 message that finds no QoS 0 to evict is refused
to its publisher (v5: PUBACK 0x97 Quota exceeded; 3.1.1: the connection is closed unacknowledged), so what
petrel acknowledged still all reaches the remote. Drops are counted."""
from __future__ import annotations

import mqttraw as m
from persistence import helpers

from .conftest import TIMEOUT, bridge_status, bridge_toml, connected, wait_api
from .test_durability import remote_subscriber


def test_queue_bound_and_drop_order(make_broker, mosquitto):
    remote = mosquitto("allow_anonymous true")
    hub = m.Hub()
    sub = remote_subscriber(remote.port, "cloud-app", "edge/#", 1, hub)
    sub.close()
    remote.stop()
    b = make_broker(bridge_toml("cloud", remote.port, forward=[("sensors/#", "edge/", 1)], max_queued_messages=5))
    b.wait_log("bridge 'cloud': cannot connect")
    pub = helpers.connect(b, "device")
    qos_of = {1: 0, 2: 1, 3: 0, 4: 1, 5: 1, 6: 1, 7: 1, 8: 0, 9: 1}
    reasons = {}
    for n, qos in qos_of.items():
        reasons[n] = helpers.publish(pub, "sensors/s", b"%06d" % n, qos=qos, packet_id=n)
    # 1..5 fill the queue; 6 and 7 evict the oldest QoS 0 (1, then 3); 8 (QoS 0) finds it full; 9 (QoS 1)
    # finds no QoS 0 left to evict: refused.
    assert [reasons[n] for n in (2, 4, 5, 6, 7)] == [0, 0, 0, 0, 0], reasons
    assert reasons[9] == 0x97, reasons
    status = bridge_status(b, "cloud")
    assert (status["queued"], status["dropped"], status["refused"]) == (5, 4, 1), status

    # A 3.1.1 publisher has no negative acknowledgement: its connection is closed without PUBACK.
    v3 = helpers.connect(b, "device-v3", version=4, clean=False)
    v3.send(m.publish("sensors/s", b"%06d" % 10, qos=1, packet_id=10))
    assert [p.type for p in v3.expect_closed(TIMEOUT)] == [], "a 3.1.1 publisher got an answer"
    assert "a bridge's queue is full, and MQTT 3.1.1 has no negative acknowledgement" in b.log_text()
    status = bridge_status(b, "cloud")
    assert (status["queued"], status["dropped"], status["refused"]) == (5, 5, 2), status

    remote.start()
    connected(b, "cloud")
    wait_api(b, "cloud", lambda s: s["queued"] == 0 and s["inflight"] == 0, "the queue drained")
    helpers.publish(pub, "sensors/s", b"999999", qos=1, packet_id=11)
    sub2 = remote_subscriber(remote.port, "cloud-app", "edge/#", 1, hub, first=False)
    sub2.wait_for(lambda: any(p.fields["payload"] == b"999999" for p in sub2.publishes), "the sentinel")
    got = [int(p.fields["payload"]) for p in sub2.received()]
    assert got == [2, 4, 5, 6, 7, 999999], got
    # The drops are in $SYS and /metrics too (test_status.py reads them); the broker-wide counter has them.
    metrics = helpers_metrics(b)
    assert 'petrel_bridge_dropped_total{bridge="cloud",cause="refused"} 2' in metrics
    assert 'petrel_bridge_dropped_total{bridge="cloud",cause="other"} 3' in metrics


def helpers_metrics(b) -> str:
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{b.http_port}/metrics", timeout=TIMEOUT) as r:
        return r.read().decode()
