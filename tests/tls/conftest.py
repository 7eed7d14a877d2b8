"""Fixtures for the TLS listener tests.

`pki` (session): the test PKI of tests/lib/certs.py, generated once per run in a temporary directory.
`tls_broker(**listener keys, mqtt=..., sys_interval=1)`: a petrel with the fixture's TCP listener "test"
(broker.port) plus a TLS listener named "tls" on another free port (broker.tls_port). Its keys default to
the PKI's server certificate and key and, when client_cert is not "none", the CA (ca_file) and the CRL.
`sys_watch(broker)`: a tlsclient.SysWatch on that broker's "tls" listener, closed at teardown.
`petrel_exit(config, timeout, tty)`: runs a petrel that must refuse to start; (exit code, output, path).

Needs Debian's python3-cryptography (tests/lib/certs.py).
"""
from __future__ import annotations

import json
import os
import select
import subprocess
from pathlib import Path

import pytest

import certs
import tlsclient
from tlsclient import free_port

_ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def petrel_bin(config) -> str:
    """PETREL_BIN of tests/conftest.py. (Not `from conftest import`: when the whole suite runs, the module
    name "conftest" ends up naming another directory's conftest.py.)"""
    for plugin in config.pluginmanager.get_plugins():
        f = getattr(plugin, "__file__", None)
        if f and Path(f).resolve() == _ROOT_CONFTEST:
            return plugin.PETREL_BIN
    raise RuntimeError(f"{_ROOT_CONFTEST} is not loaded")


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> certs.Pki:
    return certs.Pki(tmp_path_factory.mktemp("pki"))


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a TOML basic string


def tls_listener_toml(pki: certs.Pki, port: int, name: str = "tls", **keys) -> str:
    """A [[listener]] table of type "tls". None values leave a key out."""
    settings = {"cert_file": pki.server.cert, "key_file": pki.server.key}
    if keys.get("client_cert", "none") != "none":
        settings["ca_file"] = pki.ca
        settings["crl_file"] = pki.crl
    settings.update(keys)
    lines = ["[[listener]]", f'name = "{name}"', 'type = "tls"', 'bind = "127.0.0.1"', f"port = {port}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in settings.items() if v is not None]
    return "\n".join(lines) + "\n"


@pytest.fixture
def tls_broker(make_broker, pki):
    def make(*, mqtt: str = "", sys_interval: int = 1, threads: int = 2, **keys):
        port = free_port()
        config = tls_listener_toml(pki, port, **keys)
        if mqtt:
            config += "[mqtt]\n" + mqtt.strip() + "\n"
        config += f"[sys]\ninterval = {sys_interval}\n"
        b = make_broker(config=config, threads=threads)
        b.tls_port = port
        b.wait_log(f"listener 'tls' accepting MQTT over tls on 127.0.0.1:{port}")
        return b

    return make


@pytest.fixture
def sys_watch(make_broker):
    made: list[tlsclient.SysWatch] = []

    def make(broker, listener: str = "tls") -> tlsclient.SysWatch:
        w = tlsclient.SysWatch(broker, listener, client_id=f"sys-watch-{len(made)}")
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


def run_petrel_expecting_exit(binary: str, tmp_path: Path, config: str, timeout: float = 10.0,
                              tty: bool = False) -> tuple[int, str, Path]:
    """Starts petrel with `config` (the whole file) and waits for it to exit by itself.
    Returns (exit code, everything it printed, the config path). petrel runs in a session of its own; with
    tty=True that session has a pseudo-terminal as its controlling terminal (as when run from a shell), and
    what petrel writes to the terminal is included in the output."""
    path = tmp_path / f"petrel-fail-{free_port()}.toml"
    # No HTTP listener (on by default, on a fixed port): these brokers are meant to fail for other reasons.
    path.write_text(config if "[http]" in config else config + "\n[http]\nenabled = false\n")
    master = slave = None
    preexec = None
    if tty:
        master, slave = os.openpty()
        slave_name = os.ttyname(slave)

        def preexec():  # runs in the child after setsid(): opening the tty makes it the controlling terminal
            os.close(os.open(slave_name, os.O_RDWR))
    try:
        proc = subprocess.Popen([binary, "--config", str(path)], cwd=tmp_path, stdin=slave if tty else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=preexec)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            terminal = _drain(master) if tty else ""
            raise AssertionError(f"petrel did not exit within {timeout} s (it should refuse to start); "
                                 f"output: {out.decode(errors='replace')!r}; terminal: {terminal!r}") from None
        text = out.decode(errors="replace")
        if tty:
            text += _drain(master)
        return proc.returncode, text, path
    finally:
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)


def _drain(fd: int) -> str:
    got = b""
    while select.select([fd], [], [], 0)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    return got.decode(errors="replace")


@pytest.fixture
def petrel_exit(tmp_path, request):
    """petrel_exit(config, timeout=10, tty=False) -> (rc, output, config path) for a petrel that must refuse
    to start."""
    binary = petrel_bin(request.config)
    return lambda config, timeout=10.0, tty=False: run_petrel_expecting_exit(binary, tmp_path, config, timeout, tty)
