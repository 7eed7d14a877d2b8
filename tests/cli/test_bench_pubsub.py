"""petrel bench pub and petrel bench sub against the real broker, run as two
processes at once: what the subscribers count agrees with what the broker
acknowledged to the publishers, per-client topics are what the pattern says,
and bad input is refused with a reason (docs/cli.md). No timing is asserted
beyond order: p50 <= p90 <= p99 <= max."""
import json
import subprocess

import pytest

from benchsub import BenchSub
from petrel_paths import PETREL_BIN

TIMEOUT = 30


def bench(*args, timeout=TIMEOUT):
    return subprocess.run([PETREL_BIN, "bench", *args], capture_output=True, timeout=timeout)


@pytest.fixture
def bench_sub():
    """bench_sub(port, *args) starts a BenchSub (tests/lib/benchsub.py); killed at teardown if still running."""
    subs = []

    def start(port, *args):
        s = BenchSub(["-p", str(port), *args])
        subs.append(s)
        return s

    yield start
    for s in subs:
        s.close()


def check_latency(lat):
    assert set(lat) == {"p50", "p90", "p99", "max"}
    assert 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]


@pytest.mark.parametrize("qos,protocol", [(1, "5"), (2, "3.1.1")])
def test_sub_receives_what_the_broker_acknowledged_to_pub(broker, bench_sub, qos, protocol):
    """4 publishers at 1000 msgs/s each for 1.5 s, each on its own topic; 4 subscribers, subscriber i on
    publisher i's topic (%i on both sides). Every acknowledged message arrives once, in order."""
    clients, per_client = 4, 1500
    total = clients * per_client
    common = ["-c", str(clients), "-t", "bench/%i/t", "-q", str(qos), "-V", protocol]
    running = bench_sub(broker.port, *common, "-C", str(total), "-d", str(TIMEOUT - 5)).ready()
    r = bench("pub", "-p", str(broker.port), *common, "-n", str(per_client), "--rate", "1000", "--json")
    assert r.returncode == 0, r.stderr.decode()
    pub = json.loads(r.stdout)
    rc, sub = running.result()
    assert rc == 0, running.stderr.decode()

    assert pub["scenario"] == "pub" and pub["clients"] == clients and pub["qos"] == qos
    assert pub["sent"] == pub["acknowledged"] == total
    assert pub["refused"] == pub["unacknowledged"] == pub["errors"] == 0
    assert pub["msgs_per_second"] > 0 and pub["bench_cpu_percent"] > 0

    assert sub["scenario"] == "sub" and sub["qos"] == qos and sub["count_reached"] is True
    assert sub["received"] == pub["acknowledged"]
    assert sub["lost"] == sub["duplicates"] == sub["out_of_order"] == sub["unstamped"] == 0
    assert sub["publishers"] == clients and sub["errors"] == 0
    assert sub["msgs_per_second"] > 0 and sub["active_s"] > 0
    check_latency(sub["latency_us"])


def test_flat_out_pub_keeps_its_window(broker, bench_sub):
    """Without --rate a publisher sends as fast as its window of unacknowledged messages allows; one
    subscriber on 'flat/+' sees both publishers. What it reports and what pub reports agree."""
    # 4000 messages: fewer than the broker queues for one subscriber (max_queued_messages), so even a
    # subscriber that falls behind the publishers loses none.
    running = bench_sub(broker.port, "-t", "flat/+", "-q", "1", "-C", "4000", "-d", str(TIMEOUT - 5)).ready()
    r = bench("pub", "-p", str(broker.port), "-c", "2", "-t", "flat/%i", "-q", "1", "-n", "2000", "-w", "16",
              "--json")
    assert r.returncode == 0, r.stderr.decode()
    pub = json.loads(r.stdout)
    assert pub["sent"] == pub["acknowledged"] == 4000 and pub["unacknowledged"] == 0
    rc, sub = running.result()
    assert rc == 0, running.stderr.decode()
    assert sub["received"] == 4000 and sub["publishers"] == 2 and sub["lost"] == sub["duplicates"] == 0
    check_latency(sub["latency_us"])


def test_shared_subscription_is_accounted_as_one_group(broker, bench_sub):
    """Members of a $share group each get part of every publisher's sequence, in no defined order between
    them: counted together, nothing is lost or duplicated (out of order is expected)."""
    running = bench_sub(broker.port, "-c", "3", "-t", "$share/g/shared/#", "-q", "1", "-C", "3000",
                        "-d", str(TIMEOUT - 5)).ready()
    r = bench("pub", "-p", str(broker.port), "-c", "2", "-t", "shared/%i", "-q", "1", "-n", "1500", "--json")
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout)["acknowledged"] == 3000
    rc, sub = running.result()
    assert rc == 0, running.stderr.decode()
    assert sub["received"] == 3000 and sub["publishers"] == 2
    assert sub["lost"] == sub["duplicates"] == 0


def test_pattern_gives_each_client_its_topic(broker, mosq_sub):
    """%i is the client index and %c the client id: mosquitto_sub on 'pat/+/+' sees one message on each
    client's own topic."""
    m = mosq_sub(broker.port, ["pat/+/+"], client_id="pattern-watch", qos=1, count=3, fmt="%t")
    m.wait_subscribed()
    r = bench("pub", "-p", str(broker.port), "-c", "3", "-t", "pat/%i/%c", "--id-prefix", "dev-", "-q", "1",
              "-n", "1", "--json")
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout)["acknowledged"] == 3
    assert sorted(m.messages(3)) == [b"pat/0/dev-0", b"pat/1/dev-1", b"pat/2/dev-2"]
    assert m.wait() == 0


def test_sub_counts_messages_without_a_stamp_apart(broker, bench_sub):
    """A message that does not come from petrel bench is received and counted, but not measured."""
    running = bench_sub(broker.port, "-t", "plain/#", "-q", "1", "-C", "1", "-d", "10").ready()
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "plain/x", "-q", "1",
                        "-m", "hello, not a bench payload"], capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    rc, out = running.result()
    assert rc == 0, running.stderr.decode()
    assert out["received"] == 1 and out["unstamped"] == 1 and out["publishers"] == 0 and out["lost"] == 0


def test_sub_exits_3_when_the_count_is_not_reached(broker):
    r = bench("sub", "-p", str(broker.port), "-t", "quiet/#", "-C", "5", "-d", "0.3", "--json")
    assert r.returncode == 3, r.stderr.decode()
    out = json.loads(r.stdout)
    assert out["received"] == 0 and out["count_reached"] is False and out["msgs_per_second"] == 0


@pytest.mark.parametrize("command,args,rc,words", [
    ("pub", ["-t", "a/%x/b"], 2, "bad topic pattern 'a/%x/b': '%x' is not %i (client index), %c (client id)"),
    ("pub", ["-t", "a/%"], 2, "ends with a lone '%'"),
    ("pub", ["-t", "a/+/%i"], 2, "'a/+/0' (from the pattern 'a/+/%i') is not a valid topic name"),
    ("sub", ["-t", "a/#/%i"], 2, "'a/#/0' (from the pattern 'a/#/%i') is not a valid topic filter"),
    ("pub", ["-q", "3"], None, "--qos: Value 3 not in range"),
    ("sub", ["-c", "0"], None, "--clients: Value 0 not in range"),
    ("pub", ["-s", "10"], None, "--payload: Value 10 not in range"),
    ("pub", ["--id-prefix", "x" * 70000], 2, "is longer than MQTT's 65535 bytes"),
])
def test_bad_command_line_is_refused_with_the_reason(broker, command, args, rc, words):
    r = bench(command, "-p", str(broker.port), "-n" if command == "pub" else "-C", "1", *args)
    assert r.returncode != 0 and (rc is None or r.returncode == rc), (r.returncode, r.stderr)
    assert words in r.stderr.decode()
    assert r.stdout == b""


def test_nothing_listening_is_exit_1_with_the_address(broker):
    port = broker.port
    broker.stop()
    for command in ("pub", "sub"):
        r = bench(command, "-p", str(port), "-H", "127.0.0.1", "-d", "1")
        assert r.returncode == 1
        assert f"petrel bench {command}: cannot connect to 127.0.0.1:{port}: Connection refused" in r.stderr.decode()


def test_broker_refusals_are_named(make_broker):
    """CONNACK refused: exit 4; SUBACK refused: exit 5; a QoS above the broker's maximum: exit 1. Each with
    the reason in words."""
    b = make_broker(config="[mqtt]\nmax_client_id_length = 23\nmax_topic_levels = 2\nmax_qos = 1\n")
    r = bench("pub", "-p", str(b.port), "--id-prefix", "x" * 30, "-n", "1")
    assert r.returncode == 4
    assert b"broker refused the connection: client identifier not valid (0x85)" in r.stderr
    r = bench("sub", "-p", str(b.port), "-t", "a/b/%i", "-d", "1")
    assert r.returncode == 5, r.stderr
    assert b"subscription to 'a/b/0' refused: " in r.stderr
    r = bench("pub", "-p", str(b.port), "-q", "2", "-n", "1")
    assert r.returncode == 1
    assert b"the broker accepts QoS 1 at most" in r.stderr


def test_broker_going_away_ends_a_run_with_no_end(broker, bench_sub):
    """A count without -d has no time limit; when the broker shuts down, pub and sub end anyway, with the
    reason (MQTT 5: DISCONNECT 0x8B) and exit code 1."""
    running = bench_sub(broker.port, "-t", "gone/#", "-C", "1000000000").ready()
    pub = subprocess.Popen([PETREL_BIN, "bench", "pub", "-p", str(broker.port), "-t", "gone/%i", "--id-prefix",
                            "gone-", "-q", "1", "-n", "1000000000", "--rate", "100", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        broker.wait_log("client connected: id=gone-0")
        assert broker.stop() == 0
        out, err = pub.communicate(timeout=TIMEOUT)
        assert pub.returncode == 1, err.decode()
        p = json.loads(out)
        assert p["errors"] == 1 and p["failures"] == {"the broker disconnected: server shutting down (0x8B)": 1}
        rc, s = running.result()
        assert rc == 1, running.stderr.decode()
        assert s["failures"] == {"the broker disconnected: server shutting down (0x8B)": 1}
        assert s["count_reached"] is False and s["lost"] == 0
    finally:
        if pub.poll() is None:
            pub.kill()
            pub.wait()
