"""TLS: the HTTP listener over HTTPS (the keys of a TLS MQTT listener), and MQTT listeners' certificates as
the API shows them: subject, expiry, days left, time of the last reload; POST .../reload reloads one
listener's files and the API shows the new certificate; a reload with bad files is 409 and keeps the old.
"""
from __future__ import annotations

import shutil
import ssl

import pytest

import certs
from petrel_paths import free_port

from .conftest import Api


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> certs.Pki:
    return certs.Pki(tmp_path_factory.mktemp("pki"))


def client_context(pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.check_hostname = False
    return ctx


def test_https_listener(make_broker, pki):
    port = free_port()
    b = make_broker(config=f'[http]\nport = {port}\ncert_file = "{pki.server.cert}"\nkey_file = "{pki.server.key}"\n')
    b.wait_log(f"on https://127.0.0.1:{port}")
    api = Api(port, tls=client_context(pki))
    r = api.get("/health")
    assert r.status == 200 and r.json() == {"status": "ok"}, r
    # Plain HTTP to the HTTPS port is not answered as HTTP.
    with pytest.raises(Exception):
        Api(port, timeout=3).get("/health")
    assert api.get("/ready").status == 200
    metrics = api.get("/metrics").text
    assert 'petrel_tls_certificate_expiry_timestamp_seconds{listener="http"' in metrics


def test_https_needs_both_files(tmp_path, pki):
    import subprocess
    from petrel_paths import PETREL_BIN
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[store]\ntype = "memory"\n[http]\ncert_file = "{pki.server.cert}"\n')
    p = subprocess.run([PETREL_BIN, "check-config", str(cfg)], capture_output=True, timeout=20)
    assert p.returncode == 2, p
    assert b"both cert_file and key_file" in p.stderr, p.stderr


def tls_listener(pki, cert, key, port) -> str:
    return (f'[[listener]]\nname = "tls"\ntype = "tls"\nbind = "127.0.0.1"\nport = {port}\n'
            f'cert_file = "{cert}"\nkey_file = "{key}"\n')


def test_certificate_and_reload_through_the_api(http_broker, pki, tmp_path):
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    shutil.copy(pki.server.cert, cert)
    shutil.copy(pki.server.key, key)
    b = http_broker(tls_listener(pki, cert, key, free_port()))
    before = b.api.get("/api/v1/listeners/tls").json()
    c = before["certificate"]
    assert c["subject"] == "CN=localhost,O=petrel tests", c
    assert c["issuer"] == "CN=petrel test CA,O=petrel tests", c
    assert int(c["serial"], 16) == pki.server.serial, c
    assert 300 < c["days_until_expiry"] < 400, c
    assert c["last_reload"] is None and c["reloads"] == 0 and c["last_reload_error"] is None
    assert before["state"] == "accepting" and before["handshakes"] == {"in_progress": 0, "completed": 0}

    new = pki.issue_server(tmp_path / "next-server", org="petrel reloaded")
    cert.write_bytes(new.cert.read_bytes())
    key.write_bytes(new.key.read_bytes())
    r = b.api.post("/api/v1/listeners/tls/reload")
    assert r.status == 200, r
    after = r.json()["listener"]["certificate"]
    assert after["subject"] == "CN=localhost,O=petrel reloaded", after
    assert int(after["serial"], 16) == new.serial
    assert after["reloads"] == 1 and after["last_reload"] is not None and after["last_reload_error"] is None
    # A new handshake presents it.
    import tlsclient as t
    got = t.try_connect(int(b.api.get("/api/v1/listeners/tls").json()["port"]), t.client_context(pki), "after")
    assert got.peer_cert == new.der

    # Bad files: 409 with the reason; the previous certificate stays in use.
    cert.write_text("not a certificate\n")
    r = b.api.post("/api/v1/listeners/tls/reload")
    assert r.status == 409, r
    assert "TLS reload failed, keeping the previous certificates" in r.json()["error"]["message"]
    kept = b.api.get("/api/v1/listeners/tls").json()["certificate"]
    assert int(kept["serial"], 16) == new.serial and kept["last_reload_error"], kept


def test_reload_of_unknown_or_plain_listener(http_broker):
    b = http_broker()
    r = b.api.post("/api/v1/listeners/nope/reload")
    assert r.status == 404, r
    r = b.api.post("/api/v1/listeners/test/reload")
    assert r.status == 409 and "not tls or wss" in r.json()["error"]["message"], r


def test_post_reload_reloads_what_sighup_reloads(http_broker, pki, tmp_path):
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    shutil.copy(pki.server.cert, cert)
    shutil.copy(pki.server.key, key)
    b = http_broker(tls_listener(pki, cert, key, free_port()))
    r = b.api.post("/api/v1/reload")
    assert r.status == 200, r
    assert r.json() == {"reloaded": True, "results": [{"target": "listener 'tls'", "ok": True, "error": None},
                                                     {"target": "access control", "ok": True, "error": None}]}
    b.wait_log("listener 'tls': TLS certificates reloaded")
