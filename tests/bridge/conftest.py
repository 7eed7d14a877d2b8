"""Fixtures for the bridge tests (docs/bridges.md): real remotes on loopback.

`mosquitto(...)` runs Debian's mosquitto as the remote broker (plain or mutual TLS, optionally with a password
file), on a free port, with persistence in the test's directory so that a stop (SIGTERM, which saves its state)
and start on the same port keeps the remote subscribers' sessions and queues, as a restarted cloud broker does.
`bridge_toml(...)` writes a [[bridge]] table. `api(broker, path)` reads petrel's HTTP API.

Waiting is on events: log lines (Broker.wait_log / wait_log_count), packets (mqttraw), API values polled until
they say what is awaited (`wait_api`). Clients opened through persistence.helpers are closed at teardown.
"""
from __future__ import annotations

import json
import time
import urllib.request

import pytest

import certs
from mosquittobroker import Mosquitto
from persistence import helpers

TIMEOUT = helpers.TIMEOUT
@pytest.fixture
def mosquitto(tmp_path):
    made: list[Mosquitto] = []

    def start(config: str = "", **kw) -> Mosquitto:
        m = Mosquitto(tmp_path, config, persistent=True, **kw)
        made.append(m)
        return m

    yield start
    helpers.close_all()
    for m in made:
        m.stop()


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    helpers.close_all()


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> certs.Pki:
    return certs.Pki(tmp_path_factory.mktemp("bridge-pki"))


def bridge_toml(name: str, port: int, *, forward=(), subscribe=(), version: int = 5, host: str = "127.0.0.1",
                **keys) -> str:
    """A [[bridge]] table. forward: (filter, remote_prefix, qos[, retain]); subscribe: (filter, local_prefix, qos).
    Fast reconnects and a short connect deadline unless `keys` say otherwise."""
    keys.setdefault("reconnect_delay_min", 50)
    keys.setdefault("reconnect_delay_max", 300)
    keys.setdefault("connect_timeout", 2)
    keys.setdefault("client_id", f"petrel-{name}")
    lines = ["", "[[bridge]]", f'name = "{name}"', f'address = "{host}:{port}"', f"version = {version}"]
    for k, v in keys.items():
        lines.append(f"{k} = {json.dumps(v)}")
    for f, prefix, qos, *retain in forward:
        lines += ["[[bridge.forward]]", f'filter = "{f}"', f'remote_prefix = "{prefix}"', f"qos = {qos}"]
        lines += [f"retain = {json.dumps(r)}" for r in retain]
    for f, prefix, qos in subscribe:
        lines += ["[[bridge.subscribe]]", f'filter = "{f}"', f'local_prefix = "{prefix}"', f"qos = {qos}"]
    return "\n".join(lines) + "\n"


def api(broker, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}{path}", timeout=TIMEOUT) as r:
        return json.loads(r.read())


def bridge_status(broker, name: str) -> dict:
    return api(broker, f"/api/v1/bridges/{name}")


def wait_api(broker, name: str, predicate, what: str, timeout: float = 3 * TIMEOUT) -> dict:
    """Polls /api/v1/bridges/<name> until predicate(status) holds; returns that status."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = bridge_status(broker, name)
        if predicate(status):
            return status
        time.sleep(0.02)
    raise AssertionError(f"bridge '{name}': {what} not reached: {status}")


def wait_log_count(broker, text: str, n: int, timeout: float = 3 * TIMEOUT) -> str:
    """Waits until `text` occurs at least `n` times in the broker's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = broker.log_text()
        if log.count(text) >= n:
            return log
        time.sleep(0.02)
    raise AssertionError(f"{text!r} not {n} times in the log:\n{broker.log_text()[-3000:]}")


def connected(broker, name: str, times: int = 1) -> None:
    wait_log_count(broker, f"bridge '{name}': connected to", times)


@pytest.fixture
def petrel_restart(make_broker):
    """petrel_restart(b, config, crash=True): SIGKILL (or SIGTERM) `b` and start petrel again on its port and
    database; returns once the new one has opened its store."""
    def restart(b, config: str, crash: bool = True):
        if crash:
            b.kill()
        else:
            assert b.stop() == 0
        nb = make_broker(config, port=b.port, db_path=b.db_path)
        helpers.store_summary(nb)
        return nb
    return restart
