"""/metrics in the Prometheus text format 0.0.4, read with the official parser (Debian's
python3-prometheus-client), not by string matching: every family is typed, names follow the conventions
(petrel_ or the standard process_ prefix, counters end in _total), and the values follow what the test did:
clients by listener and protocol, messages and bytes by QoS in and out, retained messages, subscriptions,
sessions, the store's commit latency histogram, the certificate expiry gauge, process facts.
"""
from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import certs
import mqttraw as m
from petrel_paths import free_port


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> certs.Pki:
    return certs.Pki(tmp_path_factory.mktemp("pki"))


def scrape(api) -> tuple[dict, dict]:
    r = api.get("/metrics")
    assert r.status == 200, r
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    samples = {}
    for f in families.values():
        for s in f.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return families, samples


def value(samples: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no sample {key}; have {[k for k in samples if k[0] == name]}"
    return samples[key]


def publish_each_qos(c: m.RawClient, topic: str) -> None:
    c.send(m.publish(topic, b"q0", qos=0, version=5))
    c.send(m.publish(topic, b"q1", qos=1, packet_id=1, version=5))
    assert c.expect(m.PUBACK).fields["packet_id"] == 1
    c.send(m.publish(topic, b"q2", qos=2, packet_id=2, version=5))
    assert c.expect(m.PUBREC).fields["packet_id"] == 2
    c.send(m.ack(m.PUBREL, 2))
    assert c.expect(m.PUBCOMP).fields["packet_id"] == 2


def test_metrics_parse_and_follow_the_traffic(http_broker, pki):
    tls_port = free_port()
    b = http_broker(f'[[listener]]\nname = "tls"\ntype = "tls"\nbind = "127.0.0.1"\nport = {tls_port}\n'
                    f'cert_file = "{pki.server.cert}"\nkey_file = "{pki.server.key}"\n')
    families, samples = scrape(b.api)
    for name, f in families.items():
        assert f.type in ("counter", "gauge", "histogram"), (name, f.type)
        assert name.startswith("petrel_") or name.startswith("process_"), name
        if f.type == "counter":
            assert all(s.name == name + "_total" for s in f.samples), (name, f.samples)
    assert value(samples, "petrel_messages_in_total", qos="1") == 0

    with m.RawClient(b.port, version=5) as sub, m.RawClient(b.port, version=5) as pub, \
            m.RawClient(b.port, version=4) as v3:
        assert sub.connect("metrics-sub").fields["reason"] == 0
        sub.send(m.subscribe(1, [("metrics/#", 2)], version=5))
        assert sub.expect(m.SUBACK).fields["reasons"] == [2]
        assert pub.connect("metrics-pub").fields["reason"] == 0
        assert v3.connect("metrics-v3").fields["reason"] == 0
        publish_each_qos(pub, "metrics/t")
        pub.send(m.publish("retained/one", b"kept", qos=1, packet_id=3, retain=True, version=5))
        assert pub.expect(m.PUBACK).fields["packet_id"] == 3
        for _ in range(3):
            assert sub.expect(m.PUBLISH).fields["topic"] == "metrics/t"

        families, samples = scrape(b.api)
        assert value(samples, "petrel_connections", listener="test", protocol="5.0") == 2
        assert value(samples, "petrel_connections", listener="test", protocol="3.1.1") == 1
        assert value(samples, "petrel_sessions", state="online") == 3
        assert value(samples, "petrel_connects_total", result="accepted") == 3
        for q in ("0", "1", "2"):
            assert value(samples, "petrel_messages_out_total", qos=q) == 1, q
            assert value(samples, "petrel_message_bytes_out_total", qos=q) == len("metrics/t") + 2
        assert value(samples, "petrel_messages_in_total", qos="0") == 1
        assert value(samples, "petrel_messages_in_total", qos="2") == 1
        assert value(samples, "petrel_messages_in_total", qos="1") == 2  # with the retained one
        assert value(samples, "petrel_subscriptions") == 1
        assert value(samples, "petrel_retained_messages") >= 1
        assert value(samples, "petrel_messages_dropped_total", cause="queue_full") == 0
        assert value(samples, "petrel_publish_packets_received_total") == 4
        assert value(samples, "petrel_listener_accepting", listener="tls", type="tls") == 1
        assert value(samples, "petrel_listener_connections", listener="test") == 3
        assert value(samples, "petrel_listener_accepts_total", listener="test") >= 3

        # The certificate's expiry, as the certificate says.
        expiry = value(samples, "petrel_tls_certificate_expiry_timestamp_seconds", listener="tls",
                       subject="CN=localhost,O=petrel tests")
        assert expiry == pki.server.x509.not_valid_after.replace(tzinfo=__import__("datetime").timezone.utc) \
            .timestamp()

        # The store committed the retained message: its latency histogram counted it, buckets are
        # cumulative and end at +Inf = _count.
        hist = families["petrel_store_commit_duration_seconds"]
        buckets = [(s.labels["le"], s.value) for s in hist.samples if s.name.endswith("_bucket")]
        assert buckets[-1][0] == "+Inf"
        counts = [v for _, v in buckets]
        assert counts == sorted(counts) and counts[-1] >= 1
        assert value(samples, "petrel_store_commit_duration_seconds_count") == counts[-1]
        assert value(samples, "petrel_store_writable", type="sqlite") == 1

        # The process.
        assert value(samples, "process_open_fds") >= 5
        assert value(samples, "process_resident_memory_bytes") > 1 << 20
        assert abs(value(samples, "process_start_time_seconds") - time.time()) < 600
        assert value(samples, "process_max_fds") >= value(samples, "process_open_fds")
        assert value(samples, "petrel_http_responses_total", code="200") >= 1

        v3.send(m.disconnect())
        v3.expect_closed()
    deadline = time.monotonic() + 5
    while True:
        _, samples = scrape(b.api)
        if value(samples, "petrel_sessions", state="online") == 0 or time.monotonic() > deadline:
            break
    assert value(samples, "petrel_disconnects_total", reason="normal") == 1
    assert value(samples, "petrel_disconnects_total", reason="abnormal") == 2


def test_handshake_failures_are_counted_by_reason(http_broker, pki):
    import socket
    tls_port = free_port()
    b = http_broker(f'[[listener]]\nname = "tls"\ntype = "tls"\nbind = "127.0.0.1"\nport = {tls_port}\n'
                    f'cert_file = "{pki.server.cert}"\nkey_file = "{pki.server.key}"\n')
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", tls_port)) as s:
            s.sendall(m.connect("plain-to-tls"))
            s.settimeout(5)
            try:
                while s.recv(100):
                    pass
            except OSError:
                pass
    deadline = time.monotonic() + 5
    while True:
        _, samples = scrape(b.api)
        key = ("petrel_handshake_failures_total", (("listener", "tls"), ("reason", "plaintext_mqtt")))
        if samples.get(key) == 3 or time.monotonic() > deadline:
            break
    assert samples.get(key) == 3, [k for k in samples if k[0] == "petrel_handshake_failures_total"]
    detail = b.api.get("/api/v1/listeners/tls").json()
    assert detail["handshake_failures"]["plaintext_mqtt"] == {"total": 3, "last_minute": 3}
