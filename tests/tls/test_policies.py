"""Every client certificate policy (docs/tls.md steps 4-5, docs/configuration.md client_cert) for each client
a TLS listener meets, over TLS 1.2 and TLS 1.3 (forced from the client side):

| client_cert | valid certificate | no certificate | invalid (expired) certificate |
| ----------- | ----------------- | -------------- | ----------------------------- |
| "none"      | connects          | connects       | connects: none is asked for, so the client sends none |
| "optional"  | connects          | connects       | refused, "certificate has expired" |
| "required"  | connects          | refused, "no client certificate" | refused, "certificate has expired" |

The certificate is checked in a different place per version: inside the handshake for TLS 1.2 (the
handshake itself fails), after the client finished its side of it for TLS 1.3 (the client's handshake
completes, then the broker closes without a CONNACK). Either way a refused client never reaches MQTT.
"""
from __future__ import annotations

import pytest

import mqttraw as m
import tlsclient as t

# what the client presents -> the certificate in pki.clients (None: no certificate)
PRESENTS = {"valid": "alice", "none": None, "expired": "expired"}
EXPIRED = "client certificate verify failed: certificate has expired"
LABELS = {EXPIRED: "certificate_expired", "no client certificate": "no_client_certificate"}
# (policy, presents) -> None when the client connects, else the reason petrel logs for the refusal
EXPECTED = {
    ("none", "valid"): None, ("none", "none"): None, ("none", "expired"): None,
    ("optional", "valid"): None, ("optional", "none"): None, ("optional", "expired"): EXPIRED,
    ("required", "valid"): None, ("required", "none"): "no client certificate", ("required", "expired"): EXPIRED,
}


@pytest.mark.parametrize("presents", list(PRESENTS))
@pytest.mark.parametrize("policy", ["none", "optional", "required"])
@pytest.mark.parametrize("version", list(t.TLS_VERSIONS))
def test_client_cert_policy(tls_broker, pki, sys_watch, version, policy, presents):
    """client_cert = <policy>, a client speaking only TLS <version> and presenting <presents>: it connects
    (CONNACK 0 as the first packet [MQTT-3.2.0-1], a QoS 1 round trip, the negotiated version is the forced
    one) or it is refused as the table in the module docstring says: closed without a CONNACK, with one log
    line naming the real reason for that peer, never logged as connected, and (TLS 1.2; test_client_certs.py
    checks TLS 1.3) counted under the reason's $SYS label."""
    b = tls_broker(client_cert=policy)
    ctx = t.pinned_context(pki, version, PRESENTS[presents])
    client_id = f"pol-{policy}-{presents}-{version}"
    out = t.try_connect(b.tls_port, ctx, client_id, keep=True)
    refusal = EXPECTED[(policy, presents)]
    if refusal is None:
        assert out.connack is not None and out.connack.fields["reason"] == 0, out
        assert out.tls_version == f"TLSv{version}", out.tls_version
        with out.client as c:
            t.qos1_roundtrip(c, f"tls/policy/{policy}/{presents}", version.encode())
            c.send(m.disconnect())
        assert "TLS handshake failed" not in b.log_text()
        b.wait_log(f"client connected: id={client_id} ")
    else:
        assert out.refused, out
        if version == "1.2":
            assert not out.handshake_ok, f"TLS 1.2 verifies the client certificate in the handshake: {out}"
        line = t.failure_line(b, out.local_port)
        assert line.endswith(f"reason={refusal}"), line
        assert f"client connected: id={client_id} " not in b.log_text()
        if version == "1.2":
            assert sys_watch(b).wait_at_least(f"failures/{LABELS[refusal]}", 1) == 1
