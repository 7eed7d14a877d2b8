"""petrel pub / petrel sub over TLS with client certificates, and the errors
they name (docs/cli.md)."""
import subprocess

from petrel_paths import PETREL_BIN


def cli(*args, timeout=20):
    return subprocess.run([PETREL_BIN, *args], capture_output=True, timeout=timeout)


def tls_args(broker, pki, client="alice", ca=None):
    c = pki.clients[client]
    return ["-H", "localhost", "-p", str(broker.tls_port), "--cafile", str(ca or pki.ca), "--cert", str(c.cert),
            "--key", str(c.key)]


def test_pub_then_sub_retained_over_mutual_tls(tls_broker, pki):
    """A retained QoS 1 message published over mutual TLS is read back over mutual TLS."""
    broker = tls_broker(client_cert="required")
    r = cli("pub", *tls_args(broker, pki), "-t", "cli/tls", "-m", "secret", "-q", "1", "-r")
    assert r.returncode == 0, r.stderr
    r = cli("sub", *tls_args(broker, pki), "-t", "cli/tls", "-C", "1", "-W", "10", "-V", "3.1.1")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"secret\n"


def test_bad_server_certificate_is_named(tls_broker, pki):
    """Verifying the broker against the wrong CA fails with the verification error, exit code 1."""
    broker = tls_broker(client_cert="required")
    r = cli("pub", *tls_args(broker, pki, ca=pki.other_ca), "-t", "x", "-m", "y")
    assert r.returncode == 1
    assert b"TLS certificate verification failed" in r.stderr


def test_refused_client_certificate_is_reported(tls_broker, pki):
    """A client certificate the broker refuses ends the connection: exit code 1 and a reason, and the broker
    logs the true reason."""
    broker = tls_broker(client_cert="required")
    r = cli("pub", *tls_args(broker, pki, client="expired"), "-t", "x", "-m", "y", "-q", "1")
    assert r.returncode == 1
    assert r.stderr.startswith(b"petrel pub: ")
    broker.wait_log("client certificate verify failed: certificate has expired")
