"""A petrel bridge to Debian's mosquitto: forward and subscribe rules with prefixes, in MQTT 3.1.1 and 5, over
plain TCP and mutual TLS; what a remote that refuses the credentials, or never answers CONNECT, makes it do."""
from __future__ import annotations

import re
import socket
import subprocess
import threading

import pytest

import mqttraw as m
from persistence import helpers

from .conftest import TIMEOUT, bridge_status, bridge_toml, connected, wait_api, wait_log_count

RULES = dict(forward=[("sensors/#", "edge-17/", 1)], subscribe=[("commands/edge-17/#", "from-cloud/", 1)])


def remote_client(port: int, client_id: str, version: int = 5, **kw) -> m.AsyncClient:
    c = helpers.track(m.AsyncClient(port, version=version, name=client_id, timeout=TIMEOUT))
    c.connect(client_id, **kw)
    return c


def exchange(broker, remote_port: int, version: int) -> None:
    """Local -> remote through the forward rule, remote -> local through the subscribe rule."""
    remote_sub = remote_client(remote_port, "cloud-app", version)
    assert remote_sub.subscribe(1, [("edge-17/#", 1)]) == [1]
    local_sub = helpers.connect(broker, "local-app", version=version)
    assert helpers.subscribe(local_sub, "from-cloud/#", 1) == [1]

    pub = helpers.connect(broker, "device", version=version)
    props = [(m.USER_PROPERTY, ("site", "plant-3")), (m.CONTENT_TYPE, "text/plain")] if version == 5 else None
    helpers.publish(pub, "other/ignored", b"not forwarded", qos=1, packet_id=1)
    helpers.publish(pub, "sensors/t1", b"21.5", qos=1, packet_id=2, retain=True, properties=props)
    helpers.publish(pub, "sensors/t2", b"end", qos=0)
    remote_sub.wait_for(lambda: any(p.fields["payload"] == b"end" for p in remote_sub.publishes), "the sentinel")
    got = [(p.fields["topic"], p.fields["payload"]) for p in remote_sub.received()]
    assert got == [("edge-17/sensors/t1", b"21.5"), ("edge-17/sensors/t2", b"end")]
    first = remote_sub.received()[0]
    assert first.fields["qos"] == 1
    if version == 5:
        assert first.fields["props"][m.USER_PROPERTY] == [("site", "plant-3")]
        assert first.fields["props"][m.CONTENT_TYPE] == "text/plain"
    # The retain flag went along: a new subscriber on the remote gets the message as retained.
    late = remote_client(remote_port, "cloud-late", version)
    late.subscribe(1, [("edge-17/sensors/t1", 1)])
    late.wait_for(lambda: late.publishes, "the retained message")
    assert late.publishes[0].fields["retain"] and late.publishes[0].fields["payload"] == b"21.5"

    # Remote -> local, with the local prefix; a topic outside the rule stays on the remote.
    cloud = remote_client(remote_port, "cloud-cmd", version)
    cloud.send(m.publish("commands/edge-18/reboot", b"no", qos=1, packet_id=1, version=version))
    cloud.send(m.publish("commands/edge-17/reboot", b"now", qos=1, packet_id=2, version=version))
    cloud.wait_packet(m.PUBACK, 2)
    p = helpers.receive(local_sub)
    assert (p.fields["topic"], p.fields["payload"], p.fields["qos"]) == ("from-cloud/commands/edge-17/reboot", b"now", 1)
    local_sub.expect_nothing(0.2)

    status = wait_api(broker, "cloud", lambda s: s["forwarded"] == 2 and s["received"] == 1, "2 forwarded, 1 received")
    assert status["connected"] and status["state"] == "connected" and status["queued"] == 0 and status["dropped"] == 0


@pytest.mark.parametrize("version", [4, 5])
def test_forward_and_subscribe_with_prefixes(make_broker, mosquitto, version):
    remote = mosquitto("allow_anonymous true")
    b = make_broker(bridge_toml("cloud", remote.port, version=version, **RULES))
    connected(b, "cloud")
    exchange(b, remote.port, version)
    # The remote knows the bridge by its client id and protocol version.
    assert re.search(rf"New client connected from 127\.0\.0\.1:\d+ as petrel-cloud \(p{5 if version == 5 else 2}",
                     remote.log_text()), remote.log_text()


@pytest.mark.parametrize("version", [4, 5])
def test_mutual_tls(make_broker, mosquitto, pki, version):
    client = pki.issue_client(pki.dir / f"bridge-client-{version}", "edge-17")
    remote = mosquitto(f"allow_anonymous true\ncafile {pki.ca}\ncertfile {pki.server.cert}\n"
                       f"keyfile {pki.server.key}\nrequire_certificate true\nuse_identity_as_username true\n")
    b = make_broker(bridge_toml("cloud", remote.port, version=version, tls=True, ca_file=str(pki.ca),
                                cert_file=str(client.cert), key_file=str(client.key), server_name="localhost",
                                **RULES))
    connected(b, "cloud")
    assert " over TLS" in b.log_text()
    # The remote saw the bridge's certificate: its CN became the user name there.
    assert "u'edge-17'" in remote.log_text()
    # Clients of the TLS remote need TLS too: check forwarding with a subscriber over TLS.
    import ssl
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.clients["alice"].cert), str(pki.clients["alice"].key))
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", remote.port), timeout=TIMEOUT),
                           server_hostname="localhost")
    sub = helpers.track(m.RawClient.over(sock, version=version, timeout=TIMEOUT))
    sub.send(m.connect("cloud-app", version=version))
    assert sub.expect(m.CONNACK).fields["reason"] == 0
    assert helpers.subscribe(sub, "edge-17/#", 1) == [1]
    pub = helpers.connect(b, "device", version=version)
    helpers.publish(pub, "sensors/t1", b"over tls", qos=1)
    p = helpers.receive(sub)
    assert (p.fields["topic"], p.fields["payload"]) == ("edge-17/sensors/t1", b"over tls")


def test_mutual_tls_without_the_ca_is_retried_with_the_reason(make_broker, mosquitto, pki):
    other = pki.other_ca
    remote = mosquitto(f"cafile {pki.ca}\ncertfile {pki.server.cert}\nkeyfile {pki.server.key}\n"
                       "require_certificate true\nallow_anonymous true\n")
    b = make_broker(bridge_toml("cloud", remote.port, tls=True, ca_file=str(other), **RULES))
    log = wait_log_count(b, "TLS certificate verification failed", 2)
    assert "bridge 'cloud': cannot connect to 127.0.0.1" in log
    assert not bridge_status(b, "cloud")["connected"]


@pytest.mark.parametrize("version", [4, 5])
def test_wrong_credentials_are_logged_and_retried_at_the_slowest_rate(make_broker, mosquitto, tmp_path, version):
    pw = tmp_path / "passwd"
    pw.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "edge", "right"], check=True)
    remote = mosquitto(f"allow_anonymous false\npassword_file {pw}\n")
    b = make_broker(bridge_toml("cloud", remote.port, version=version, username="edge", password="wrong",
                                reconnect_delay_min=20, reconnect_delay_max=1000, **RULES))
    log = wait_log_count(b, "the remote refused the connection", 2)
    lines = [line for line in log.splitlines() if "the remote refused the connection" in line]
    if version == 5:
        assert re.search(r"refused the connection: (not authorized \(0x87\)|bad user name or password \(0x86\))",
                         lines[0]), lines[0]
    else:
        assert re.search(r"refused the connection: .* \(return code [45]\)", lines[0]), lines[0]
    # The slowest rate: every retry waits between half and all of reconnect_delay_max (1 s), not the 20 ms minimum.
    delays = [float(x) for x in re.findall(r"retrying in ([0-9.]+) s", "\n".join(lines))]
    assert delays and all(0.5 <= d <= 1.0 for d in delays), delays
    status = bridge_status(b, "cloud")
    assert not status["connected"] and "refused the connection" in status["last_error"]
    assert status["connects"] == 0


def test_remote_that_never_answers_connect(make_broker):
    """A remote that accepts TCP and reads but never sends CONNACK: petrel gives up after connect_timeout and
    connects again."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    cond = threading.Condition()

    def serve():
        while True:
            try:
                s, _ = server.accept()
            except OSError:
                return
            with cond:
                accepted.append(s)
                cond.notify_all()

    threading.Thread(target=serve, daemon=True).start()
    try:
        b = make_broker(bridge_toml("silent", server.getsockname()[1], connect_timeout=1, **RULES))
        with cond:
            assert cond.wait_for(lambda: len(accepted) >= 2, 6 * TIMEOUT), "petrel did not connect a second time"
        # The first connection got a CONNECT and was closed by petrel.
        first = accepted[0]
        first.settimeout(TIMEOUT)
        data = b""
        while True:
            chunk = first.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data[:1] == b"\x10", data  # CONNECT, then petrel closed it
        log = b.wait_log("no CONNACK within connect_timeout (1.0 s)")
        assert "bridge 'silent': cannot connect to 127.0.0.1" in log
    finally:
        server.close()
        for s in accepted:
            s.close()


def test_qos_is_the_minimum_and_retain_follows_the_rule(make_broker, mosquitto):
    """A forwarded message goes at the lower of its QoS and its rule's; a rule with retain = false clears the
    retain flag (seen with Retain As Published on the remote subscription), the default keeps it."""
    remote = mosquitto("allow_anonymous true")
    sub = remote_client(remote.port, "cloud-app")
    assert sub.subscribe(1, [("out/#", 2 | 0x08)]) == [2]  # QoS 2, Retain As Published
    b = make_broker(bridge_toml("cloud", remote.port, forward=[("q0/#", "out/", 0), ("q2/#", "out/", 2),
                                                                ("flat/#", "out/", 1, False)]))
    connected(b, "cloud")
    pub = helpers.connect(b, "device")
    helpers.publish(pub, "q0/a", b"1", qos=2, packet_id=1)   # rule 0: QoS 0
    helpers.publish(pub, "q2/b", b"2", qos=1, packet_id=2)   # message 1: QoS 1
    helpers.publish(pub, "q2/c", b"3", qos=2, packet_id=3, retain=True)   # QoS 2, retained
    helpers.publish(pub, "flat/d", b"4", qos=1, packet_id=4, retain=True)  # retain = false: cleared
    sub.wait_for(lambda: len(sub.received()) >= 4, "4 forwarded messages")
    got = {p.fields["topic"]: (p.fields["qos"], bool(p.fields["retain"])) for p in sub.received()}
    assert got == {"out/q0/a": (0, False), "out/q2/b": (1, False), "out/q2/c": (2, True),
                   "out/flat/d": (1, False)}, got


def test_reconnect_delays_double_with_jitter(make_broker):
    """Nothing listens at the remote's address: each failed attempt waits between half and all of
    min(reconnect_delay_max, reconnect_delay_min * 2^n), as configured."""
    import petrel_paths
    port = petrel_paths.free_port()
    b = make_broker(bridge_toml("down", port, reconnect_delay_min=200, reconnect_delay_max=800, **RULES))
    log = wait_log_count(b, "bridge 'down': cannot connect to", 5)
    delays = [float(x) for x in re.findall(r"bridge 'down': cannot connect to .*; retrying in ([0-9.]+) s", log)]
    assert len(delays) >= 5, log
    for n, d in enumerate(delays[:5]):
        nominal = min(0.8, 0.2 * 2 ** n)
        # The log rounds to 0.1 s.
        assert nominal / 2 - 0.05 <= d <= nominal + 0.05, (n, delays)
    assert bridge_status(b, "down")["state"] in ("waiting", "connecting")
