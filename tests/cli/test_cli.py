"""petrel pub / petrel sub against the real broker: round trips, output
formats, and exit codes that scripts can rely on (tools/cli/cli.hpp)."""
import json
import subprocess

import pytest

import mqttraw as m
from petrel_paths import PETREL_BIN


def run(*args, input=None, timeout=20):
    return subprocess.run([PETREL_BIN, *args], input=input, capture_output=True, timeout=timeout)


def start_sub(broker, *args):
    """Starts `petrel sub`; pair with wait_subscribed(). The sub must also subscribe to cli/probe/<id>: it
    receives exactly one (empty) probe message, so -C counts one more than the messages under test."""
    p = subprocess.Popen([PETREL_BIN, "sub", "-p", str(broker.port), *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    return p


def wait_subscribed(broker, client_id):
    broker.wait_log(f"client connected: id={client_id}")
    # The SUBSCRIBE follows CONNECT on the same connection; a PINGREQ round trip on another
    # connection does not order it, so probe with a QoS 1 publish until the subscription is there.
    with m.RawClient(broker.port, version=5) as probe:
        probe.connect("probe-" + client_id)
        for i in range(200):
            probe.send(m.publish("cli/probe/" + client_id, b"", qos=1, packet_id=i + 1, version=5))
            ack = probe.expect(m.PUBACK)
            if ack.fields["reason"] == 0:
                return
        raise AssertionError("subscription never appeared")


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_pub_sub_round_trip(broker, protocol):
    sub = start_sub(broker, "-V", protocol, "-i", f"s{protocol}", "-t", "cli/rt/#", "-t", f"cli/probe/s{protocol}",
                    "-v", "-q", "1", "-C", "3", "-W", "15")
    wait_subscribed(broker, f"s{protocol}")
    for payload in ("one", "two"):
        r = run("pub", "-p", str(broker.port), "-V", protocol, "-t", "cli/rt/x", "-m", payload, "-q", "1")
        assert r.returncode == 0, r.stderr
    out, err = sub.communicate(timeout=15)
    assert sub.returncode == 0, err
    lines = [l for l in out.decode().splitlines() if not l.startswith("cli/probe/")]
    assert lines == ["cli/rt/x one", "cli/rt/x two"]


def test_sub_json_carries_qos_retain_and_properties(broker):
    r = run("pub", "-p", str(broker.port), "-t", "cli/json", "-m", "héllo", "-q", "1", "-r", "-D", "k", "v",
            "-D", "k", "w", "--content-type", "text/plain", "--response-topic", "cli/reply",
            "--correlation-data", "42", "--utf8")
    assert r.returncode == 0, r.stderr
    r = run("sub", "-p", str(broker.port), "-t", "cli/json", "-q", "1", "--json", "-C", "1", "-W", "10")
    assert r.returncode == 0, r.stderr
    msg = json.loads(r.stdout.decode())
    assert msg["topic"] == "cli/json" and msg["payload"] == "héllo"
    assert msg["qos"] == 1 and msg["retain"] is True
    props = msg["properties"]
    assert props["content_type"] == "text/plain" and props["response_topic"] == "cli/reply"
    assert props["correlation_data"] == "42" and props["payload_format_indicator"] == 1
    assert props["user_properties"] == [["k", "v"], ["k", "w"]]


def test_pub_lines_from_stdin_and_file(broker, tmp_path):
    f = tmp_path / "payload.bin"
    f.write_bytes(bytes(range(256)) * 4)
    assert run("pub", "-p", str(broker.port), "-t", "cli/file", "-f", str(f), "-r", "-q", "1").returncode == 0
    r = run("sub", "-p", str(broker.port), "-t", "cli/file", "--json", "-C", "1", "-W", "10")
    assert json.loads(r.stdout.decode())["payload_hex"] == (bytes(range(256)) * 4).hex()
    sub = start_sub(broker, "-i", "lines", "-t", "cli/lines", "-t", "cli/probe/lines", "-q", "1", "-C", "4",
                    "-W", "15")
    wait_subscribed(broker, "lines")
    r = run("pub", "-p", str(broker.port), "-t", "cli/lines", "-l", "-q", "1", input=b"a\nb\nc\n")
    assert r.returncode == 0, r.stderr
    out, _ = sub.communicate(timeout=15)
    assert [l for l in out.decode().splitlines() if l] == ["a", "b", "c"]


def test_exit_code_1_when_nothing_listens(broker):
    port = broker.port
    broker.stop()
    r = run("pub", "-p", str(port), "-t", "x", "-m", "y")
    assert r.returncode == 1
    assert b"Connection refused" in r.stderr


def test_exit_code_1_and_words_for_unknown_host():
    r = run("pub", "-H", "no-such-host.invalid", "-t", "x", "-m", "y")
    assert r.returncode == 1
    assert b"cannot resolve host 'no-such-host.invalid'" in r.stderr


def test_exit_code_3_on_wait_timeout(broker):
    r = run("sub", "-p", str(broker.port), "-t", "cli/silence", "-W", "0.5")
    assert r.returncode == 3


def test_exit_code_4_when_broker_refuses_connection(make_broker):
    broker = make_broker(config="[mqtt]\nmax_client_id_length = 23\n")
    r = run("pub", "-p", str(broker.port), "-i", "x" * 24, "-t", "x", "-m", "y")
    assert r.returncode == 4
    assert b"client identifier not valid (0x85)" in r.stderr


def test_exit_code_5_when_subscription_refused(broker):
    r = run("sub", "-p", str(broker.port), "-t", "a/#/b", "-W", "5")
    assert r.returncode == 5
    assert b"topic filter invalid (0x8F)" in r.stderr


def test_exit_code_2_on_bad_command_line():
    assert run("pub", "-t", "x").returncode == 2  # no message given
    assert run("sub").returncode == 2             # no topic: a bad command line


def test_repeat_publishes_n_times(broker):
    sub = start_sub(broker, "-i", "rep", "-t", "cli/rep", "-t", "cli/probe/rep", "-q", "1", "-C", "6", "-W", "15")
    wait_subscribed(broker, "rep")
    assert run("pub", "-p", str(broker.port), "-t", "cli/rep", "-m", "r", "-q", "1", "--repeat", "5").returncode == 0
    out, _ = sub.communicate(timeout=15)
    assert sub.returncode == 0
    assert out.decode().split() == ["r"] * 5
