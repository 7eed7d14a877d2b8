"""petrel bench over TLS: the load generator's clients do the same work over a
mutually authenticated TLS listener (docs/cli.md, docs/benchmarks.md)."""
import json
import subprocess

from benchsub import BenchSub
from petrel_paths import PETREL_BIN


def tls_args(broker, pki, client="alice"):
    c = pki.clients[client]
    return ["-H", "localhost", "-p", str(broker.tls_port), "--cafile", str(pki.ca), "--cert", str(c.cert),
            "--key", str(c.key)]


def test_bench_conn_over_mutual_tls(tls_broker, pki):
    broker = tls_broker(client_cert="required")
    r = subprocess.run([PETREL_BIN, "bench", "conn", *tls_args(broker, pki), "-n", "50", "--json", "--threads", "2"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout)
    assert out["tls"] is True and out["connected"] == 50 and out["failures"] == {}


def test_bench_conn_names_a_refused_certificate(tls_broker, pki):
    broker = tls_broker(client_cert="required")
    r = subprocess.run([PETREL_BIN, "bench", "conn", *tls_args(broker, pki, client="expired"), "-n", "3", "--json"],
                       capture_output=True, timeout=60)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["connected"] == 0 and out["failures"] == {"sslv3 alert certificate expired": 3}


def test_bench_pub_and_sub_over_mutual_tls(tls_broker, pki):
    """bench sub and bench pub over the TLS listener with client certificates: QoS 1, nothing lost."""
    broker = tls_broker(client_cert="required")
    sub = BenchSub([*tls_args(broker, pki), "-c", "2", "-t", "tls/%i", "-q", "1", "-C", "400", "-d", "25"])
    try:
        sub.ready()
        r = subprocess.run([PETREL_BIN, "bench", "pub", *tls_args(broker, pki), "-c", "2", "-t", "tls/%i", "-q", "1",
                            "-n", "200", "--json"], capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr.decode()
        assert json.loads(r.stdout)["acknowledged"] == 400
        rc, out = sub.result()
        assert rc == 0, sub.stderr.decode()
        assert out["received"] == 400 and out["lost"] == out["duplicates"] == 0 and out["publishers"] == 2
    finally:
        sub.close()
