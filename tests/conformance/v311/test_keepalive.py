"""Keep alive (MQTT 3.1.1 section 3.1.2.10). Keep alive 1 s: the server closes after 1.5 s of silence."""
import time

import mqttraw as m

from .helpers import Stopwatch, connected, expect_closed_silently


def test_silent_client_closed_after_one_and_a_half_keep_alive(broker):
    """[MQTT-3.1.2-24] A client that sends nothing for 1.5 x keep alive (1 s) is disconnected — not before
    1.5 s, without any packet (v3.1.1)."""
    c = connected(broker, "ka1", keepalive=1)
    watch = Stopwatch()
    expect_closed_silently(c)
    assert 1.3 <= watch.elapsed() <= 2.6, watch.elapsed()


def test_pingreq_keeps_the_connection_alive(broker):
    """[MQTT-3.1.2-23] [MQTT-3.12.4-1] A client sending PINGREQ every 0.4 s outlives 1.5 x keep alive."""
    c = connected(broker, "ka2", keepalive=1)
    watch = Stopwatch()
    while watch.elapsed() < 1.6:
        time.sleep(0.4)  # the client's own pacing, not a synchronisation
        c.send(m.pingreq())
        c.expect(m.PINGRESP)


def test_any_control_packet_resets_keep_alive(broker):
    """[MQTT-3.1.2-23] Any control packet counts as activity: QoS 0 PUBLISHes every 0.4 s keep the connection
    open past 1.5 x keep alive."""
    c = connected(broker, "ka3", keepalive=1)
    watch = Stopwatch()
    while watch.elapsed() < 1.6:
        time.sleep(0.4)  # the client's own pacing, not a synchronisation
        c.send(m.publish("ka3/t", b"alive", qos=0))
    c.send(m.pingreq())
    c.expect(m.PINGRESP)


def test_v31_keep_alive_timeout(broker):
    """MQTT 3.1 has the same rule: a silent 3.1 client (keep alive 1 s) is closed after about 1.5 s."""
    c = connected(broker, "ka4", version=3, keepalive=1)
    watch = Stopwatch()
    expect_closed_silently(c)
    assert 1.3 <= watch.elapsed() <= 2.6, watch.elapsed()
