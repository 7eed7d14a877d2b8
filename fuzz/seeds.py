#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/corpus/<target>/) from well-formed packets.

Run from the repository root: /usr/bin/python3 fuzz/seeds.py. The output is
committed; rerun when adding seeds.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "lib"))
import mqttraw as m  # noqa: E402

P = m.PUBLISH
packets_v4 = {
    "connect": m.connect("c", version=4, will_topic="w", will_payload=b"x", will_qos=1, username="u", password=b"p"),
    "connect31": m.connect("c", version=3),
    "publish0": m.publish("a/b", b"hi", version=4),
    "publish1": m.publish("a/b", b"hi", qos=1, packet_id=5, version=4),
    "publish2": m.publish("a/b", b"hi", qos=2, retain=True, packet_id=6, version=4),
    "subscribe": m.subscribe(1, [("a/+", 1), ("#", 2)], version=4),
    "unsubscribe": m.unsubscribe(2, ["a/+"], version=4),
    "puback": m.ack(m.PUBACK, 5), "pubrec": m.ack(m.PUBREC, 6), "pubrel": m.ack(m.PUBREL, 6),
    "pubcomp": m.ack(m.PUBCOMP, 6), "pingreq": m.pingreq(), "disconnect": m.disconnect(),
}
props = [(m.PAYLOAD_FORMAT_INDICATOR, 1), (m.MESSAGE_EXPIRY_INTERVAL, 60), (m.CONTENT_TYPE, "text/plain"),
         (m.RESPONSE_TOPIC, "r/t"), (m.CORRELATION_DATA, b"id"), (m.USER_PROPERTY, ("k", "v")), (m.TOPIC_ALIAS, 1)]
packets_v5 = {
    "connect": m.connect("c", version=5, properties=[(m.SESSION_EXPIRY_INTERVAL, 60), (m.RECEIVE_MAXIMUM, 10),
                                                     (m.MAXIMUM_PACKET_SIZE, 1000), (m.TOPIC_ALIAS_MAXIMUM, 5),
                                                     (m.USER_PROPERTY, ("a", "b"))],
                         will_topic="w", will_payload=b"x", will_properties=[(m.WILL_DELAY_INTERVAL, 5)]),
    "publish": m.publish("a/b", b"hi", qos=1, packet_id=1, version=5, properties=props),
    "subscribe": m.subscribe(1, [("a/#", 0x2E)], version=5, properties=[(m.SUBSCRIPTION_IDENTIFIER, 7)]),
    "unsubscribe": m.unsubscribe(1, ["a/#"], version=5, properties=[(m.USER_PROPERTY, ("k", "v"))]),
    "puback": m.ack(m.PUBACK, 1, 0x10, [(m.REASON_STRING, "none")]),
    "pubrel": m.ack(m.PUBREL, 1, 0x92),
    "disconnect": m.disconnect(0x04, [(m.SESSION_EXPIRY_INTERVAL, 0)]),
    "auth": m.auth(0x18, [(m.AUTHENTICATION_METHOD, "m"), (m.AUTHENTICATION_DATA, b"d")]),
}


def write(target: str, name: str, data: bytes) -> None:
    d = ROOT / "fuzz" / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


session_v4 = packets_v4["connect"] + b"".join(v for k, v in packets_v4.items() if not k.startswith("connect"))
session_v5 = packets_v5["connect"] + b"".join(v for k, v in packets_v5.items() if k != "connect")
write("decode", "session-v311", bytes([1]) + session_v4)
write("decode", "session-v5", bytes([2]) + session_v5)
write("decode", "session-v31", bytes([0]) + packets_v4["connect31"] + packets_v4["publish1"])
for k, v in packets_v4.items():
    write("roundtrip", f"v311-{k}", bytes([0]) + v)
for k, v in packets_v5.items():
    write("roundtrip", f"v5-{k}", bytes([1]) + v)
for i, (f, t) in enumerate([("a/+", "a/b"), ("#", "x/y/z"), ("a/#", "a"), ("+/+", "/a"), ("$SYS/#", "$SYS/x"),
                            ("+/b", "$x/b"), ("a//b", "a//b")]):
    write("topic", f"pair-{i}", f"{f}\0{t}".encode())
write("config", "example", (ROOT / "config" / "petrel.toml").read_bytes())
write("config", "tls", b'[[listener]]\ntype = "tls"\ncert_file = "a"\nkey_file = "b"\nclient_cert = "optional"\n'
                       b'ca_file = "c"\nalpn = ["mqtt"]\n[mqtt]\nmax_qos = 1\n[sys]\ninterval = 0\n')
write("passwd", "mosquitto", (ROOT / "tests" / "unit" / "auth" / "passwd.sample").read_bytes())
write("passwd", "edge", b"# comment\n\n  bob : $6$MDEyMzQ1Njc4OWFi$yENQmLDThG++6PC1+pa4teCd8OLLLZxsUU5gRmzOx2Xf41rnntsKT0ZaUPgaYw0ik"
                        b"EEWamHVWW/CNn6bXkDD/A==  \r\nno-newline:$7$1$AAAAAAAAAAAAAAAA$"
                        + b"A" * 86 + b"==")
write("acl", "example", (ROOT / "config" / "acl.example").read_bytes())
write("acl", "patterns", b"topic read public/#\ntopic deny public/secret\nuser alice\ntopic readwrite home/alice/#\n"
                         b"topic $SYS/#\nuser bob smith\ntopic write +/x/#\npattern readwrite devices/%c/#\n"
                         b"pattern read a/%u-%c/b\npattern deny %c\n")


def jwt(header: dict, claims: dict, secret: bytes = b"fuzz") -> bytes:
    import base64
    import hashlib
    import hmac
    import json
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")  # noqa: E731
    signed = enc(json.dumps(header).encode()) + b"." + enc(json.dumps(claims).encode())
    return signed + b"." + enc(hmac.new(secret, signed, hashlib.sha256).digest())


write("jwt", "valid", jwt({"alg": "HS256"}, {"exp": 1900000000, "sub": "alice", "publish": ["a/#"], "subscribe": "b"}))
write("jwt", "expired", jwt({"alg": "HS256"}, {"exp": 1, "nbf": 0, "sub": "alice"}))
write("jwt", "wrong-key", jwt({"alg": "HS256"}, {"exp": 1900000000, "sub": "alice"}, b"other"))
write("jwt", "none", jwt({"alg": "none"}, {"exp": 1900000000}).rsplit(b".", 1)[0] + b".")
write("scram", "exchange", b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO\0c=biws,r=rOprNGfwEbeRWgbNEkqOfuzznonce,"
                          b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=\0alice:SCRAM-SHA-256$4096:"
                          b"W22ZaJ0SNY7soEsUEjb6gQ==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:"
                          b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
write("scram", "escapes", b"y,a=admin,n=a=2Cb=3D,r=x,ext=1\0c=eSxhPWFkbWluLA==,r=xfuzznonce,p=AAAA")
print("seed corpus written")
