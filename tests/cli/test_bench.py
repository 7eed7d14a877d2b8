"""petrel bench against the real broker: each scenario runs, reports JSON
with the documented fields, and loses nothing at QoS 1 (no timing asserted)."""
import json
import subprocess

import pytest

from petrel_paths import PETREL_BIN


def bench(*args):
    r = subprocess.run([PETREL_BIN, "bench", *args, "--json", "--threads", "2"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


@pytest.mark.parametrize("scenario,extra", [("fanin", ["--publishers", "4"]), ("fanout", ["--subscribers", "4"]),
                                            ("pairs", ["--pairs", "4"])])
def test_message_scenarios_qos1_lose_nothing(broker, scenario, extra):
    out = bench(scenario, "-p", str(broker.port), "-q", "1", "-d", "1", *extra)
    assert out["scenario"] == scenario and out["qos"] == 1
    assert out["sent"] > 0 and out["received"] == out["expected"] and out["lost"] == 0
    assert out["errors"] == 0
    lat = out["latency_us"]
    assert 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert out["msgs_per_second"] > 0 and out["bench_cpu_percent"] > 0


def test_pairs_qos2_lose_nothing(broker):
    out = bench("pairs", "-p", str(broker.port), "-q", "2", "-d", "1", "--pairs", "2")
    assert out["qos"] == 2 and out["sent"] > 0 and out["received"] == out["expected"] and out["lost"] == 0
    assert out["errors"] == 0


def test_rate_limited_run_publishes_about_the_rate(broker):
    out = bench("pairs", "-p", str(broker.port), "--pairs", "2", "-q", "1", "-d", "1", "--rate", "500")
    # A rate is a ceiling: never more than the rate (plus one 10 ms burst per publisher).
    assert 0 < out["sent"] <= 500 * out["duration_s"] + 20
    assert out["lost"] == 0


def test_conn_scenario_connects_everyone(broker):
    out = bench("conn", "-p", str(broker.port), "-n", "200")
    assert out["scenario"] == "conn" and out["connected"] == 200 and out["failures"] == {}
    assert out["connects_per_second"] > 0


def test_conn_reports_failures_by_reason(make_broker):
    b = make_broker(config="[mqtt]\nmax_connections = 5\n")
    r = subprocess.run([PETREL_BIN, "bench", "conn", "-p", str(b.port), "-n", "20", "--json", "--hold", "0.2"],
                       capture_output=True, timeout=60)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["connected"] == 5
    assert sum(out["failures"].values()) == 15
