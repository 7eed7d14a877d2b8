"""ACL files with real clients: table-driven SUBSCRIBE decisions (SUBACK 0x80 / 0x87 per filter), denied PUBLISHes
(v3.1.1 acknowledged and dropped, v5 PUBACK/PUBREC 0x87), deliveries a subscriber may not read (retained ones
included), wills checked when published, $SYS, pattern substitution, persistent sessions restored after a restart,
and the same decisions as Debian's mosquitto for the same passwd and ACL files."""
from __future__ import annotations

import subprocess

import pytest

import mqttraw as m
from petrel_paths import PETREL_BIN

USERS = {"alice": "a-pw", "bob": "b-pw", "carol": "c-pw", "admin": "root-pw"}

ACL = """# anonymous clients
topic read public/#
topic deny public/secret

user alice
topic readwrite home/alice/#
topic read sensors/+/temp
topic write cmd/#
topic deny cmd/reboot
topic read $SYS/#

user bob
topic home/bob/#
topic write sensors/#

user admin
topic readwrite #

pattern readwrite devices/%c/#
pattern read inbox/%u
"""


@pytest.fixture
def acl_files(files):
    pw = files("passwd", "")
    for user, password in USERS.items():
        subprocess.run([PETREL_BIN, "passwd", "-b", *([] if pw.read_text() else ["-c"]), str(pw), user, password],
                       check=True)
    return pw, files("acl", ACL)


@pytest.fixture
def acl_broker(make_broker, acl_files):
    pw, acl = acl_files
    return make_broker(f'[auth]\nallow_anonymous = true\npassword_file = "{pw}"\nacl_file = "{acl}"\n'
                       "[sys]\ninterval = 1\n")


def client(broker, client_id: str, user: str | None = None, version: int = 4, clean: bool = True,
           **kw) -> m.RawClient:
    c = m.RawClient(broker.port, version=version)
    ack = c.connect(client_id, username=user, password=USERS[user].encode() if user else None, clean=clean, **kw)
    assert ack.fields["reason"] == 0, ack
    return c


# (user, client id, filter, granted?)
SUBSCRIBE_TABLE = [
    (None, "anon-1", "public/#", True),
    (None, "anon-1", "public/secret", False),    # deny covers it
    (None, "anon-1", "home/#", False),
    ("alice", "al-1", "home/alice/#", True),
    ("alice", "al-1", "home/#", False),          # wider than alice's rule
    ("alice", "al-1", "sensors/+/temp", True),
    ("alice", "al-1", "sensors/hall/temp", True),
    ("alice", "al-1", "sensors/#", False),
    ("alice", "al-1", "cmd/#", False),           # write only
    ("alice", "al-1", "$SYS/#", True),
    ("bob", "bob-1", "$SYS/#", False),           # '#' rules never grant $SYS
    ("admin", "adm-1", "$SYS/broker/uptime", False),
    ("admin", "adm-1", "anything/at/all", True),
    ("carol", "dev7", "devices/dev7/#", True),   # pattern %c
    ("carol", "dev7", "devices/dev8/#", False),
    ("carol", "c-1", "inbox/carol", True),       # pattern %u
    ("carol", "c-1", "inbox/bob", False),
    ("alice", "al-1", "$share/g/home/alice/#", True),  # a shared subscription: its filter is judged
    ("alice", "al-1", "$share/g/home/#", False),
]


@pytest.mark.parametrize("version", [4, 5])
def test_subscribe_table(acl_broker, version):
    by_client: dict[tuple, list] = {}
    for user, cid, flt, granted in SUBSCRIBE_TABLE:
        by_client.setdefault((user, cid), []).append((flt, granted))
    for (user, cid), rows in by_client.items():
        c = client(acl_broker, f"{cid}-v{version}", user, version)
        if cid in ("dev7",):  # patterns substitute the real client id
            c.close()
            c = client(acl_broker, cid, user, version)
        c.send(m.subscribe(1, [(f, 1) for f, _ in rows], version=version))
        reasons = c.expect(m.SUBACK).fields["reasons"]
        denied = 0x87 if version == 5 else 0x80
        assert reasons == [1 if ok else denied for _, ok in rows], (user, rows, reasons)
        c.close()


def test_denied_publish_v311_is_acknowledged_and_dropped(acl_broker):
    watcher = client(acl_broker, "watch", "admin")
    watcher.send(m.subscribe(1, [("#", 1)]))
    watcher.expect(m.SUBACK)
    alice = client(acl_broker, "al-pub", "alice")
    alice.send(m.publish("cmd/reboot", b"no", qos=1, packet_id=5))
    ack = alice.expect(m.PUBACK)
    assert ack.fields["packet_id"] == 5
    alice.send(m.publish("cmd/light", b"yes", qos=1, packet_id=6))
    alice.expect(m.PUBACK)
    got = watcher.expect(m.PUBLISH)
    assert (got.fields["topic"], got.fields["payload"]) == ("cmd/light", b"yes")  # cmd/reboot never arrived
    acl_broker.wait_log("client al-pub: PUBLISH to 'cmd/reboot' not authorized, dropped")


def test_denied_publish_v5_gets_0x87(acl_broker):
    alice = client(acl_broker, "al-pub5", "alice", version=5)
    alice.send(m.publish("cmd/reboot", b"no", qos=1, packet_id=7, version=5))
    ack = alice.expect(m.PUBACK)
    assert (ack.fields["packet_id"], ack.fields["reason"]) == (7, 0x87)
    alice.send(m.publish("sensors/a/temp", b"no", qos=2, packet_id=8, version=5))  # read only
    ack = alice.expect(m.PUBREC)
    assert (ack.fields["packet_id"], ack.fields["reason"]) == (8, 0x87)
    alice.send(m.publish("home/alice/x", b"ok", qos=1, packet_id=9, version=5))
    assert alice.expect(m.PUBACK).fields["reason"] in (0x00, 0x10)


def test_deliveries_are_filtered_retained_ones_included(acl_broker):
    admin = client(acl_broker, "adm-r", "admin")
    for i, topic in enumerate(["public/news", "public/secret"]):
        admin.send(m.publish(topic, b"retained " + topic.encode(), qos=1, retain=True, packet_id=10 + i))
        admin.expect(m.PUBACK)
    anon = client(acl_broker, "anon-r")
    anon.send(m.subscribe(1, [("public/#", 1)]))
    assert anon.expect(m.SUBACK).fields["reasons"] == [1]
    got = anon.expect(m.PUBLISH)
    assert (got.fields["topic"], got.fields["retain"]) == ("public/news", True)
    admin.send(m.publish("public/secret", b"live secret", qos=1, packet_id=20))
    admin.expect(m.PUBACK)
    admin.send(m.publish("public/more", b"live", qos=1, packet_id=21))
    admin.expect(m.PUBACK)
    got = anon.expect(m.PUBLISH)
    assert got.fields["topic"] == "public/more"  # public/secret, live or retained, never came


def test_wills_are_checked_when_published(acl_broker):
    watcher = client(acl_broker, "watch-w", "admin")
    watcher.send(m.subscribe(1, [("#", 0)]))
    watcher.expect(m.SUBACK)
    denied = client(acl_broker, "carol-w", "carol", will_topic="home/alice/door", will_payload=b"carol's will")
    allowed = client(acl_broker, "bob-w", "bob", will_topic="sensors/x/temp", will_payload=b"bob's will")
    denied.close()
    acl_broker.wait_log("will of client carol-w on 'home/alice/door' not published: not authorized")
    allowed.close()
    got = watcher.expect(m.PUBLISH)
    assert (got.fields["topic"], got.fields["payload"]) == ("sensors/x/temp", b"bob's will")


def test_sys_is_readable_only_where_a_rule_grants_it(acl_broker):
    alice = client(acl_broker, "al-sys", "alice")
    alice.send(m.subscribe(1, [("$SYS/broker/uptime", 0)]))
    assert alice.expect(m.SUBACK).fields["reasons"] == [0]
    assert alice.expect(m.PUBLISH, timeout=5).fields["topic"] == "$SYS/broker/uptime"
    admin = client(acl_broker, "adm-sys", "admin")
    admin.send(m.subscribe(1, [("$SYS/#", 0), ("#", 0)]))
    assert admin.expect(m.SUBACK).fields["reasons"] == [0x80, 0]
    # '#' matches no $SYS topic (MQTT-4.7.2-1), and the filtered delivery adds nothing: admin gets no $SYS.
    admin.send(m.publish("x/y", b"z"))
    got = admin.expect(m.PUBLISH)
    assert got.fields["topic"] == "x/y"


def test_patterns_with_mosquitto_clients(acl_broker, mosq_sub):
    import mqttclients as mc
    sub = mosq_sub(acl_broker.port, ["inbox/carol"], client_id="carol-sub", qos=1,
                   extra=["-u", "carol", "-P", USERS["carol"]])
    assert sub.wait_subscribed() == [1]
    mc.mosquitto_pub(acl_broker.port, "inbox/carol", message="for carol", client_id="adm-p", qos=1,
                     extra=["-u", "admin", "-P", USERS["admin"]])
    assert sub.messages(1) == [b"for carol"]
    # dev7 may write its own device tree (pattern %c), not another's
    mc.mosquitto_pub(acl_broker.port, "devices/dev8/x", message="no", client_id="dev7", qos=1)
    mc.mosquitto_pub(acl_broker.port, "devices/dev7/x", message="yes", client_id="dev7", qos=1)
    acl_broker.wait_log("client dev7: PUBLISH to 'devices/dev8/x' not authorized, dropped")
    denied = mosq_sub(acl_broker.port, ["inbox/bob"], client_id="carol-sub2", qos=1,
                      extra=["-u", "carol", "-P", USERS["carol"]])
    assert denied.wait_subscribed() == [128]


def test_restored_session_is_checked_as_its_user(make_broker, acl_files, files):
    """A persistent session restored after a restart knows its user name (store schema 2): queued deliveries
    are checked against that user's rules, not an anonymous client's."""
    pw, _ = acl_files
    acl = files("acl2", "user alice\ntopic read home/alice/#\ntopic deny home/alice/private\nuser admin\n"
                        "topic readwrite #\n")
    cfg = f'[auth]\npassword_file = "{pw}"\nacl_file = "{acl}"\n'
    b = make_broker(cfg)
    alice = client(b, "alice-p", "alice", clean=False)
    alice.send(m.subscribe(1, [("home/alice/#", 1)]))
    assert alice.expect(m.SUBACK).fields["reasons"] == [1]
    alice.close()
    b.wait_log("client disconnected: id=alice-p")
    assert b.stop() == 0
    b2 = make_broker(cfg, port=b.port)
    admin = client(b2, "adm-p2", "admin")
    for i, topic in enumerate(["home/alice/private", "home/alice/ok"]):
        admin.send(m.publish(topic, topic.encode(), qos=1, packet_id=30 + i))
        admin.expect(m.PUBACK)
    alice = client(b2, "alice-p", "alice", clean=False)
    got = alice.expect(m.PUBLISH)
    assert got.fields["topic"] == "home/alice/ok"
    alice.send(m.ack(m.PUBACK, got.fields["packet_id"]))
    alice.expect_nothing(0.3)


def test_decisions_match_mosquitto(make_broker, acl_files, mosquitto_broker):
    """The same passwd and ACL files in Debian's mosquitto and in petrel: the same PUBLISHes get through."""
    pw, acl = acl_files
    pet = make_broker(f'[auth]\nallow_anonymous = true\npassword_file = "{pw}"\nacl_file = "{acl}"\n')
    mos = mosquitto_broker(f"allow_anonymous true\npassword_file {pw}\nacl_file {acl}\n")
    cases = [(None, "c1", "public/x"), ("alice", "c2", "cmd/light"), ("alice", "c3", "cmd/reboot"),
             ("alice", "c4", "home/alice/a"), ("alice", "c5", "sensors/a/temp"), ("bob", "c6", "sensors/a/temp"),
             ("bob", "c7", "home/bob/x/y"), ("bob", "c8", "home/alice/x"), ("carol", "dev9", "devices/dev9/s"),
             ("carol", "dev9", "devices/dev1/s"), (None, "dev3", "devices/dev3/s"), ("carol", "c9", "inbox/carol")]
    results = {}
    for name, port in (("petrel", pet.port), ("mosquitto", mos.port)):
        watcher = m.RawClient(port)
        watcher.connect("watcher", username="admin", password=USERS["admin"].encode())
        watcher.send(m.subscribe(1, [("#", 1)]))
        watcher.expect(m.SUBACK)
        for i, (user, cid, topic) in enumerate(cases):
            c = m.RawClient(port)
            assert c.connect(cid, username=user, password=USERS[user].encode() if user else None).fields["reason"] == 0
            c.send(m.publish(topic, str(i).encode(), qos=1, packet_id=1))
            c.expect(m.PUBACK)
            c.close()
        c = m.RawClient(port)  # a marker that always gets through, to know everything before it arrived
        c.connect("marker", username="admin", password=USERS["admin"].encode())
        c.send(m.publish("zz/end", b"end", qos=1, packet_id=1))
        c.expect(m.PUBACK)
        got = []
        while True:
            p = watcher.expect(m.PUBLISH)
            watcher.send(m.ack(m.PUBACK, p.fields["packet_id"]))
            if p.fields["topic"] == "zz/end":
                break
            got.append(p.fields["topic"])
        results[name] = got
        watcher.close()
    assert results["petrel"] == results["mosquitto"]
    assert "cmd/reboot" not in results["petrel"] and "cmd/light" in results["petrel"]
