"""Real TLS clients against a TLS listener with client_cert = "required": Debian's mosquitto_pub /
mosquitto_sub (--cafile/--cert/--key, libmosquitto over OpenSSL) and paho-mqtt 1.6.1 (tls_set)."""
from __future__ import annotations

import ssl
import subprocess

import pytest

import mqttclients as mc


def tls_args(pki, cert: str | None = "alice") -> list[str]:
    args = ["--cafile", str(pki.ca)]
    if cert is not None:
        args += ["--cert", str(pki.clients[cert].cert), "--key", str(pki.clients[cert].key)]
    return args


def test_mosquitto_clients_with_client_certificates(tls_broker, pki, mosq_sub):
    """mosquitto_sub and mosquitto_pub, each with a client certificate, exchange a QoS 1 message through
    petrel's TLS listener (server certificate verified for 127.0.0.1 against the CA)."""
    b = tls_broker(client_cert="required")
    sub = mosq_sub(b.tls_port, ["tls/mosq"], client_id="mosq-tls-sub", qos=1, count=1, extra=tls_args(pki))
    assert sub.wait_subscribed() == [1]
    mc.mosquitto_pub(b.tls_port, "tls/mosq", message="via mosquitto over TLS", client_id="mosq-tls-pub", qos=1,
                     extra=tls_args(pki, "san"))
    assert sub.messages(1) == [b"via mosquitto over TLS"]
    assert sub.wait() == 0
    b.wait_log("client connected: id=mosq-tls-pub ")


def test_mosquitto_pub_with_expired_certificate_refused(tls_broker, pki):
    """mosquitto_pub with an expired client certificate cannot publish (non-zero exit) and petrel logs the
    expiry for it."""
    b = tls_broker(client_cert="required")
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.tls_port), "-i", "mosq-expired", "-q", "1",
            "-t", "tls/mosq", "-m", "nope", *tls_args(pki, "expired")]
    res = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=mc.TIMEOUT)
    assert res.returncode != 0, res
    b.wait_log("reason=client certificate verify failed: certificate has expired")
    assert "client connected: id=mosq-expired " not in b.log_text()


def test_paho_tls_set_round_trip(tls_broker, pki, paho):
    """paho-mqtt with tls_set(ca, cert, key) connects (CONNACK 0), subscribes and gets its own QoS 1
    message back."""
    b = tls_broker(client_cert="required")
    p = paho(b.tls_port, "paho-tls")
    alice = pki.clients["alice"]
    p.client.tls_set(ca_certs=str(pki.ca), certfile=str(alice.cert), keyfile=str(alice.key),
                     tls_version=ssl.PROTOCOL_TLS_CLIENT)
    _flags, rc, _props = p.connect()
    assert rc == 0
    assert p.subscribe("tls/paho", 1) == [1]
    p.publish("tls/paho", b"paho over TLS", qos=1)
    msg = p.message()
    assert (msg.topic, msg.payload, msg.qos) == ("tls/paho", b"paho over TLS", 1)
