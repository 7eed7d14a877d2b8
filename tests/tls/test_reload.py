"""SIGHUP re-reads every TLS listener's certificate, key, CA and CRL files (docs/tls.md, "Reloading
certificates"): new handshakes use the new files, established connections keep working, and files that do not
load leave the previous certificates in place."""
from __future__ import annotations

import shutil
import signal
import threading

import certs
import tlsclient as t

RELOADED = "listener 'tls': TLS certificates reloaded"
RELOAD_FAILED = "listener 'tls': TLS reload failed, keeping the previous certificates: "


def own_copies(pki, tmp_path):
    """The server certificate, key and CRL copied where the test may overwrite them."""
    cert, key, crl = tmp_path / "live-server.pem", tmp_path / "live-server.key", tmp_path / "live-crl.pem"
    shutil.copyfile(pki.server.cert, cert)
    shutil.copyfile(pki.server.key, key)
    shutil.copyfile(pki.crl, crl)
    return cert, key, crl


def hup(broker) -> None:
    broker.proc.send_signal(signal.SIGHUP)


def test_sighup_reloads_server_certificate(tls_broker, pki, tmp_path):
    """After the server certificate and key files are replaced and SIGHUP is sent, a new handshake presents
    the new certificate, while a connection established before the reload still completes a QoS 1 round
    trip."""
    cert, key, _ = own_copies(pki, tmp_path)
    b = tls_broker(cert_file=cert, key_file=key)
    before = t.try_connect(b.tls_port, t.client_context(pki), "before-reload", keep=True)
    assert before.connack is not None and before.connack.fields["reason"] == 0, before
    assert before.peer_cert == pki.server.der
    with before.client as old:
        new = pki.issue_server(tmp_path / "next-server", org="petrel reloaded")
        assert new.serial != pki.server.serial
        cert.write_bytes(new.cert.read_bytes())
        key.write_bytes(new.key.read_bytes())
        hup(b)
        b.wait_log(RELOADED)
        after = t.try_connect(b.tls_port, t.client_context(pki), "after-reload")
        assert after.connack is not None and after.connack.fields["reason"] == 0, after
        assert after.peer_cert == new.der
        t.qos1_roundtrip(old, "tls/reload/old", b"still here")
    assert b.alive()


def test_sighup_with_garbage_certificate_keeps_previous(tls_broker, pki, tmp_path):
    """Garbage in the certificate file: SIGHUP logs that the reload failed (naming the file) and new
    handshakes still get the previous certificate."""
    cert, key, _ = own_copies(pki, tmp_path)
    b = tls_broker(cert_file=cert, key_file=key)
    cert.write_bytes(b"this is not a certificate\n" * 20)
    hup(b)
    log = b.wait_log(RELOAD_FAILED)
    line = next(ln for ln in log.splitlines() if RELOAD_FAILED in ln)
    assert str(cert) in line, line
    assert RELOADED not in log
    out = t.try_connect(b.tls_port, t.client_context(pki), "after-bad-reload")
    assert out.connack is not None and out.connack.fields["reason"] == 0, out
    assert out.peer_cert == pki.server.der


def test_sighup_with_mismatched_key_keeps_previous_then_recovers(tls_broker, pki, tmp_path):
    """A new certificate whose key file has not been replaced yet does not load (key mismatch): the previous
    certificate stays; once the matching key is in place, the next SIGHUP loads the new certificate."""
    cert, key, _ = own_copies(pki, tmp_path)
    b = tls_broker(cert_file=cert, key_file=key)
    new = pki.issue_server(tmp_path / "next-server", org="petrel reloaded")
    cert.write_bytes(new.cert.read_bytes())
    hup(b)
    b.wait_log(RELOAD_FAILED)
    out = t.try_connect(b.tls_port, t.client_context(pki), "mismatch")
    assert out.connack is not None and out.peer_cert == pki.server.der, out
    key.write_bytes(new.key.read_bytes())
    hup(b)
    b.wait_log(RELOADED)
    out = t.try_connect(b.tls_port, t.client_context(pki), "matched")
    assert out.connack is not None and out.peer_cert == new.der, out


def test_sighup_reloads_crl(tls_broker, pki, tmp_path, sys_watch):
    """A client certificate revoked in a new CRL is refused after SIGHUP ("certificate revoked"), though it
    connected before; other valid certificates still connect."""
    cert, key, crl = own_copies(pki, tmp_path)
    b = tls_broker(client_cert="required", cert_file=cert, key_file=key, crl_file=crl)
    watch = sys_watch(b)
    spare = t.client_context(pki, "spare")
    first = t.try_connect(b.tls_port, spare, "spare-before")
    assert first.connack is not None and first.connack.fields["reason"] == 0, first
    pki.write_crl(crl, [pki.clients["revoked"].serial, pki.clients["spare"].serial])
    hup(b)
    b.wait_log(RELOADED)
    out = t.try_connect(b.tls_port, spare, "spare-after")
    assert out.refused, out
    line_start = f"TLS handshake failed: peer=127.0.0.1:{out.local_port} reason="
    b.wait_log(line_start + "client certificate verify failed: certificate revoked")
    assert watch.wait_at_least("failures/certificate_revoked", 1) == 1
    alice = t.try_connect(b.tls_port, t.client_context(pki, "alice"), "alice-after")
    assert alice.connack is not None and alice.connack.fields["reason"] == 0, alice


def test_sighup_while_handshakes_are_in_flight(tls_broker, pki, tmp_path):
    """Reloads racing with handshakes: 8 threads connect good clients in a loop while the certificate is
    switched back and forth 6 times by SIGHUP. Every attempt gets CONNACK 0 with one of the two
    certificates, every reload succeeds, and after the last one new handshakes see its certificate."""
    cert, key, crl = own_copies(pki, tmp_path)
    b = tls_broker(client_cert="required", cert_file=cert, key_file=key, crl_file=crl)
    new = pki.issue_server(tmp_path / "next-server", org="petrel reloaded")
    versions = [(pki.server.cert.read_bytes(), pki.server.key.read_bytes()),
                (new.cert.read_bytes(), new.key.read_bytes())]
    known = {pki.server.der, new.der}
    stop = threading.Event()
    outcomes: list[t.Outcome] = []
    lock = threading.Lock()

    def hammer(worker: int) -> None:
        ctx = t.client_context(pki, "alice")
        i = 0
        while not stop.is_set() or i < 3:
            out = t.try_connect(b.tls_port, ctx, f"hup-{worker}-{i}")
            with lock:
                outcomes.append(out)
            i += 1

    threads = [threading.Thread(target=hammer, args=(w,), daemon=True) for w in range(8)]
    for th in threads:
        th.start()
    try:
        for n in range(1, 7):
            c, k = versions[n % 2]
            cert.write_bytes(c)
            key.write_bytes(k)
            hup(b)
            t.wait_log_count(b, RELOADED, n)
    finally:
        stop.set()
        for th in threads:
            th.join(30)
    assert RELOAD_FAILED not in b.log_text()
    bad = [o for o in outcomes if o.connack is None or o.connack.fields["reason"] != 0 or o.peer_cert not in known]
    assert not bad, f"{len(bad)} of {len(outcomes)} attempts failed: {bad[:3]}"
    last = t.try_connect(b.tls_port, t.client_context(pki, "alice"), "hup-last")
    assert last.connack is not None and last.peer_cert == pki.server.der, last


def test_sighup_rotates_server_certificate_and_ca(tls_broker, pki, tmp_path, sys_watch):
    """Rotating to a new CA: the server certificate, key, ca_file and crl_file are all replaced by ones from a
    new root CA and SIGHUP is sent. New handshakes present the new server certificate; a client certificate
    issued by the new CA connects, one issued by the old CA is refused for its true reason ("unable to get
    local issuer certificate", counted as certificate_unknown_issuer); a connection established with the old
    certificates before the rotation still completes a QoS 1 round trip."""
    cert, key, crl = own_copies(pki, tmp_path)
    ca = tmp_path / "live-ca.pem"
    shutil.copyfile(pki.ca, ca)
    b = tls_broker(client_cert="required", cert_file=cert, key_file=key, ca_file=ca, crl_file=crl)
    watch = sys_watch(b)
    before = t.try_connect(b.tls_port, t.client_context(pki, "alice"), "rot-before", keep=True)
    assert before.connack is not None and before.connack.fields["reason"] == 0, before
    with before.client as old:
        new_ca = certs.Authority(tmp_path, "rotated-ca", "petrel rotated CA")
        new_server = new_ca.issue_server(tmp_path / "rotated-server", org="petrel rotated")
        new_client = new_ca.issue_client(tmp_path / "rotated-client", "frank")
        cert.write_bytes(new_server.cert.read_bytes())
        key.write_bytes(new_server.key.read_bytes())
        ca.write_bytes(new_ca.cert.read_bytes())
        new_ca.crl(crl, [])
        hup(b)
        b.wait_log(RELOADED)

        after = t.try_connect(b.tls_port, t.client_context(pki, new_client, ca=new_ca.cert), "rot-new-client",
                              keep=True)
        assert after.connack is not None and after.connack.fields["reason"] == 0, after
        assert after.peer_cert == new_server.der
        with after.client as c:
            t.qos1_roundtrip(c, "tls/rotate/new", b"new CA")

        # The client trusts the new CA (so it accepts petrel's new certificate) but holds the old CA's alice.
        stale = t.try_connect(b.tls_port, t.client_context(pki, "alice", ca=new_ca.cert), "rot-old-client")
        assert stale.refused, stale
        assert stale.peer_cert in (None, new_server.der), stale
        line = t.failure_line(b, stale.local_port)
        assert line.endswith("reason=client certificate verify failed: unable to get local issuer certificate"), line
        assert watch.wait_at_least("failures/certificate_unknown_issuer", 1) == 1
        assert "client connected: id=rot-old-client " not in b.log_text()

        t.qos1_roundtrip(old, "tls/rotate/old", b"still here")
    assert RELOAD_FAILED not in b.log_text()
