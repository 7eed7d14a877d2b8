"""Shared pytest fixtures: start the real petrel binary on loopback.

PETREL_BIN names the binary (default: build/petrel). Every broker gets a free
port, a config file written for the test, and is stopped with SIGTERM at the
end; the test fails if it does not exit 0 (a clean shutdown is part of the
contract) or if it wrote a sanitizer report (ASan, LSan, TSan, UBSan).

A restart is a second Broker with the port (and so, by default, the database)
of the first: make_broker(port=b.port). Broker.kill() is a crash (SIGKILL);
such a broker is exempt from the exit status check.
"""
from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "lib"))

PETREL_BIN = os.environ.get("PETREL_BIN", str(ROOT / "build" / "petrel"))


from petrel_paths import free_port  # noqa: E402  (one implementation: below the ephemeral range)


class Broker:
    """A running petrel process."""

    def __init__(self, tmp_path: Path, config: str = "", args: list[str] | None = None, threads: int = 2,
                 max_open_files: int | None = None, port: int | None = None, db_path: Path | None = None,
                 env: dict[str, str] | None = None):
        """port: listen there (a restart: the port of an earlier broker, whose database it then opens too);
        db_path: the database, if not tmp_path/petrel-<port>.db. Both are ignored in favour of a [store]
        table in `config`. env: extra environment variables for the process (e.g. PETREL_FAULT)."""
        self.port = port if port is not None else free_port()
        self.host = "127.0.0.1"
        self.killed = False
        # A restart on the same port gets config and log files of its own: petrel-<port>.<n>.
        stem, n = f"petrel-{self.port}", 1
        while (tmp_path / f"{stem}.log").exists():
            n += 1
            stem = f"petrel-{self.port}.{n}"
        self.config_path = tmp_path / f"{stem}.toml"
        # Each broker gets its own database (the default store is SQLite),
        # unless the test configures [store] itself.
        self.db_path = Path(db_path) if db_path is not None else tmp_path / f"petrel-{self.port}.db"
        store = "" if "[store]" in config else f'\n[store]\npath = "{self.db_path}"\n'
        # Every broker serves its HTTP API (on by default) on a free port of its own, unless the test
        # configures [http] itself.
        self.http_port = None
        if "[http]" not in config:
            self.http_port = free_port()
            while self.http_port == self.port:
                self.http_port = free_port()
            store += f"\n[http]\nport = {self.http_port}\n"
        self.config_path.write_text(
            f'threads = {threads}\n[log]\nlevel = "debug"\n[[listener]]\nname = "test"\nbind = "127.0.0.1"\nport = {self.port}\n'
            + config + store)
        self.log_path = tmp_path / f"{stem}.log"
        self.log = open(self.log_path, "wb")
        def limit_files():
            if max_open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))

        self.proc = subprocess.Popen([PETREL_BIN, "--config", str(self.config_path), *(args or [])],
                                     preexec_fn=limit_files, env={**os.environ, **(env or {})},
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"petrel exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("petrel did not start listening")

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 5.0) -> str:
        """Waits until the broker's log contains `text`; returns the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log_text()
            if text in log:
                return log
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not in the broker log:\n{self.log_text()[-3000:]}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> int:
        """A crash: SIGKILL, then waits for the process to end. Its exit status is not checked at teardown
        (a killed process cannot exit 0, nor run LeakSanitizer); its log still is."""
        self.killed = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=15)
        self.log.close()
        return self.proc.returncode

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("petrel did not exit within 15 s of SIGTERM")
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def make_broker(tmp_path):
    """Factory: make_broker(config="...toml...") -> Broker. All are stopped and checked at teardown."""
    brokers: list[Broker] = []

    def make(config: str = "", **kw) -> Broker:
        b = Broker(tmp_path, config, **kw)
        brokers.append(b)
        return b

    yield make
    for b in brokers:
        check_clean_exit(b)


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer", "runtime error:")


def check_clean_exit(b: Broker) -> None:
    """Stops `b` and fails unless it exited 0 with no sanitizer report in its log (a killed broker: only the
    latter)."""
    rc = b.stop()
    log = b.log_path.read_text(errors="replace")
    for mark in SANITIZER_MARKS:
        assert mark not in log, f"sanitizer report in the petrel log:\n{log[-8000:]}"
    if not b.killed:
        assert rc == 0, f"petrel exited with {rc}:\n{log[-3000:]}"


@pytest.fixture
def broker(make_broker):
    """A broker with the default configuration."""
    return make_broker()


@pytest.fixture
def mosq_sub(make_broker):
    """mosq_sub(port, topics, **kw) starts a mosquitto_sub (mqttclients.MosquittoSub), stopped before the broker."""
    import mqttclients as mc
    procs = []

    def start(port: int, topics, **kw):
        s = mc.MosquittoSub(port, topics, **kw)
        procs.append(s)
        return s

    yield start
    for s in procs:
        s.close()


@pytest.fixture
def paho(make_broker):
    """paho(port, client_id, protocol=MQTTv311, **kw) makes a mqttclients.Paho, closed before the broker."""
    import mqttclients as mc
    clients = []

    def make(port: int, client_id: str, protocol: int = mc.mqtt.MQTTv311, **kw):
        c = mc.Paho(port, client_id, protocol, **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
