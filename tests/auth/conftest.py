"""Fixtures for the access-control tests (tests/auth/).

`files(name, text)` writes a file into the test's directory and returns its path. `mosquitto_broker(config)` runs Debian's
real mosquitto on a free loopback port (tests/lib/mosquittobroker.py) and stops it at teardown. `run_petrel(args, ...)` runs the petrel binary as a command (passwd, a broker that must refuse to
start) and returns the CompletedProcess. `pki` is the test PKI of tests/lib/certs.py.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import certs
from mosquittobroker import Mosquitto
from petrel_paths import PETREL_BIN


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
