"""JSON Web Tokens as passwords: each algorithm (HS256 with a secret, RS256 and ES256 with a public key file),
expired and not-yet-valid tokens, forgeries, the claim that must equal the user name, ACL claims enforced, and a bad
key file at start. Tokens are made by the test (tests/lib/authclients.py) with hmac and python3-cryptography."""
from __future__ import annotations

import subprocess
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import mqttclients as mc
import mqttraw as m
from authclients import connack, jwt
from petrel_paths import PETREL_BIN


def keys(alg: str):
    """(signing key, [auth.jwt] lines) for an algorithm."""
    if alg == "HS256":
        return b"shared secret", 'secret = "shared secret"\n'
    private = rsa.generate_private_key(65537, 2048) if alg == "RS256" else ec.generate_private_key(ec.SECP256R1())
    return private, private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def jwt_broker(make_broker, files):
    def make(alg: str, extra: str = ""):
        key, material = keys(alg)
        if alg != "HS256":
            material = f'public_key_file = "{files(f"jwt-{alg}.pem", material)}"\n'
        b = make_broker(f'[auth]\n[auth.jwt]\nalgorithm = "{alg}"\n{material}{extra}')
        return b, key
    return make


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256"])
def test_tokens_of_each_algorithm(jwt_broker, alg):
    b, key = jwt_broker(alg)
    now = int(time.time())
    good = jwt({"sub": "alice", "exp": now + 60}, alg, key)
    assert connack(b.port, "j1", 5, username="alice", password=good) == 0
    assert connack(b.port, "j1b", 4, username="anyone", password=good) == 0
    assert connack(b.port, "j2", 5, username="alice", password=jwt({"exp": now - 5}, alg, key)) == 0x86
    assert connack(b.port, "j3", 5, username="alice",
                   password=jwt({"exp": now + 60, "nbf": now + 600}, alg, key)) == 0x86
    assert connack(b.port, "j4", 5, username="alice", password=good[:-4] + ("AAAA" if good[-4:] != "AAAA" else "BBBB")) == 0x86
    assert connack(b.port, "j5", 4, username="alice", password="not a token") == 4
    b.wait_log("id=j2 user=alice reason=token expired")
    b.wait_log("id=j3 user=alice reason=token not valid for another")
    b.wait_log("id=j4 user=alice reason=token: bad signature")
    b.wait_log("id=j5 user=alice reason=unknown user")


def test_algorithm_confusion_is_refused(jwt_broker, files):
    """An RS256 listener must not take an HS256 token signed with its public key, nor alg "none"."""
    b, private = jwt_broker("RS256")
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    exp = int(time.time()) + 60
    assert connack(b.port, "c1", 5, username="u", password=jwt({"exp": exp}, "HS256", public_pem)) == 0x86
    none = jwt({"exp": exp}, "HS256", b"x", header={"alg": "none"}).rsplit(".", 1)[0] + "."
    assert connack(b.port, "c2", 5, username="u", password=none) == 0x86
    b.wait_log("id=c1 user=u reason=token: algorithm is not RS256")


def test_claim_binding_and_acl_claims(jwt_broker):
    b, key = jwt_broker("ES256", 'claim = "sub"\nclaim_equals = "username"\nacl_claims = true\n')
    exp = int(time.time()) + 60
    token = jwt({"sub": "alice", "exp": exp, "publish": ["dev/alice/#"], "subscribe": ["cmd/alice/#", "bad/#/x"]},
                "ES256", key)
    assert connack(b.port, "b1", 5, username="mallory", password=token) == 0x86  # someone else's token
    b.wait_log("id=b1 user=mallory reason=token: claim 'sub' does not equal the user name")
    c = m.RawClient(b.port, version=5)
    assert c.connect("alice-dev", username="alice", password=token.encode()).fields["reason"] == 0
    c.send(m.subscribe(1, [("cmd/alice/#", 1), ("cmd/bob/#", 1), ("#", 1)], version=5))
    assert c.expect(m.SUBACK).fields["reasons"] == [1, 0x87, 0x87]
    c.send(m.publish("dev/alice/temp", b"21", qos=1, packet_id=2, version=5))
    assert c.expect(m.PUBACK).fields["reason"] == 0x10  # allowed (no subscriber)
    c.send(m.publish("dev/bob/temp", b"21", qos=1, packet_id=3, version=5))
    assert c.expect(m.PUBACK).fields["reason"] == 0x87
    # mosquitto_pub with the token as its password, publishing where the claims allow
    sub = m.RawClient(b.port, version=5)
    sub.connect("alice-sub", username="alice", password=token.encode())
    sub.send(m.subscribe(1, [("cmd/alice/#", 1)], version=5))
    sub.expect(m.SUBACK)
    other = jwt({"sub": "ops", "exp": exp, "publish": ["cmd/#"]}, "ES256", key)
    mc.mosquitto_pub(b.port, "cmd/alice/light", message="on", client_id="ops-1", qos=1,
                     extra=["-u", "ops", "-P", other])
    got = sub.expect(m.PUBLISH)
    assert (got.fields["topic"], got.fields["payload"]) == ("cmd/alice/light", b"on")


def test_password_file_and_tokens_together(make_broker, files):
    pw = files("passwd", "")
    subprocess.run([PETREL_BIN, "passwd", "-c", "-b", str(pw), "alice", "pw"], check=True)
    b = make_broker(f'[auth]\npassword_file = "{pw}"\n[auth.jwt]\nalgorithm = "HS256"\nsecret = "k"\n')
    exp = int(time.time()) + 60
    assert connack(b.port, "p1", username="alice", password="pw") == 0
    assert connack(b.port, "p2", username="bob", password=jwt({"exp": exp}, "HS256", b"k")) == 0
    # alice is in the password file: it decides, a token is not tried for her
    assert connack(b.port, "p3", username="alice", password=jwt({"exp": exp}, "HS256", b"k")) == 4


def test_bad_key_file_stops_start(run_petrel, files):
    key = files("key.pem", "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    cfg = files("c.toml", f'[store]\ntype = "memory"\n[auth.jwt]\nalgorithm = "RS256"\npublic_key_file = "{key}"\n')
    r = run_petrel(["--config", str(cfg)])
    assert r.returncode == 2 and f"configuration error: {key}: not a PEM public key" in r.stdout
    cfg = files("c2.toml", '[store]\ntype = "memory"\n[auth.jwt]\nalgorithm = "HS512"\nsecret = "x"\n')
    r = run_petrel(["--config", str(cfg)])
    assert r.returncode == 2 and "'algorithm' must be \"HS256\", \"RS256\" or \"ES256\"" in r.stdout
