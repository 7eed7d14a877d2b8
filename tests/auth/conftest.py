"""Fixtures for the access-control tests (tests/auth/).

`files(name, text)` writes a file into the test's directory and returns its path. `mosquitto_broker(config)` runs Debian's
real mosquitto on a free loopback port (as root it must be told `user root` to read files owned by root) and stops
it at teardown. `run_petrel(args, ...)` runs the petrel binary as a command (passwd, a broker that must refuse to
start) and returns the CompletedProcess. `pki` is the test PKI of tests/lib/certs.py.
"""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

import certs
from petrel_paths import PETREL_BIN, free_port


@pytest.fixture
def files(tmp_path):
    def write(name: str, text: str) -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p
    return write


@pytest.fixture
def run_petrel(tmp_path):
    def run(args: list[str], timeout: float = 20, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([PETREL_BIN, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=timeout, text=True, **kw)
    return run


class Mosquitto:
    def __init__(self, tmp_path: Path, config: str):
        self.port = free_port()
        self.conf = tmp_path / f"mosquitto-{self.port}.conf"
        self.conf.write_text(f"user root\nlistener {self.port} 127.0.0.1\n{config}\n")
        self.log = open(tmp_path / f"mosquitto-{self.port}.log", "wb")
        self.proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(self.conf)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: "
                                   f"{(tmp_path / f'mosquitto-{self.port}.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def mosquitto_broker(tmp_path):
    made: list[Mosquitto] = []

    def start(config: str) -> Mosquitto:
        b = Mosquitto(tmp_path, config)
        made.append(b)
        return b

    yield start
    for b in made:
        b.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> certs.Pki:
    return certs.Pki(tmp_path_factory.mktemp("pki"))
