"""What an operator sees of a bridge: $SYS/broker/bridge/<name>/..., /metrics and /api/v1/bridges; and bad
[[bridge]] tables refused at start with file, line and what is wrong (exit status 2)."""
from __future__ import annotations

import re
import subprocess
import urllib.request

import pytest

import mqttraw as m
from persistence import helpers
from petrel_paths import PETREL_BIN

from .conftest import TIMEOUT, api, bridge_toml, connected, wait_api


def test_sys_metrics_and_api(make_broker, mosquitto):
    remote = mosquitto("allow_anonymous true")
    b = make_broker("[sys]\ninterval = 1\n" + bridge_toml("cloud", remote.port, forward=[("sensors/#", "edge/", 1)],
                                                          subscribe=[("cmd/#", "in/", 0)]))
    connected(b, "cloud")
    pub = helpers.connect(b, "device")
    for n in range(3):
        helpers.publish(pub, "sensors/s", b"%d" % n, qos=1, packet_id=n + 1)
    wait_api(b, "cloud", lambda s: s["forwarded"] == 3, "3 forwarded")

    sys = helpers.connect(b, "sys-reader")
    helpers.subscribe(sys, "$SYS/broker/bridge/cloud/#", 0)
    values: dict[str, bytes] = {}
    while values.get("forwarded") != b"3" or values.get("connected") != b"1":
        p = sys.expect(m.PUBLISH, timeout=3 * TIMEOUT)
        values[p.fields["topic"].rsplit("/", 1)[1]] = p.fields["payload"]
    assert values["state"] == b"connected" and values["queued"] == b"0" and values["dropped"] == b"0"

    with urllib.request.urlopen(f"http://127.0.0.1:{b.http_port}/metrics", timeout=TIMEOUT) as r:
        metrics = r.read().decode()
    assert 'petrel_bridge_connected{bridge="cloud"} 1' in metrics
    assert 'petrel_bridge_forwarded_total{bridge="cloud"} 3' in metrics
    assert 'petrel_bridge_queued_messages{bridge="cloud"} 0' in metrics

    items = api(b, "/api/v1/bridges")["items"]
    assert [i["name"] for i in items] == ["cloud"]
    one = items[0]
    assert one["address"] == f"127.0.0.1:{remote.port}" and one["version"] == 5 and one["client_id"] == "petrel-cloud"
    assert one["connected"] and one["remote_receive_maximum"] == 20  # mosquitto's default max_inflight_messages
    # The effective configuration lists the bridge, its password redacted.
    config = api(b, "/api/v1/config")
    assert config["bridge"][0]["forward"] == [{"filter": "sensors/#", "remote_prefix": "edge/", "qos": 1,
                                               "retain": True}]


def test_stopped_remote_shows_in_status(make_broker, mosquitto):
    remote = mosquitto("allow_anonymous true")
    b = make_broker(bridge_toml("cloud", remote.port, forward=[("sensors/#", "edge/", 1)]))
    connected(b, "cloud")
    remote.stop()
    s = wait_api(b, "cloud", lambda s: not s["connected"] and s["last_error"], "disconnected with a reason")
    assert s["state"] in ("waiting", "connecting")
    assert re.search(r"connection closed by the remote|connection lost|cannot connect", s["last_error"]), s


BAD = [
    ('[[bridge]]\nname = "x"\n[[bridge.forward]]\nfilter = "a/#"\n', r":1:1: bridge 'x' needs address"),
    ('[[bridge]]\nname = "x"\naddress = "h:1"\nversion = 3\n[[bridge.forward]]\nfilter = "a"\n',
     r":4:11: 'version' must be between 4 and 5, not 3"),
    ('[[bridge]]\nname = "x"\naddress = "h:99999"\n[[bridge.forward]]\nfilter = "a"\n', r":3:11: 'h:99999' is not"),
    ('[[bridge]]\nname = "x"\naddress = "::1:1883"\n[[bridge.forward]]\nfilter = "a"\n', r"IPv6 address goes in brackets"),
    ('[[bridge]]\nname = "x"\naddress = "h:1"\n[[bridge.forward]]\nfilter = "a/#/b"\n',
     r":5:10: 'a/#/b' is not a valid topic filter"),
    ('[[bridge]]\nname = "x"\naddress = "h:1"\n[[bridge.forward]]\nfilter = "a"\nremote_prefix = "e/+/"\n',
     r":6:17: 'remote_prefix' may not contain"),
    ('[[bridge]]\nname = "x"\naddress = "h:1"\n', r"bridge 'x' has no \[\[bridge.forward\]\] and no"),
    ('[[bridge]]\nname = "x"\naddress = "h:1"\nca_file = "ca.pem"\n[[bridge.forward]]\nfilter = "a"\n',
     r":4:11: 'ca_file' needs tls = true"),
    ('[[bridge]]\nname = "a/b"\naddress = "h:1"\n[[bridge.forward]]\nfilter = "a"\n', r"bridge name 'a/b' must be"),
    ('[[bridge]]\nname = "x"\naddress = "h:1"\n[[bridge.forward]]\nfilter = "a"\n'
     '[[bridge]]\nname = "x"\naddress = "h:2"\n[[bridge.forward]]\nfilter = "a"\n', r"a second bridge named 'x'"),
    ('[[bridge]]\nname = "x"\naddress = "h:1"\nqueue = 5\n[[bridge.forward]]\nfilter = "a"\n',
     r":4:9: unknown key 'queue' in \[\[bridge\]\]"),
    ('[[bridge]]\nname = "x"\naddress = "h:1"\ntls = true\nca_file = "/nonexistent/ca.pem"\n'
     '[[bridge.forward]]\nfilter = "a"\n', r"cannot read ca_file '/nonexistent/ca.pem'"),
    ('[[bridge]]\nname = "x"\naddress = "h:1"\n[[bridge.subscribe]]\nfilter = "$SYS/#"\n',
     r"cannot be published on petrel's own \$SYS topics"),
    ('[[bridge]]\nname = "x"\naddress = "h:1"\nreconnect_delay_min = 500\nreconnect_delay_max = 100\n'
     '[[bridge.forward]]\nfilter = "a"\n', r"reconnect_delay_max \(100 ms\) is below reconnect_delay_min"),
]


@pytest.mark.parametrize("toml,expected", BAD)
def test_bad_bridge_configuration_fails_at_start(tmp_path, toml, expected):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    r = subprocess.run([PETREL_BIN, "check-config", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=20)
    assert r.returncode == 2, r.stdout
    assert str(path) in r.stdout and re.search(expected, r.stdout), r.stdout
    # And the broker itself refuses to start with it, the same way.
    r = subprocess.run([PETREL_BIN, "--config", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=20)
    assert r.returncode == 2 and re.search(expected, r.stdout), r.stdout
