"""paho-mqtt 1.6.1 over WebSocket (transport="websockets", path /mqtt) against ws and wss listeners, MQTT 3.1.1
and 5.0; WebSocket and TCP clients of one broker exchanging messages; client certificates on wss.
(Debian's mosquitto_pub/mosquitto_sub are built without WebSocket support, so paho is the real client here;
tests/websocket/test_browser.py adds MQTT.js in a browser.)"""
from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
import pytest

import mqttclients as mc
import tlsclient as t

PROTOCOLS = {"v311": mqtt.MQTTv311, "v5": mqtt.MQTTv5}


def tls_for(pki, scheme: str, cert: str | None = None) -> ssl.SSLContext | None:
    return t.client_context(pki, cert) if scheme == "wss" else None


@pytest.mark.parametrize("proto", list(PROTOCOLS))
@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_paho_round_trip_all_qos(ws_broker, pki, paho_ws, scheme, proto):
    """A paho client over <scheme> connects (CONNACK 0), subscribes with QoS 2 (granted 2), publishes QoS 0, 1
    and 2 (the QoS 1 and 2 ones acknowledged) and receives all three in order with their QoS; the broker logs
    it as connected with its protocol version."""
    b = ws_broker(ws=scheme == "ws", wss=scheme == "wss")
    port = b.ws_port if scheme == "ws" else b.wss_port
    client_id = f"paho-{scheme}-{proto}"
    p = paho_ws(port, client_id, PROTOCOLS[proto], tls=tls_for(pki, scheme))
    _flags, rc, _props = p.connect()
    assert rc == 0
    topic = f"ws/paho/{scheme}/{proto}"
    assert p.subscribe(topic, 2) == [2]
    for qos in (0, 1, 2):
        p.publish(topic, f"qos {qos} over {scheme}".encode(), qos=qos)
    got = [p.message() for _ in range(3)]
    assert [(g.topic, g.payload, g.qos) for g in got] == [
        (topic, f"qos {q} over {scheme}".encode(), q) for q in (0, 1, 2)]
    line = next(ln for ln in b.wait_log(f"client connected: id={client_id} ").splitlines()
                if f"id={client_id} " in ln)
    assert f"protocol={'5.0' if proto == 'v5' else '3.1.1'}" in line, line
    p.disconnect()
    b.wait_log(f"client disconnected: id={client_id} ")


@pytest.mark.parametrize("proto", list(PROTOCOLS))
def test_mixed_transports(ws_broker, pki, paho, paho_ws, proto):
    """One broker with a tcp, a ws and a wss listener: a subscriber on each transport, and each of them
    publishes QoS 1: every subscriber receives all three messages (WebSocket to TCP, TCP to WebSocket, ws to
    wss and back)."""
    b = ws_broker(ws=True, wss=True)
    clients = {
        "tcp": paho(b.port, f"mix-tcp-{proto}", PROTOCOLS[proto]),
        "ws": paho_ws(b.ws_port, f"mix-ws-{proto}", PROTOCOLS[proto]),
        "wss": paho_ws(b.wss_port, f"mix-wss-{proto}", PROTOCOLS[proto], tls=t.client_context(pki)),
    }
    for c in clients.values():
        assert c.connect()[1] == 0
        assert c.subscribe("ws/mix/#", 1) == [1]
    for name, c in clients.items():
        c.publish(f"ws/mix/{name}", f"from {name}".encode(), qos=1)
    for name, c in clients.items():
        got = sorted((msg.topic, msg.payload) for msg in (c.message() for _ in range(3)))
        assert got == sorted((f"ws/mix/{n}", f"from {n}".encode()) for n in clients), f"{name} received {got}"


def test_wss_client_certificates_required(ws_broker, pki, paho_ws):
    """client_cert = "required" on wss: a paho client with a valid certificate connects and gets its QoS 1
    message back; one with an expired certificate and one with none cannot connect (the TLS or WebSocket
    handshake fails in connect()) and are logged with their reasons; the good client still works after."""
    b = ws_broker(ws=False, wss=True, client_cert="required")
    good = paho_ws(b.wss_port, "wss-cert-good", tls=t.client_context(pki, "alice"))
    assert good.connect()[1] == 0
    assert good.subscribe("ws/certs", 1) == [1]
    for presents, reason in (("expired", "certificate has expired"), (None, "no client certificate")):
        bad = paho_ws(b.wss_port, f"wss-cert-{presents}", tls=t.client_context(pki, presents))
        with pytest.raises((ssl.SSLError, OSError, mqtt.WebsocketConnectionError)):
            bad.connect()
        b.wait_log(f"reason={reason}" if presents is None else f"verify failed: {reason}")
        assert f"client connected: id=wss-cert-{presents} " not in b.log_text()
    good.publish("ws/certs", b"still served", qos=1)
    msg = good.message()
    assert (msg.topic, msg.payload) == ("ws/certs", b"still served")


def test_paho_ws_takeover(ws_broker, paho_ws):
    """Two paho WebSocket clients with the same id, MQTT 5: the second takes the session over, the first is
    disconnected (paho 1.6.1 does not decode a bare DISCONNECT reason code, so the reason is read from petrel's
    log; test_frames.py checks the bytes and the close status) and the second works."""
    b = ws_broker()
    first = paho_ws(b.ws_port, "paho-twin", mqtt.MQTTv5)
    assert first.connect()[1] == 0
    second = paho_ws(b.ws_port, "paho-twin", mqtt.MQTTv5)
    assert second.connect()[1] == 0
    first.disconnects.get(timeout=mc.TIMEOUT)
    assert not first.connected
    b.wait_log("reason=disconnected by server: session taken over")
    assert second.subscribe("ws/twin", 1) == [1]
    second.publish("ws/twin", b"I am the one", qos=1)
    assert second.message().payload == b"I am the one"
