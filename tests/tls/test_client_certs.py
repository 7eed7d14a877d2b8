"""Client certificate policies of a TLS listener (docs/tls.md, "How a TLS connection is handled" steps 4-5).

client_cert = "required": only a certificate that verifies against ca_file (and crl_file) gets to MQTT;
every other attempt is closed without a CONNACK, logged with the true reason and counted in
$SYS/broker/listeners/tls/failures/<label>. "optional": no certificate is fine, a bad one is not. "none":
no certificate is asked for. identity_as_username puts the certificate's CN / SAN in the connect log line.
"""
from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

import certs
import tlsclient as t

# kind -> (words of the log reason, $SYS label); "none" is a client without any certificate.
REFUSED = {kind: (f"client certificate verify failed: {words}", label)
           for kind, (words, label) in certs.INVALID_CLIENTS.items()}
# OpenSSL 3.0 words X509_V_ERR_INVALID_PURPOSE "unsuitable certificate purpose" (1.1.1: "unsupported ...").
REFUSED["server_eku"] = ("client certificate verify failed: ", "certificate_wrong_purpose")
REFUSED["none"] = ("no client certificate", "no_client_certificate")


def assert_refused_and_logged(broker, out: t.Outcome, reason: str) -> str:
    """The attempt never got a CONNACK and was closed; the broker logged the reason for this very peer."""
    assert out.refused, out
    line = t.failure_line(broker, out.local_port)
    assert f"reason={reason}" in line, line
    return line


def test_required_valid_certificate_connects_and_round_trips(tls_broker, pki):
    """client_cert = "required": a certificate signed by ca_file, not revoked, clientAuth, gets CONNACK 0
    and a QoS 1 PUBLISH comes back through the broker to its subscriber [MQTT-4.3.2]."""
    b = tls_broker(client_cert="required")
    out = t.try_connect(b.tls_port, t.client_context(pki, "alice"), "req-alice", keep=True)
    assert out.connack is not None and out.connack.fields["reason"] == 0, out
    with out.client as c:
        t.qos1_roundtrip(c, "tls/req/alice", b"hello over TLS")
    assert "TLS handshake failed" not in b.log_text()


def test_required_accepts_certificate_chain(tls_broker, pki):
    """A client certificate issued by an intermediate CA, sent with the intermediate, verifies against a
    ca_file holding only the root (crl_file holding both CAs' CRLs): CONNACK 0."""
    b = tls_broker(client_cert="required", crl_file=pki.crl_all)
    out = t.try_connect(b.tls_port, t.client_context(pki, "chained"), "req-chained")
    assert out.connack is not None and out.connack.fields["reason"] == 0, out


def test_server_certificate_chain_is_sent(tls_broker, pki):
    """cert_file holding a server certificate and its intermediate CA: petrel sends the chain, so a client
    trusting only the root verifies it and connects."""
    b = tls_broker(cert_file=pki.server_chained.cert, key_file=pki.server_chained.key)
    out = t.try_connect(b.tls_port, t.client_context(pki), "chain-server")
    assert out.connack is not None and out.connack.fields["reason"] == 0, out
    assert out.peer_cert == pki.server_chained.der


def test_server_chain_completed_from_ca_file(tls_broker, pki, tmp_path):
    """cert_file holding only a server certificate issued by an intermediate CA, ca_file holding the
    intermediate and the root: petrel completes its chain from the CA store (built once when the listener
    loads its certificates, not per handshake), so a client trusting only the root verifies it, on every
    connection."""
    leaf = pki.intermediate.issue(
        tmp_path / "server-leaf-only", "localhost", eku=(ExtendedKeyUsageOID.SERVER_AUTH,),
        sans=(x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))))
    cas = tmp_path / "cas.pem"
    cas.write_bytes(pki.intermediate.cert.read_bytes() + pki.ca.read_bytes())
    b = tls_broker(cert_file=leaf.cert, key_file=leaf.key, client_cert="optional", ca_file=cas, crl_file=None)
    for i in range(3):
        out = t.try_connect(b.tls_port, t.client_context(pki), f"chain-built-{i}")
        assert out.connack is not None and out.connack.fields["reason"] == 0, out
        assert out.peer_cert == leaf.der


@pytest.mark.parametrize("kind", list(REFUSED))
def test_required_refuses_invalid_certificate(tls_broker, pki, sys_watch, kind):
    """client_cert = "required": a self-signed certificate, one from another CA, an expired one, a not yet
    valid one, a revoked one (crl_file), one whose extendedKeyUsage is serverAuth only, and no certificate at
    all are each refused before MQTT: no CONNACK, the connection closed, one log line naming the real reason,
    and the failure counted under its own $SYS label."""
    reason, label = REFUSED[kind]
    b = tls_broker(client_cert="required")
    watch = sys_watch(b)
    out = t.try_connect(b.tls_port, t.client_context(pki, None if kind == "none" else kind), f"req-{kind}")
    line = assert_refused_and_logged(b, out, reason)
    if kind == "server_eku":
        assert "certificate purpose" in line, line
    assert watch.wait_at_least(f"failures/{label}", 1) == 1
    assert watch.wait_at_least("failures", 1) == 1
    assert f"client connected: id=req-{kind} " not in b.log_text()


def test_required_refusal_leaves_listener_serving(tls_broker, pki):
    """A refused client certificate ends that connection only: the next good client on the same listener
    connects (docs/tls.md: a TLS failure belongs to that one connection)."""
    b = tls_broker(client_cert="required")
    for kind in ("expired", "other_ca", "none"):
        bad = t.try_connect(b.tls_port, t.client_context(pki, None if kind == "none" else kind), f"bad-{kind}")
        assert bad.refused, bad
    good = t.try_connect(b.tls_port, t.client_context(pki, "alice"), "after-bad")
    assert good.connack is not None and good.connack.fields["reason"] == 0, good


def test_optional_accepts_no_certificate(tls_broker, pki):
    """client_cert = "optional": a client without a certificate completes the handshake and gets CONNACK 0."""
    b = tls_broker(client_cert="optional")
    out = t.try_connect(b.tls_port, t.client_context(pki), "opt-none", keep=True)
    assert out.connack is not None and out.connack.fields["reason"] == 0, out
    with out.client as c:
        t.qos1_roundtrip(c, "tls/opt/none", b"x")


def test_optional_accepts_valid_certificate(tls_broker, pki):
    """client_cert = "optional": a valid certificate is accepted too."""
    b = tls_broker(client_cert="optional")
    out = t.try_connect(b.tls_port, t.client_context(pki, "alice"), "opt-alice")
    assert out.connack is not None and out.connack.fields["reason"] == 0, out


def test_optional_refuses_bad_certificate(tls_broker, pki, sys_watch):
    """client_cert = "optional": a certificate that is presented must verify; an expired one is refused
    (no CONNACK), logged as expired and counted as certificate_expired."""
    b = tls_broker(client_cert="optional")
    watch = sys_watch(b)
    out = t.try_connect(b.tls_port, t.client_context(pki, "expired"), "opt-expired")
    assert_refused_and_logged(b, out, "client certificate verify failed: certificate has expired")
    assert watch.wait_at_least("failures/certificate_expired", 1) == 1


def test_none_policy_connects_without_certificate(tls_broker, pki):
    """client_cert = "none" (the default): a client without a certificate gets CONNACK 0 over TLS."""
    b = tls_broker()
    out = t.try_connect(b.tls_port, t.client_context(pki), "none-plain", keep=True)
    assert out.connack is not None and out.connack.fields["reason"] == 0, out
    assert out.tls_version == "TLSv1.3"
    with out.client as c:
        t.qos1_roundtrip(c, "tls/none/plain", b"y")


def test_identity_as_username_cn(tls_broker, pki):
    """identity_as_username = "cn": the user name is the certificate's CN, whatever user name the CONNECT
    carries (the certificate is the authenticated identity); the connect log line shows user=alice."""
    b = tls_broker(client_cert="required", identity_as_username="cn")
    out = t.try_connect(b.tls_port, t.client_context(pki, "alice"), "ident-cn", username="mallory")
    assert out.connack is not None and out.connack.fields["reason"] == 0, out
    log = b.wait_log("client connected: id=ident-cn ")
    line = next(ln for ln in log.splitlines() if "client connected: id=ident-cn " in ln)
    assert line.endswith(" user=alice"), line


def test_identity_as_username_san(tls_broker, pki):
    """identity_as_username = "san": the user name is the certificate's first subjectAltName (here the DNS
    name, listed before the e-mail address), not its CN; the connect log line shows it."""
    b = tls_broker(client_cert="required", identity_as_username="san")
    out = t.try_connect(b.tls_port, t.client_context(pki, "san"), "ident-san")
    assert out.connack is not None and out.connack.fields["reason"] == 0, out
    log = b.wait_log("client connected: id=ident-san ")
    line = next(ln for ln in log.splitlines() if "client connected: id=ident-san " in ln)
    assert line.endswith(f" user={certs.SAN_DNS}"), line


def test_identity_as_username_none_keeps_connect_username(tls_broker, pki):
    """identity_as_username = "none" (default): the CONNECT's user name stays the user name."""
    b = tls_broker(client_cert="required")
    out = t.try_connect(b.tls_port, t.client_context(pki, "alice"), "ident-none", username="bob")
    assert out.connack is not None and out.connack.fields["reason"] == 0, out
    log = b.wait_log("client connected: id=ident-none ")
    line = next(ln for ln in log.splitlines() if "client connected: id=ident-none " in ln)
    assert line.endswith(" user=bob"), line
