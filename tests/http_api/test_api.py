"""The JSON API under /api/v1/ (docs/http-api.md), every endpoint: status codes and JSON shape.

Clients are real MQTT connections (tests/lib/mqttraw.py) to the real broker; requests are real HTTP
(http.client). Listings page with `limit` and the cursor `after`; errors are {"error": {"status", "message"}}.
"""
from __future__ import annotations

import base64
import time

import pytest

import certs
import mqttraw as m
from petrel_paths import free_port

from .conftest import Api


def client(port: int, cid: str, version: int = 5, **kw) -> m.RawClient:
    c = m.RawClient(port, version=version)
    assert c.connect(cid, **kw).fields["reason"] == 0
    return c


def wait_for(fn, what: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            assert v, f"timed out waiting for {what}"
            return v
        time.sleep(0.02)


def error_of(r) -> str:
    body = r.json()
    assert set(body) == {"error"} and body["error"]["status"] == r.status, body
    return body["error"]["message"]


SESSION_KEYS = {"client_id", "online", "username", "listener", "peer", "protocol", "clean_start", "keep_alive",
                "connected_at", "changed_at", "session_expiry_interval", "subscriptions", "queued", "queued_bytes",
                "inflight", "inbound_qos2", "will_pending"}


def test_clients_list_filters_and_pages(http_broker):
    b = http_broker()
    api = b.api
    cs = [client(b.port, "alpha-1", username="ursula"), client(b.port, "alpha-2", version=4),
          client(b.port, "beta-1"), client(b.port, "alpha-3")]
    try:
        r = api.get("/api/v1/clients")
        assert r.status == 200, r
        items = r.json()["items"]
        assert [i["client_id"] for i in items] == ["alpha-1", "alpha-2", "alpha-3", "beta-1"]
        assert set(items[0]) == SESSION_KEYS
        a1 = items[0]
        assert (a1["online"], a1["username"], a1["listener"], a1["protocol"]) == (True, "ursula", "test", "5.0")
        assert a1["peer"].startswith("127.0.0.1:") and a1["connected_at"].endswith("Z")
        assert items[1]["protocol"] == "3.1.1"
        assert r.json()["next"] is None

        assert [i["client_id"] for i in api.get("/api/v1/clients?prefix=alpha-").json()["items"]] == \
            ["alpha-1", "alpha-2", "alpha-3"]
        assert [i["client_id"] for i in api.get("/api/v1/clients?user=ursula").json()["items"]] == ["alpha-1"]
        assert len(api.get("/api/v1/clients?listener=test").json()["items"]) == 4
        assert api.get("/api/v1/clients?listener=other").json()["items"] == []

        p1 = api.get("/api/v1/clients?limit=2").json()
        assert [i["client_id"] for i in p1["items"]] == ["alpha-1", "alpha-2"] and p1["next"] == "alpha-2"
        p2 = api.get(f"/api/v1/clients?limit=2&after={p1['next']}").json()
        assert [i["client_id"] for i in p2["items"]] == ["alpha-3", "beta-1"]
        p3 = api.get(f"/api/v1/clients?limit=2&after={p2['next']}").json()
        assert p3 == {"items": [], "next": None}

        for bad in ("limit=0", "limit=1001", "limit=abc", "limit=-1"):
            r = api.get(f"/api/v1/clients?{bad}")
            assert r.status == 400 and "'limit' must be an integer from 1 to 1000" in error_of(r), (bad, r)
    finally:
        for c in cs:
            c.close()


def test_client_detail_and_disconnect(http_broker):
    b = http_broker()
    api = b.api
    v5 = client(b.port, "kick-v5", properties=[(m.SESSION_EXPIRY_INTERVAL, 600)], clean=False)
    v3 = client(b.port, "kick-v3", version=4)
    v5.send(m.subscribe(1, [("detail/a", 1), ("detail/b/#", 2)], version=5))
    assert v5.expect(m.SUBACK).fields["reasons"] == [1, 2]
    r = api.get("/api/v1/clients/kick-v5")
    assert r.status == 200, r
    d = r.json()
    assert d["client_id"] == "kick-v5" and d["subscriptions"] == 2 and d["session_expiry_interval"] == 600
    assert d["queued"] == 0 and d["inflight"] == 0
    assert d["subscription_list"] == [
        {"filter": "detail/a", "qos": 1, "no_local": False, "retain_as_published": False, "retain_handling": 0,
         "subscription_id": None},
        {"filter": "detail/b/#", "qos": 2, "no_local": False, "retain_as_published": False, "retain_handling": 0,
         "subscription_id": None}]
    assert api.get("/api/v1/clients/nobody").status == 404

    # DELETE: v5 gets DISCONNECT 0x98 (Administrative action), v3 is closed; the v5 session stays (expiry).
    r = api.delete("/api/v1/clients/kick-v5")
    assert r.status == 202 and r.json() == {"client_id": "kick-v5", "disconnecting": True}, r
    assert v5.expect(m.DISCONNECT).fields["reason"] == 0x98
    v5.expect_closed()
    assert api.delete("/api/v1/clients/kick-v3").status == 202
    v3.expect_closed()
    wait_for(lambda: api.get("/api/v1/clients/kick-v5").status == 404, "kick-v5 offline")
    assert "its session is offline" in error_of(api.get("/api/v1/clients/kick-v5"))
    s = api.get("/api/v1/sessions/kick-v5").json()
    assert s["online"] is False and s["subscriptions"] == 2
    r = api.delete("/api/v1/clients/kick-v5")
    assert r.status == 409 and "not connected" in error_of(r), r
    assert api.delete("/api/v1/clients/nobody").status == 404
    v5.close()
    v3.close()


def test_sessions_include_offline_ones_and_can_be_deleted(http_broker):
    b = http_broker()
    api = b.api
    gone = client(b.port, "sess-offline", properties=[(m.SESSION_EXPIRY_INTERVAL, 600)], clean=False)
    gone.send(m.subscribe(1, [("sess/x", 1)], version=5))
    gone.expect(m.SUBACK)
    gone.send(m.disconnect())
    gone.expect_closed()
    live = client(b.port, "sess-online")
    try:
        wait_for(lambda: api.get("/api/v1/sessions/sess-offline").json()["online"] is False, "offline")
        # QoS 1 to the offline session is queued there.
        assert api.post("/api/v1/publish", {"topic": "sess/x", "payload": "for later", "qos": 1}).json()[
            "delivered"] == 1
        all_ = api.get("/api/v1/sessions").json()["items"]
        assert [(s["client_id"], s["online"]) for s in all_] == [("sess-offline", False), ("sess-online", True)]
        assert [s["client_id"] for s in api.get("/api/v1/sessions?online=false").json()["items"]] == ["sess-offline"]
        assert [s["client_id"] for s in api.get("/api/v1/sessions?online=true").json()["items"]] == ["sess-online"]
        assert api.get("/api/v1/sessions?online=maybe").status == 400
        off = api.get("/api/v1/sessions/sess-offline").json()
        assert off["queued"] == 1 and off["queued_bytes"] == len("sess/x") + len("for later")
        assert off["subscription_list"][0]["filter"] == "sess/x"

        r = api.delete("/api/v1/sessions/sess-offline")
        assert r.status == 200 and r.json() == {"client_id": "sess-offline", "deleted": True}, r
        assert api.get("/api/v1/sessions/sess-offline").status == 404
        assert api.delete("/api/v1/sessions/sess-offline").status == 404
        # Deleting a connected client's session disconnects it (v5: 0x98).
        assert api.delete("/api/v1/sessions/sess-online").status == 200
        assert live.expect(m.DISCONNECT).fields["reason"] == 0x98
    finally:
        live.close()


def test_subscriptions_listing(http_broker):
    b = http_broker()
    api = b.api
    cs = []
    try:
        for i in range(3):
            c = client(b.port, f"subs-{i}")
            c.send(m.subscribe(1, [(f"subs/{i}/a", 0), (f"other/{i}", 1)], version=5))
            c.expect(m.SUBACK)
            cs.append(c)
        items = api.get("/api/v1/subscriptions").json()["items"]
        assert len(items) == 6
        assert items[0] == {"client_id": "subs-0", "filter": "other/0", "qos": 1, "no_local": False,
                            "retain_as_published": False, "retain_handling": 0, "subscription_id": None}
        only = api.get("/api/v1/subscriptions?filter_prefix=subs/").json()["items"]
        assert [(s["client_id"], s["filter"]) for s in only] == [("subs-0", "subs/0/a"), ("subs-1", "subs/1/a"),
                                                                ("subs-2", "subs/2/a")]
        page = api.get("/api/v1/subscriptions?limit=2").json()
        assert [s["client_id"] for s in page["items"]] == ["subs-0", "subs-0"] and page["next"] == "subs-0"
        rest = api.get(f"/api/v1/subscriptions?after={page['next']}").json()
        assert [s["client_id"] for s in rest["items"]] == ["subs-1", "subs-1", "subs-2", "subs-2"]
    finally:
        for c in cs:
            c.close()


def test_retained_list_get_delete(http_broker):
    b = http_broker()
    api = b.api
    for topic, payload in (("ret/a", "one"), ("ret/b/deep", "two"), ("other/c", "three")):
        assert api.post("/api/v1/publish", {"topic": topic, "payload": payload, "retain": True}).status == 200
    assert api.post("/api/v1/publish", {"topic": "ret/bin", "payload_base64": "/wAB", "retain": True}).status == 200
    items = api.get("/api/v1/retained?filter=ret/%23").json()["items"]
    assert [i["topic"] for i in items] == ["ret/a", "ret/b/deep", "ret/bin"]
    assert items[0] == {"topic": "ret/a", "qos": 0, "size": 3, "payload": "one", "payload_base64": "b25l",
                        "properties": {}}
    assert items[2]["payload"] is None and items[2]["payload_base64"] == "/wAB"
    page = api.get("/api/v1/retained?filter=ret/%23&limit=2").json()
    assert [i["topic"] for i in page["items"]] == ["ret/a", "ret/b/deep"] and page["next"] == "ret/b/deep"
    assert [i["topic"] for i in api.get("/api/v1/retained?filter=ret/%23&after=ret/b/deep").json()["items"]] == \
        ["ret/bin"]
    assert api.get("/api/v1/retained?filter=a/%23/b").status == 400

    one = api.get("/api/v1/retained/ret/b/deep")
    assert one.status == 200 and one.json()["payload"] == "two", one
    assert api.get("/api/v1/retained/ret/none").status == 404
    assert api.get("/api/v1/retained/ret/%2B").status == 400  # a wildcard is no topic name
    r = api.delete("/api/v1/retained/ret/b/deep")
    assert r.status == 200 and r.json() == {"topic": "ret/b/deep", "deleted": True}, r
    assert api.get("/api/v1/retained/ret/b/deep").status == 404
    assert api.delete("/api/v1/retained/ret/b/deep").status == 404
    # A new subscriber no longer gets it.
    with m.RawClient(b.port, version=5) as c:
        c.connect("ret-check")
        c.send(m.subscribe(1, [("ret/b/#", 0)], version=5))
        c.expect(m.SUBACK)
        c.expect_nothing(0.3)


def test_publish_reaches_subscribers_with_properties(http_broker):
    b = http_broker()
    api = b.api
    with m.RawClient(b.port, version=5) as sub:
        sub.connect("pub-sub")
        sub.send(m.subscribe(1, [("api/#", 2)], version=5))
        sub.expect(m.SUBACK)
        r = api.post("/api/v1/publish", {
            "topic": "api/hello", "payload": "héllo", "qos": 1,
            "properties": {"content_type": "text/plain", "response_topic": "api/reply",
                           "correlation_data_base64": base64.b64encode(b"\x00\x01").decode(),
                           "message_expiry_interval": 60, "payload_format_indicator": 1,
                           "user_properties": [["k", "v"], ["k", "w"]]}})
        assert r.status == 200 and r.json() == {"topic": "api/hello", "qos": 1, "retain": False, "delivered": 1}, r
        p = sub.expect(m.PUBLISH)
        assert (p.fields["topic"], p.fields["payload"], p.fields["qos"]) == ("api/hello", "héllo".encode(), 1)
        props = p.fields["props"]
        assert props[m.CONTENT_TYPE] == "text/plain" and props[m.USER_PROPERTY] == [("k", "v"), ("k", "w")]
        assert props[m.RESPONSE_TOPIC] == "api/reply" and props[m.CORRELATION_DATA] == b"\x00\x01"
        assert 0 < props[m.MESSAGE_EXPIRY_INTERVAL] <= 60 and props[m.PAYLOAD_FORMAT_INDICATOR] == 1
        sub.send(m.ack(m.PUBACK, p.fields["packet_id"]))
        r = api.post("/api/v1/publish", {"topic": "api/bin", "payload_base64": base64.b64encode(b"\xff\xfe").decode(),
                                        "properties": {"user_properties": {"a": "b"}}})
        assert r.status == 200
        p = sub.expect(m.PUBLISH)
        assert p.fields["payload"] == b"\xff\xfe" and p.fields["props"][m.USER_PROPERTY] == [("a", "b")]


@pytest.mark.parametrize("body,status,words", [
    ({}, 400, "'topic' is required"),
    ({"topic": "a/+"}, 400, "not a valid topic name"),
    ({"topic": ""}, 400, "not a valid topic name"),
    ({"topic": "$SYS/x"}, 400, "reserved"),
    ({"topic": "a", "qos": 3}, 400, "'qos' must be an integer from 0 to 2"),
    ({"topic": "a", "retain": "yes"}, 400, "'retain' must be true or false"),
    ({"topic": "a", "payload": "x", "payload_base64": "eA=="}, 400, "not both"),
    ({"topic": "a", "payload_base64": "***"}, 400, "not base64"),
    ({"topic": "a", "colour": "red"}, 400, "unknown key 'colour'"),
    ({"topic": "a", "properties": {"topic_alias": 1}}, 400, "unknown key 'topic_alias' in properties"),
    ({"topic": "a", "payload_base64": "/w==", "properties": {"payload_format_indicator": 1}}, 400, "not UTF-8"),
    ({"topic": "a", "payload": "x" * 3000}, 413, "max_packet_size"),
    ({"topic": "a", "payload": "x", "qos": 2}, 400, "above max_qos"),
])
def test_publish_errors(http_broker, body, status, words):
    b = http_broker("[mqtt]\nmax_packet_size = 2048\nmax_qos = 1\n")
    r = b.api.post("/api/v1/publish", body)
    assert r.status == status, r
    assert words in error_of(r), r


def test_publish_retained_over_quota_is_409(http_broker):
    b = http_broker("[mqtt]\nmax_retained_messages = 1\n[sys]\ninterval = 0\n")
    assert b.api.post("/api/v1/publish", {"topic": "q/1", "payload": "a", "retain": True}).status == 200
    r = b.api.post("/api/v1/publish", {"topic": "q/2", "payload": "b", "retain": True})
    assert r.status == 409 and "max_retained_messages" in error_of(r), r
    assert b.api.post("/api/v1/publish", {"topic": "q/1", "payload": "c", "retain": True}).status == 200


def test_listeners_and_stats(http_broker):
    b = http_broker()
    items = b.api.get("/api/v1/listeners").json()["items"]
    assert [(l["name"], l["state"], l["port"]) for l in items] == [("test", "accepting", b.port)]
    assert b.api.get("/api/v1/listeners/test").json()["name"] == "test"
    assert b.api.get("/api/v1/listeners/none").status == 404
    with m.RawClient(b.port, version=5) as c:
        c.connect("stats-1")
        s = b.api.get("/api/v1/stats").json()
        assert s["clients_connected"] == 1 and s["sessions"] == 1 and s["version"]
        assert set(s["in"]) == {"messages", "bytes"} and len(s["in"]["messages"]) == 3


def test_config_is_effective_and_redacted(http_broker, tmp_path_factory):
    pki = certs.Pki(tmp_path_factory.mktemp("pki"))
    b = http_broker(f'[[listener]]\nname = "tls"\ntype = "tls"\nbind = "127.0.0.1"\nport = {free_port()}\n'
                    f'cert_file = "{pki.server.cert}"\nkey_file = "{pki.server_key_encrypted}"\n'
                    f'key_password = "{pki.KEY_PASSWORD}"\n[mqtt]\nmax_inflight = 77\n')
    r = b.api.get("/api/v1/config")
    assert r.status == 200, r
    c = r.json()
    assert c["mqtt"]["max_inflight"] == 77 and c["mqtt"]["max_qos"] == 2  # from the file, and a default
    tls = next(l for l in c["listener"] if l["name"] == "tls")
    assert tls["key_password"] == "(redacted)"
    assert pki.KEY_PASSWORD not in r.text
    assert c["http"]["port"] == b.http_port and c["http"]["token_file"] == ""
