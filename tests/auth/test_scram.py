"""MQTT 5 enhanced authentication with SCRAM-SHA-256 over raw sockets: the AUTH exchange before CONNACK, a wrong
password, an unknown user, re-authentication during a connection (other traffic going on), a failed one, credentials
changed by SIGHUP and refreshed by re-authenticating, methods petrel does not offer, protocol errors in the exchange.
The client side is tests/lib/authclients.ScramClient, written from the RFC."""
from __future__ import annotations

import signal
import subprocess

import pytest

import mqttraw as m
from authclients import ScramClient
from petrel_paths import PETREL_BIN

METHOD = "SCRAM-SHA-256"


def scram_passwd(path, user, password, create=False):
    subprocess.run([PETREL_BIN, "passwd", "--scram", *(["-c"] if create else []), "-b", str(path), user, password],
                   check=True)


@pytest.fixture
def scram_broker(make_broker, files):
    scram = files("scram", "")
    scram_passwd(scram, "alice", "wonderland", create=True)
    scram_passwd(scram, "bob", "builder")
    acl = files("acl", "user alice\ntopic readwrite alice/#\nuser bob\ntopic readwrite bob/#\n")
    b = make_broker(f'[auth]\nscram_file = "{scram}"\nacl_file = "{acl}"\n')
    b.scram_file = scram
    return b


def scram_connect(broker, client_id: str, user: str, password: str) -> tuple[m.RawClient, m.Packet, ScramClient]:
    """CONNECT with SCRAM; returns the client, the packet ending the exchange (CONNACK) and the SCRAM client."""
    s = ScramClient(user, password)
    c = m.RawClient(broker.port, version=5)
    c.send(m.connect(client_id, version=5, properties=[(m.AUTHENTICATION_METHOD, METHOD),
                                                       (m.AUTHENTICATION_DATA, s.first())]))
    challenge = c.recv()
    assert challenge.type == m.AUTH, challenge
    assert challenge.fields["reason"] == 0x18
    assert challenge.fields["props"][m.AUTHENTICATION_METHOD] == METHOD
    c.send(m.auth(0x18, [(m.AUTHENTICATION_METHOD, METHOD),
                         (m.AUTHENTICATION_DATA, s.final(challenge.fields["props"][m.AUTHENTICATION_DATA]))]))
    return c, c.expect(m.CONNACK), s


def test_scram_success_and_the_user_it_authenticates(scram_broker):
    c, ack, s = scram_connect(scram_broker, "sc-1", "alice", "wonderland")
    assert ack.fields["reason"] == 0
    assert ack.fields["props"][m.AUTHENTICATION_METHOD] == METHOD
    assert s.verify(ack.fields["props"][m.AUTHENTICATION_DATA])  # the server proved it knows the credentials too
    scram_broker.wait_log("client connected: id=sc-1")
    assert "user=alice" in scram_broker.log_text()
    # The ACL sees the SCRAM user (the CONNECT carried no user name).
    c.send(m.subscribe(1, [("alice/#", 1), ("bob/#", 1)], version=5))
    assert c.expect(m.SUBACK).fields["reasons"] == [1, 0x87]


@pytest.mark.parametrize("user,password,why", [("alice", "wrong", "SCRAM: wrong password"),
                                               ("nobody", "x", "SCRAM: unknown user")])
def test_scram_failures(scram_broker, user, password, why):
    c, ack, _ = scram_connect(scram_broker, "sc-bad", user, password)
    assert ack.fields["reason"] == 0x86
    scram_broker.wait_log(f"id=sc-bad user=(none) reason={why}")


def test_reauthentication(scram_broker):
    c, ack, _ = scram_connect(scram_broker, "sc-re", "alice", "wonderland")
    assert ack.fields["reason"] == 0
    s = ScramClient("alice", "wonderland")
    c.send(m.auth(0x19, [(m.AUTHENTICATION_METHOD, METHOD), (m.AUTHENTICATION_DATA, s.first())]))
    challenge = c.expect(m.AUTH)
    assert challenge.fields["reason"] == 0x18
    # The connection goes on during the exchange.
    c.send(m.publish("alice/x", b"during", qos=1, packet_id=7, version=5))
    assert c.expect(m.PUBACK).fields["packet_id"] == 7
    c.send(m.auth(0x18, [(m.AUTHENTICATION_METHOD, METHOD),
                         (m.AUTHENTICATION_DATA, s.final(challenge.fields["props"][m.AUTHENTICATION_DATA]))]))
    done = c.expect(m.AUTH)
    assert done.fields["reason"] == 0x00 and s.verify(done.fields["props"][m.AUTHENTICATION_DATA])
    scram_broker.wait_log("client re-authenticated: id=sc-re")
    c.send(m.pingreq())
    c.expect(m.PINGRESP)


@pytest.mark.parametrize("user,password,code", [("alice", "wrong", 0x86), ("bob", "builder", 0x87)])
def test_failed_reauthentication_disconnects(scram_broker, user, password, code):
    c, ack, _ = scram_connect(scram_broker, "sc-rf", "alice", "wonderland")
    assert ack.fields["reason"] == 0
    s = ScramClient(user, password)
    c.send(m.auth(0x19, [(m.AUTHENTICATION_METHOD, METHOD), (m.AUTHENTICATION_DATA, s.first())]))
    challenge = c.expect(m.AUTH)
    c.send(m.auth(0x18, [(m.AUTHENTICATION_METHOD, METHOD),
                         (m.AUTHENTICATION_DATA, s.final(challenge.fields["props"][m.AUTHENTICATION_DATA]))]))
    got = c.expect_closed()
    assert [p.type for p in got] == [m.DISCONNECT] and got[0].fields["reason"] == code


def test_reauthentication_refreshes_a_credential_changed_by_sighup(scram_broker):
    c, ack, _ = scram_connect(scram_broker, "sc-hup", "alice", "wonderland")
    assert ack.fields["reason"] == 0
    scram_passwd(scram_broker.scram_file, "alice", "looking glass")
    scram_broker.proc.send_signal(signal.SIGHUP)
    scram_broker.wait_log("access control reloaded")
    c.send(m.publish("alice/x", b"old", qos=1, packet_id=1, version=5))
    assert c.expect(m.PUBACK).fields["reason"] == 0x87  # its credential changed: re-checked, refused
    s = ScramClient("alice", "looking glass")
    c.send(m.auth(0x19, [(m.AUTHENTICATION_METHOD, METHOD), (m.AUTHENTICATION_DATA, s.first())]))
    challenge = c.expect(m.AUTH)
    c.send(m.auth(0x18, [(m.AUTHENTICATION_METHOD, METHOD),
                         (m.AUTHENTICATION_DATA, s.final(challenge.fields["props"][m.AUTHENTICATION_DATA]))]))
    assert c.expect(m.AUTH).fields["reason"] == 0
    c.send(m.publish("alice/x", b"new", qos=1, packet_id=2, version=5))
    assert c.expect(m.PUBACK).fields["reason"] == 0x10  # allowed again


def test_methods_not_offered(scram_broker, make_broker):
    c = m.RawClient(scram_broker.port, version=5)
    c.send(m.connect("sc-m", version=5, properties=[(m.AUTHENTICATION_METHOD, "PLAIN"),
                                                     (m.AUTHENTICATION_DATA, b"\0a\0b")]))
    assert c.expect(m.CONNACK).fields["reason"] == 0x8C
    plain = make_broker()  # no scram_file: SCRAM is not offered at all
    c = m.RawClient(plain.port, version=5)
    c.send(m.connect("sc-n", version=5, properties=[(m.AUTHENTICATION_METHOD, METHOD)]))
    assert c.expect(m.CONNACK).fields["reason"] == 0x8C


@pytest.mark.parametrize("second", ["publish", "other-method", "auth-success"])
def test_protocol_errors_during_the_exchange(scram_broker, second):
    s = ScramClient("alice", "wonderland")
    c = m.RawClient(scram_broker.port, version=5)
    c.send(m.connect("sc-p", version=5, properties=[(m.AUTHENTICATION_METHOD, METHOD),
                                                     (m.AUTHENTICATION_DATA, s.first())]))
    c.expect(m.AUTH)
    c.send({"publish": m.publish("alice/x", b"early", version=5),
            "other-method": m.auth(0x18, [(m.AUTHENTICATION_METHOD, "PLAIN"), (m.AUTHENTICATION_DATA, b"x")]),
            "auth-success": m.auth(0x00, [(m.AUTHENTICATION_METHOD, METHOD)])}[second])
    got = c.expect_closed()
    assert [p.type for p in got] == [m.CONNACK] and got[0].fields["reason"] == 0x82


def test_auth_0x18_outside_a_reauthentication_is_a_protocol_error(scram_broker):
    c, ack, _ = scram_connect(scram_broker, "sc-x", "alice", "wonderland")
    assert ack.fields["reason"] == 0
    c.send(m.auth(0x18, [(m.AUTHENTICATION_METHOD, METHOD), (m.AUTHENTICATION_DATA, b"c=biws,r=x,p=AAAA")]))
    got = c.expect_closed()
    assert [p.type for p in got] == [m.DISCONNECT] and got[0].fields["reason"] == 0x82
