"""Password files, Mosquitto's format both ways; `petrel passwd`; refusal codes; per-listener settings; the
secure-by-default rule; certificate identity. Real clients throughout: Debian's mosquitto_passwd, mosquitto_pub/sub
and mosquitto broker, paho-mqtt 3.1.1 and 5, raw sockets for exact codes."""
from __future__ import annotations

import os
import pty
import select
import subprocess

import pytest

import mqttclients as mc
from authclients import connack
from petrel_paths import PETREL_BIN, free_port


def mosquitto_passwd(*args: str) -> None:
    subprocess.run(["mosquitto_passwd", *args], check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def pub(port: int, *extra: str, client_id: str = "pub") -> subprocess.CompletedProcess:
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-i", client_id, "-t", "t/x", "-m",
                           "hi", "-q", "1", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=10)


# ------------------------------------------------------------- files both ways --

def test_mosquitto_passwd_file_works_in_petrel(make_broker, files, mosq_sub):
    pw = files("passwd", "")
    mosquitto_passwd("-c", "-b", str(pw), "alice", "wonder land")
    mosquitto_passwd("-b", str(pw), "bob", "hunter2")
    b = make_broker(f'[auth]\npassword_file = "{pw}"\n')
    sub = mosq_sub(b.port, ["t/#"], client_id="bob-sub", qos=1, extra=["-u", "bob", "-P", "hunter2"])
    sub.wait_subscribed()
    assert pub(b.port, "-u", "alice", "-P", "wonder land").returncode == 0
    assert sub.messages(1) == [b"hi"]
    refused = pub(b.port, "-u", "alice", "-P", "wonderland")
    assert refused.returncode != 0 and "bad user name or password" in refused.stdout
    b.wait_log("user=alice reason=wrong password")


def test_petrel_passwd_file_works_in_mosquitto(run_petrel, files, mosquitto_broker):
    pw = files("passwd", "")
    assert run_petrel(["passwd", "-c", "-b", str(pw), "alice", "s3cret"]).returncode == 0
    assert run_petrel(["passwd", "-b", str(pw), "bob", "hunter2"]).returncode == 0
    assert pw.read_text().startswith("alice:$7$101$")
    mq = mosquitto_broker(f"allow_anonymous false\npassword_file {pw}\n")
    assert pub(mq.port, "-u", "alice", "-P", "s3cret").returncode == 0
    assert pub(mq.port, "-u", "bob", "-P", "hunter2").returncode == 0
    refused = pub(mq.port, "-u", "bob", "-P", "s3cret")
    # (mosquitto answers a wrong password with return code 5, "not authorised"; petrel with 4)
    assert refused.returncode != 0 and "Connection Refused" in refused.stdout


def test_each_tool_edits_the_others_file(make_broker, run_petrel, files):
    pw = files("passwd", "")
    mosquitto_passwd("-c", "-b", str(pw), "alice", "one")
    mosquitto_passwd("-b", str(pw), "bob", "two")
    assert run_petrel(["passwd", "-b", str(pw), "carol", "three"]).returncode == 0
    assert run_petrel(["passwd", "-D", str(pw), "bob"]).returncode == 0
    mosquitto_passwd("-b", str(pw), "alice", "uno")  # mosquitto_passwd updates a file petrel wrote
    # a $6$ entry (Mosquitto 1.x) too
    import base64, hashlib
    salt = b"0123456789ab"
    pw.write_text(pw.read_text() + "dave:$6$" + base64.b64encode(salt).decode() + "$"
                  + base64.b64encode(hashlib.sha512(b"four" + salt).digest()).decode() + "\n")
    b = make_broker(f'[auth]\npassword_file = "{pw}"\n')
    assert connack(b.port, "a", username="alice", password="uno") == 0
    assert connack(b.port, "a", username="alice", password="one") == 4
    assert connack(b.port, "b", username="bob", password="two") == 4
    assert connack(b.port, "c", username="carol", password="three") == 0
    assert connack(b.port, "d", username="dave", password="four") == 0


# ------------------------------------------------------------------ refusals --

@pytest.mark.parametrize("version,bad,unknown,anonymous", [(4, 4, 4, 5), (5, 0x86, 0x86, 0x87)])
def test_refusal_codes_do_not_tell_unknown_users_from_wrong_passwords(make_broker, run_petrel, files, version, bad,
                                                                      unknown, anonymous):
    pw = files("passwd", "")
    assert run_petrel(["passwd", "-c", "-b", str(pw), "alice", "pw"]).returncode == 0
    b = make_broker(f'[auth]\npassword_file = "{pw}"\n')
    assert connack(b.port, "x1", version, username="alice", password="nope") == bad
    assert connack(b.port, "x2", version, username="mallory", password="nope") == unknown
    assert connack(b.port, "x3", version) == anonymous
    assert connack(b.port, "x4", version, username="alice", password="pw") == 0
    # The log tells the operator the true reason.
    b.wait_log("id=x1 user=alice reason=wrong password")
    b.wait_log("id=x2 user=mallory reason=unknown user")
    b.wait_log("id=x3 user=(none) reason=anonymous clients are not allowed")


@pytest.mark.parametrize("protocol", [mc.mqtt.MQTTv311, mc.mqtt.MQTTv5])
def test_paho_with_credentials(make_broker, run_petrel, files, paho, protocol):
    pw = files("passwd", "")
    assert run_petrel(["passwd", "-c", "-b", str(pw), "alice", "pw"]).returncode == 0
    b = make_broker(f'[auth]\npassword_file = "{pw}"\n')
    good = paho(b.port, "paho-good", protocol)
    good.client.username_pw_set("alice", "pw")
    _, rc, _ = good.connect()
    assert rc == 0
    assert good.subscribe("p/#", 1) == [1]
    good.publish("p/1", b"x", qos=1)
    assert good.message().payload == b"x"
    bad = paho(b.port, "paho-bad", protocol)
    bad.client.username_pw_set("alice", "wrong")
    _, rc, _ = bad.connect()
    assert rc == (0x86 if protocol == mc.mqtt.MQTTv5 else 4)


# ------------------------------------------------------------- petrel passwd --

def test_passwd_reads_the_password_from_the_terminal_without_echo(make_broker, tmp_path):
    pw = tmp_path / "passwd"
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.execv(PETREL_BIN, [PETREL_BIN, "passwd", "-c", str(pw), "erin"])

    def read_until(text: bytes) -> bytes:
        got = b""
        while text not in got:
            r, _, _ = select.select([fd], [], [], 10)
            assert r, f"no {text!r} from petrel passwd; got {got!r}"
            got += os.read(fd, 1024)
        return got

    read_until(b"Password: ")
    os.write(fd, b"tty secret\n")
    echoed = read_until(b"Reenter password: ")
    os.write(fd, b"tty secret\n")
    _, status = os.waitpid(pid, 0)
    try:
        echoed += os.read(fd, 1024)
    except OSError:
        pass
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"tty secret" not in echoed
    assert oct(pw.stat().st_mode & 0o777) == "0o600"
    b = make_broker(f'[auth]\npassword_file = "{pw}"\n')
    assert connack(b.port, "e", username="erin", password="tty secret") == 0


def test_passwd_errors(run_petrel, files):
    pw = files("passwd", "")
    assert run_petrel(["passwd", "-c", "-b", str(pw), "alice", "a"]).returncode == 0
    r = run_petrel(["passwd", "-D", str(pw), "nobody"])
    assert r.returncode == 1 and "user 'nobody' is not in" in r.stdout
    r = run_petrel(["passwd", "-b", str(pw), "alice"])  # -b without a password
    assert r.returncode == 2
    r = run_petrel(["passwd", "-b", str(pw), "a:b", "x"])
    assert r.returncode == 2 and "must not be empty or contain ':'" in r.stdout
    bad = files("bad", "alice:plaintext\n")
    r = run_petrel(["passwd", "-b", str(bad), "bob", "x"])
    assert r.returncode == 1 and f"{bad}:1: user 'alice': the hash must start with $6$ or $7$" in r.stdout
    # Piped input (no terminal): two lines that differ.
    r = subprocess.run([PETREL_BIN, "passwd", str(pw), "bob"], input="one\ntwo\n", text=True, start_new_session=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    assert r.returncode == 1 and "do not match" in r.stdout


# -------------------------------------------------- listeners, secure default --

def test_per_listener_settings(make_broker, run_petrel, files):
    """An anonymous listener beside an authenticated one: each listener's keys override [auth]."""
    pw = files("passwd", "")
    assert run_petrel(["passwd", "-c", "-b", str(pw), "alice", "pw"]).returncode == 0
    anon_port = free_port()
    b = make_broker(f'[[listener]]\nname = "anon"\nbind = "127.0.0.1"\nport = {anon_port}\nallow_anonymous = true\n'
                    f'password_file = ""\n[auth]\npassword_file = "{pw}"\n')
    b.wait_log(f"listener 'anon' accepting MQTT over tcp on 127.0.0.1:{anon_port}")
    assert connack(b.port, "a1") == 5  # "test" listener: [auth] applies, anonymous refused
    assert connack(b.port, "a2", username="alice", password="pw") == 0
    assert connack(anon_port, "a3") == 0
    b.wait_log("listener 'anon': anonymous clients allowed")
    b.wait_log(f"listener 'test': anonymous clients refused, password file '{pw}'")


def test_network_listener_without_authentication_refuses_to_start(run_petrel, files):
    port = free_port()
    cfg = files("open.toml", f'threads = 1\n[store]\ntype = "memory"\n\n[[listener]]\nname = "public"\n'
                             f'bind = "0.0.0.0"\nport = {port}\n')
    r = run_petrel(["--config", str(cfg)])
    assert r.returncode == 2
    assert (f"{cfg}:5:1: listener 'public' on 0.0.0.0:{port} has no authentication and would admit anonymous "
            "clients from the network; set allow_anonymous = true") in r.stdout
    # So do the command-line flags.
    r = run_petrel(["--port", str(port), "--bind", "0.0.0.0"])
    assert r.returncode == 2 and "the command line: listener 'cli'" in r.stdout


def test_network_listener_with_explicit_anonymous_or_a_password_file_starts(make_broker, run_petrel, files):
    pw = files("passwd", "")
    assert run_petrel(["passwd", "-c", "-b", str(pw), "alice", "pw"]).returncode == 0
    open_port, auth_port = free_port(), free_port()
    b = make_broker(f'[[listener]]\nname = "open"\nbind = "0.0.0.0"\nport = {open_port}\nallow_anonymous = true\n'
                    f'[[listener]]\nname = "auth"\nbind = "0.0.0.0"\nport = {auth_port}\npassword_file = "{pw}"\n')
    b.wait_log(f"listener 'open' accepting MQTT over tcp on 0.0.0.0:{open_port}")
    b.wait_log(f"listener 'auth' accepting MQTT over tcp on 0.0.0.0:{auth_port}")
    assert connack(open_port, "o") == 0
    assert connack(auth_port, "p") == 5
    assert connack(auth_port, "q", username="alice", password="pw") == 0
    assert connack(b.port, "r") == 0  # the loopback "test" listener without keys: anonymous, this machine only


def test_no_configuration_serves_loopback_anonymously(tmp_path):
    """`petrel --port N` with no file: 127.0.0.1 only, anonymous clients welcome (the README's quick tour)."""
    port = free_port()
    log = open(tmp_path / "log", "wb")
    proc = subprocess.Popen([PETREL_BIN, "--port", str(port)], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        import time
        deadline = time.monotonic() + 10
        while "accepting MQTT" not in (tmp_path / "log").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()
            time.sleep(0.02)
        assert f"127.0.0.1:{port}" in (tmp_path / "log").read_text()
        assert connack(port, "anon") == 0
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        log.close()


@pytest.mark.parametrize("text,where", [
    ("alice:$7$101$bad\n", ":1: user 'alice': a $7$ hash has the form $7$ITERATIONS$SALT$HASH"),
    ("# ok\n\nbob\n", ":3: expected 'user:hash'"),
])
def test_bad_password_file_stops_start(run_petrel, files, text, where):
    pw = files("passwd", text)
    cfg = files("c.toml", f'[store]\ntype = "memory"\n[auth]\npassword_file = "{pw}"\n')
    r = run_petrel(["--config", str(cfg)])
    assert r.returncode == 2 and f"configuration error: {pw}{where}" in r.stdout
    missing = files("c2.toml", f'[store]\ntype = "memory"\n[auth]\npassword_file = "{pw}.missing"\n')
    r = run_petrel(["--config", str(missing)])
    assert r.returncode == 2 and f"{pw}.missing: cannot open the file" in r.stdout


# -------------------------------------------------------- certificate identity --

def test_certificate_identity_needs_no_password(make_broker, run_petrel, files, pki):
    """identity_as_username: the certificate's CN is the user name, no password is asked, and the CONNECT's
    user name and password are ignored; without a certificate a client is anonymous (refused here)."""
    pw = files("passwd", "")
    assert run_petrel(["passwd", "-c", "-b", str(pw), "bob", "pw"]).returncode == 0
    tls_port = free_port()
    alice = pki.clients["alice"]
    acl = files("acl", "user alice\ntopic readwrite alice/#\ntopic write t\n")
    b = make_broker(f'[[listener]]\nname = "tls"\ntype = "tls"\nbind = "127.0.0.1"\nport = {tls_port}\n'
                    f'cert_file = "{pki.server.cert}"\nkey_file = "{pki.server.key}"\nca_file = "{pki.ca}"\n'
                    f'client_cert = "optional"\nidentity_as_username = "cn"\n[auth]\npassword_file = "{pw}"\n'
                    f'acl_file = "{acl}"\n')
    b.wait_log(f"listener 'tls' accepting MQTT over tls on 127.0.0.1:{tls_port}")
    tls = ["--cafile", str(pki.ca), "-p", str(tls_port)]
    r = subprocess.run(["mosquitto_pub", "-h", "localhost", *tls, "--cert", str(alice.cert), "--key", str(alice.key),
                        "-i", "cert-1", "-t", "t", "-m", "x", "-q", "1"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=10)
    assert r.returncode == 0, r.stdout
    b.wait_log("client connected: id=cert-1")
    assert "user=alice" in [l for l in b.log_text().splitlines() if "id=cert-1 " in l and "connected" in l][0]
    # A CONNECT user name cannot claim another identity.
    r = subprocess.run(["mosquitto_pub", "-h", "localhost", *tls, "--cert", str(alice.cert), "--key", str(alice.key),
                        "-i", "cert-2", "-u", "bob", "-P", "wrong", "-t", "t", "-m", "x", "-q", "1"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
    assert r.returncode == 0, r.stdout
    b.wait_log("client connected: id=cert-2")
    # The certificate's name is the user the ACL sees: mosquitto_sub with alice's certificate.
    sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-h", "localhost", *tls, "--cert", str(alice.cert),
                            "--key", str(alice.key), "-i", "cert-sub", "-t", "alice/#", "-t", "bob/#", "-d", "-C", "1",
                            "-W", "10"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        while "Subscribed" not in line:
            line = sub.stdout.readline()
            assert line, "mosquitto_sub ended before its SUBACK"
        assert line.strip().endswith(": 0, 128"), line  # alice/# granted, bob/# refused
    finally:
        sub.terminate()
        sub.wait(10)
    # No certificate: anonymous, refused (not authorised).
    r = subprocess.run(["mosquitto_pub", "-h", "localhost", *tls, "-i", "cert-3", "-u", "bob", "-P", "pw", "-t", "t",
                        "-m", "x"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
    assert r.returncode != 0 and "not authorised" in r.stdout
    b.wait_log("id=cert-3 user=(none) reason=no client certificate, and anonymous clients are not allowed")
