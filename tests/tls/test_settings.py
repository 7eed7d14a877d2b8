"""TLS listener settings: protocol versions, ALPN, an encrypted server key, and configurations petrel must
refuse at start (exit code 1 for files it cannot use, 2 for configuration errors with file:line)."""
from __future__ import annotations

import ssl

import certs
import tlsclient as t

from .conftest import tls_listener_toml


def test_min_version_13_refuses_tls12_client(tls_broker, pki, sys_watch):
    """min_version = "1.3": a client that speaks at most TLS 1.2 fails the handshake (no CONNACK), the
    failure is logged for that peer and counted; a TLS 1.3 client still connects."""
    b = tls_broker(min_version="1.3")
    watch = sys_watch(b)
    out = t.try_connect(b.tls_port, t.client_context(pki, max_version=ssl.TLSVersion.TLSv1_2), "tls12-only")
    assert out.refused and not out.handshake_ok, out
    line = t.failure_line(b, out.local_port)
    assert "protocol" in line or "version" in line, line
    assert watch.wait_at_least("failures", 1) == 1
    ok = t.try_connect(b.tls_port, t.client_context(pki), "tls13")
    assert ok.connack is not None and ok.connack.fields["reason"] == 0 and ok.tls_version == "TLSv1.3", ok


def test_tls12_client_works_by_default(tls_broker, pki):
    """Default min_version is 1.2: a TLS 1.2-only client with a valid certificate connects (client_cert =
    "required") and round-trips a QoS 1 message."""
    b = tls_broker(client_cert="required")
    ctx = t.client_context(pki, "alice", max_version=ssl.TLSVersion.TLSv1_2)
    out = t.try_connect(b.tls_port, ctx, "tls12-alice", keep=True)
    assert out.connack is not None and out.connack.fields["reason"] == 0, out
    assert out.tls_version == "TLSv1.2"
    with out.client as c:
        t.qos1_roundtrip(c, "tls/v12", b"old but fine")


def test_tls12_client_with_bad_certificate_refused(tls_broker, pki, sys_watch):
    """Over TLS 1.2 the client certificate is verified inside the handshake: a revoked certificate makes
    the handshake itself fail, logged as "certificate revoked" and counted."""
    b = tls_broker(client_cert="required")
    watch = sys_watch(b)
    ctx = t.client_context(pki, "revoked", max_version=ssl.TLSVersion.TLSv1_2)
    out = t.try_connect(b.tls_port, ctx, "tls12-revoked")
    assert out.refused and not out.handshake_ok, out
    assert t.failure_line(b, out.local_port).endswith("reason=client certificate verify failed: certificate revoked")
    assert watch.wait_at_least("failures/certificate_revoked", 1) == 1


def test_max_version_12_negotiates_tls12(tls_broker, pki):
    """max_version = "1.2": a client able to speak TLS 1.3 negotiates TLS 1.2 and connects."""
    b = tls_broker(max_version="1.2")
    out = t.try_connect(b.tls_port, t.client_context(pki), "max12")
    assert out.connack is not None and out.connack.fields["reason"] == 0, out
    assert out.tls_version == "TLSv1.2"


def test_ciphersuites_restrict_tls13(tls_broker, pki):
    """ciphersuites = "TLS_CHACHA20_POLY1305_SHA256": TLS 1.3 handshakes use that suite."""
    b = tls_broker(ciphersuites="TLS_CHACHA20_POLY1305_SHA256")
    ctx = t.client_context(pki)
    sock = ctx.wrap_socket(t.raw_connection(b.tls_port), server_hostname="localhost")
    try:
        assert sock.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256", sock.cipher()
    finally:
        sock.close()


def test_ciphers_restrict_tls12(tls_broker, pki):
    """ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256": a TLS 1.2 client negotiates that cipher; a TLS 1.2 client
    offering only other ciphers fails the handshake (logged)."""
    b = tls_broker(ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    ctx = t.client_context(pki, max_version=ssl.TLSVersion.TLSv1_2)
    sock = ctx.wrap_socket(t.raw_connection(b.tls_port), server_hostname="localhost")
    try:
        assert sock.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256", sock.cipher()
    finally:
        sock.close()
    other = t.client_context(pki, max_version=ssl.TLSVersion.TLSv1_2)
    other.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
    out = t.try_connect(b.tls_port, other, "wrong-cipher")
    assert out.refused and not out.handshake_ok, out
    t.failure_line(b, out.local_port)


def test_alpn_selects_configured_protocol(tls_broker, pki):
    """alpn = ["mqtt"]: a client offering "mqtt" gets it selected and connects."""
    b = tls_broker(alpn=["mqtt"])
    ctx = t.client_context(pki)
    ctx.set_alpn_protocols(["x-other", "mqtt"])
    sock = ctx.wrap_socket(t.raw_connection(b.tls_port), server_hostname="localhost")
    try:
        assert sock.selected_alpn_protocol() == "mqtt"
    finally:
        sock.close()
    out = t.try_connect(b.tls_port, ctx, "alpn-mqtt")
    assert out.connack is not None and out.connack.fields["reason"] == 0, out


def test_alpn_mismatch_refused(tls_broker, pki):
    """alpn = ["mqtt"]: a client offering only other protocols fails the handshake, and it is logged."""
    b = tls_broker(alpn=["mqtt"])
    ctx = t.client_context(pki)
    ctx.set_alpn_protocols(["h2"])
    out = t.try_connect(b.tls_port, ctx, "alpn-h2")
    assert out.refused and not out.handshake_ok, out
    t.failure_line(b, out.local_port)


def test_encrypted_server_key_with_password(tls_broker, pki):
    """key_file encrypted (PKCS#8) + the right key_password: petrel starts and serves TLS with that key."""
    b = tls_broker(key_file=pki.server_key_encrypted, key_password=certs.KEY_PASSWORD)
    out = t.try_connect(b.tls_port, t.client_context(pki), "enc-key")
    assert out.connack is not None and out.connack.fields["reason"] == 0, out
    assert out.peer_cert == pki.server.der


def _tls_only_config(pki, **keys) -> str:
    return 'threads = 1\n[log]\nlevel = "info"\n' + tls_listener_toml(pki, t.free_port(), **keys)


def test_encrypted_server_key_wrong_password_fails_start(pki, petrel_exit):
    """A wrong key_password: petrel refuses to start, exit code 1, with an error naming the key file."""
    rc, output, _ = petrel_exit(_tls_only_config(pki, key_file=pki.server_key_encrypted, key_password="wrong"))
    assert rc == 1, output
    assert str(pki.server_key_encrypted) in output, output


def test_encrypted_server_key_without_password_fails_start(pki, petrel_exit):
    """An encrypted key without key_password (no terminal): petrel exits 1 naming the key file."""
    rc, output, _ = petrel_exit(_tls_only_config(pki, key_file=pki.server_key_encrypted))
    assert rc == 1, output
    assert str(pki.server_key_encrypted) in output, output


def test_encrypted_server_key_without_password_does_not_prompt(pki, petrel_exit):
    """Started from a terminal, with an encrypted key and no key_password, petrel must not stop to ask for a
    pass phrase on the terminal (OpenSSL's default when no password callback is set; on SIGHUP that would
    block an event loop): key_password is the way to give it, so petrel exits 1 naming the key file."""
    rc, output, _ = petrel_exit(_tls_only_config(pki, key_file=pki.server_key_encrypted), timeout=3, tty=True)
    assert "pass phrase" not in output, output
    assert rc == 1, output
    assert str(pki.server_key_encrypted) in output, output


def test_invalid_cipher_list_fails_start(pki, petrel_exit):
    """A TLS 1.2 cipher list OpenSSL cannot use: petrel exits 1 and quotes the list."""
    rc, output, _ = petrel_exit(_tls_only_config(pki, ciphers="NO-SUCH-CIPHER"))
    assert rc == 1, output
    assert "NO-SUCH-CIPHER" in output, output


def test_client_cert_required_without_ca_is_config_error(pki, petrel_exit):
    """client_cert = "required" without ca_file or ca_dir is a configuration error: exit code 2, and the
    message gives file:line of the offending setting."""
    config = _tls_only_config(pki, client_cert="required", ca_file=None, crl_file=None)
    line = next(i for i, ln in enumerate(config.splitlines(), 1) if ln.startswith("client_cert"))
    rc, output, path = petrel_exit(config)
    assert rc == 2, output
    assert f"{path}:{line}:" in output, output
    assert "ca_file" in output, output


def test_invalid_min_version_is_config_error(pki, petrel_exit):
    """min_version = "1.1" (not "1.2"/"1.3") is a configuration error: exit code 2 with file:line."""
    config = _tls_only_config(pki, min_version="1.1")
    line = next(i for i, ln in enumerate(config.splitlines(), 1) if ln.startswith("min_version"))
    rc, output, path = petrel_exit(config)
    assert rc == 2, output
    assert f"{path}:{line}:" in output, output


def test_missing_certificate_file_fails_start(pki, petrel_exit, tmp_path):
    """A cert_file that does not exist: petrel exits 1 naming the file (it never serves without it)."""
    missing = tmp_path / "no-such-cert.pem"
    rc, output, _ = petrel_exit(_tls_only_config(pki, cert_file=missing))
    assert rc == 1, output
    assert str(missing) in output, output


def _resumed(port: int, ctx: ssl.SSLContext, client_id: str) -> bool:
    """Connects twice with `ctx` (TLS 1.2, where Python can offer the first connection's session), sending
    CONNECT each time; returns whether the second handshake resumed the first's session."""
    import socket

    import mqttraw as m
    session = None
    for attempt in range(2):
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        c = m.RawClient.over(s, version=4)
        assert c.connect(f"{client_id}-{attempt}").fields["reason"] == 0
        resumed, session = s.session_reused, s.session
        c.send(m.disconnect())
        c.expect_closed()
        c.close()
    return resumed


def test_no_session_resumption_by_default(tls_broker, pki):
    """session_tickets = false (the default): no ticket is issued and nothing is cached, so a client offering
    its previous session gets a full handshake (no CPU spent on tickets nobody asked for)."""
    b = tls_broker()
    ctx = t.client_context(pki, max_version=ssl.TLSVersion.TLSv1_2)
    assert _resumed(b.tls_port, ctx, "no-resume") is False


def test_session_tickets_let_clients_resume(tls_broker, pki):
    """session_tickets = true: a reconnecting client resumes its session instead of a full handshake."""
    b = tls_broker(session_tickets=True)
    ctx = t.client_context(pki, max_version=ssl.TLSVersion.TLSv1_2)
    assert _resumed(b.tls_port, ctx, "resume") is True
