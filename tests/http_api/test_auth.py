"""Authentication of the HTTP API and the rule that keeps it off the network without one.

With token_file, every endpoint but the open ones (/health, /ready, the dashboard's files) needs
"Authorization: Bearer <token>": none or a wrong one gets 401 (with WWW-Authenticate) before the body is read.
Without token_file petrel serves the API on loopback only: a non-loopback bind without tokens, an unreadable
token file or one without a usable token stops petrel at start with exit status 2, FILE:LINE:COLUMN and why.
SIGHUP (and POST /api/v1/reload) re-reads the token file.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from petrel_paths import PETREL_BIN, free_port

from .conftest import Api

TOKEN = "s3cret-token-for-tests-0123456789"


def tokens_file(tmp_path, *tokens) -> str:
    path = tmp_path / "tokens"
    path.write_text("# operator tokens\n\n" + "".join(f"  {t}  \n" for t in tokens))
    return str(path)


@pytest.mark.parametrize("path", ["/metrics", "/api/v1/clients", "/api/v1/sessions", "/api/v1/config",
                                  "/api/v1/listeners", "/api/v1/retained", "/api/v1/subscriptions",
                                  "/api/v1/stats"])
def test_token_required_and_checked(http_broker, tmp_path, path):
    b = http_broker(http=f'token_file = "{tokens_file(tmp_path, TOKEN, "another-token-abcdefgh")}"\n')
    none = b.api.get(path)
    assert none.status == 401, none
    assert none.headers["www-authenticate"].startswith("Bearer")
    assert none.json()["error"]["status"] == 401
    wrong = Api(b.http_port, token=TOKEN[:-1] + "X").get(path)
    assert wrong.status == 401, wrong
    basic = b.api.get(path, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status == 401, basic  # no password file: Basic is not accepted
    assert Api(b.http_port, token=TOKEN).get(path).status == 200
    assert Api(b.http_port, token="another-token-abcdefgh").get(path).status == 200


def test_unauthenticated_post_is_refused_before_its_body_is_used(http_broker, tmp_path):
    b = http_broker(http=f'token_file = "{tokens_file(tmp_path, TOKEN)}"\n')
    r = b.api.post("/api/v1/publish", {"topic": "auth/x", "payload": "no", "retain": True})
    assert r.status == 401, r
    assert Api(b.http_port, token=TOKEN).get("/api/v1/retained/auth/x").status == 404  # nothing was published
    assert b.api.request("DELETE", "/api/v1/sessions/any").status == 401


def test_open_routes_need_no_token(http_broker, tmp_path):
    b = http_broker(http=f'token_file = "{tokens_file(tmp_path, TOKEN)}"\n')
    assert b.api.get("/health").status == 200
    assert b.api.get("/ready").status == 200
    page = b.api.get("/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")


def test_sighup_reloads_the_tokens(http_broker, tmp_path):
    path = tokens_file(tmp_path, TOKEN)
    b = http_broker(http=f'token_file = "{path}"\n')
    new = "a-brand-new-token-9876543210"
    assert Api(b.http_port, token=new).get("/api/v1/stats").status == 401
    with open(path, "w") as f:
        f.write(new + "\n")
    b.proc.send_signal(signal.SIGHUP)
    b.wait_log("[http]: tokens reloaded")
    assert Api(b.http_port, token=new).get("/api/v1/stats").status == 200
    assert Api(b.http_port, token=TOKEN).get("/api/v1/stats").status == 401


def start_expecting_exit(tmp_path, config: str) -> tuple[int, str]:
    port = free_port()
    cfg = tmp_path / f"petrel-{port}.toml"
    cfg.write_text(f'[[listener]]\nname = "t"\nbind = "127.0.0.1"\nport = {port}\n[store]\ntype = "memory"\n' + config)
    p = subprocess.run([PETREL_BIN, "--config", str(cfg)], capture_output=True, timeout=20, cwd=tmp_path)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace"), cfg


@pytest.mark.parametrize("bind", ["0.0.0.0", "::"])
def test_non_loopback_without_tokens_refuses_to_start(tmp_path, bind):
    rc, out, cfg = start_expecting_exit(tmp_path, f'[http]\nbind = "{bind}"\nport = {free_port()}\n')
    assert rc == 2, out
    assert f"{cfg}:8:" in out, out  # the line of 'bind'
    assert "not a loopback address" in out and "token_file" in out, out


def test_unusable_token_files_refuse_to_start(tmp_path):
    missing = tmp_path / "nope"
    rc, out, cfg = start_expecting_exit(tmp_path, f'[http]\nport = {free_port()}\ntoken_file = "{missing}"\n')
    assert rc == 2 and f"{cfg}:9:" in out and "cannot read token_file" in out, out
    short = tmp_path / "short"
    short.write_text("tooshort\n")
    rc, out, _ = start_expecting_exit(tmp_path, f'[http]\nbind = "0.0.0.0"\ntoken_file = "{short}"\n')
    assert rc == 2 and "at least 16 characters" in out, out
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    rc, out, _ = start_expecting_exit(tmp_path, f'[http]\nbind = "0.0.0.0"\ntoken_file = "{empty}"\n')
    assert rc == 2 and "holds no token" in out, out


def test_non_loopback_with_tokens_serves(make_broker, tmp_path):
    """bind = 0.0.0.0 with a token file starts (reached here over 127.0.0.1)."""
    port = free_port()
    b = make_broker(config=f'[http]\nbind = "0.0.0.0"\nport = {port}\ntoken_file = "{tokens_file(tmp_path, TOKEN)}"\n')
    b.wait_log("http: serving the operator API")
    assert Api(port).get("/api/v1/stats").status == 401
    assert Api(port, token=TOKEN).get("/api/v1/stats").status == 200


def test_http_port_in_use_stops_petrel_with_the_reason(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        rc, out, _ = start_expecting_exit(tmp_path, f"[http]\nport = {busy}\n")
    assert rc == 1, out
    assert f"[http]: cannot bind 127.0.0.1:{busy}" in out, out


def test_disabled_http_serves_nothing(make_broker):
    port = free_port()
    b = make_broker(config=f"[http]\nenabled = false\nport = {port}\n")
    with pytest.raises(OSError):
        Api(port, timeout=2).get("/health")
    assert "http: serving" not in b.log_text()


def basic(user: str, password: str) -> dict:
    import base64
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def password_file(tmp_path, user: str, password: str) -> str:
    """A password file written by `petrel passwd` (the format of mosquitto_passwd)."""
    path = tmp_path / "http-passwd"
    subprocess.run([PETREL_BIN, "passwd", "-c", "-b", str(path), user, password], check=True, timeout=20)
    return str(path)


def test_http_basic_with_a_password_file(make_broker, tmp_path):
    """[http] password_file: HTTP Basic with the users of a Mosquitto-format password file guards the API, on
    a non-loopback address too; a wrong password or an unknown user gets 401 naming both schemes."""
    port = free_port()
    users = password_file(tmp_path, "operator", "correct horse")
    b = make_broker(config=f'[http]\nbind = "0.0.0.0"\nport = {port}\npassword_file = "{users}"\n')
    b.wait_log("http: serving the operator API")
    api = Api(port)
    assert api.get("/api/v1/stats", headers=basic("operator", "correct horse")).status == 200
    for user, password in [("operator", "wrong"), ("nobody", "correct horse")]:
        refused = api.get("/api/v1/stats", headers=basic(user, password))
        assert refused.status == 401, refused
        assert "Basic" in refused.headers["www-authenticate"], refused.headers
    assert api.get("/api/v1/stats").status == 401
    assert api.get("/health").status == 200  # liveness stays open


def test_http_basic_users_are_reloaded(make_broker, tmp_path):
    """SIGHUP re-reads [http] password_file: a changed password works, the old one no longer does."""
    port = free_port()
    users = password_file(tmp_path, "operator", "first password")
    b = make_broker(config=f'[http]\nport = {port}\npassword_file = "{users}"\n')
    b.wait_log("http: serving the operator API")
    api = Api(port)
    assert api.get("/api/v1/stats", headers=basic("operator", "first password")).status == 200
    subprocess.run([PETREL_BIN, "passwd", "-b", users, "operator", "second password"], check=True, timeout=20)
    b.proc.send_signal(signal.SIGHUP)
    b.wait_log("HTTP Basic users reloaded")
    assert api.get("/api/v1/stats", headers=basic("operator", "second password")).status == 200
    assert api.get("/api/v1/stats", headers=basic("operator", "first password")).status == 401


def test_unusable_http_password_file_refuses_to_start(tmp_path):
    bad = tmp_path / "bad-passwd"
    bad.write_text("operator:not-a-hash\n")
    rc, out, cfg = start_expecting_exit(tmp_path, f'[http]\nport = {free_port()}\npassword_file = "{bad}"\n')
    assert rc == 2 and f"{cfg}:9:" in out, out
