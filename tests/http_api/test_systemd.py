"""systemd: readiness and the watchdog over the notification protocol, `petrel check-config`, and the unit
file in packaging/.

A fake service manager: the test binds an AF_UNIX datagram socket and starts petrel with NOTIFY_SOCKET naming
it (and WATCHDOG_USEC). petrel must send READY=1 once /ready would answer 200, WATCHDOG=1 pings (each after
every event loop answered), and STOPPING=1 when it shuts down.
"""
from __future__ import annotations

import os
import signal
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from petrel_paths import PETREL_BIN, ROOT

from .conftest import Api

UNIT = ROOT / "packaging" / "petrel.service"


class FakeManager:
    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address if not address.startswith("@") else "\0" + address[1:])
        self.sock.settimeout(10)

    def next(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)

    def wait_for(self, key: str, limit: int = 200) -> list[dict]:
        """Messages up to and including the first one with `key`."""
        seen = []
        for _ in range(limit):
            msg = self.next()
            seen.append(msg)
            if key in msg:
                return seen
        raise AssertionError(f"no {key} in {seen}")

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("abstract", [False, True])
def test_ready_watchdog_and_stopping(make_broker, tmp_path, abstract):
    address = f"@petrel-test-{os.getpid()}-{id(tmp_path)}" if abstract else str(tmp_path / "notify")
    manager = FakeManager(address)
    try:
        from petrel_paths import free_port
        http_port = free_port()
        b = make_broker(config=f"[http]\nport = {http_port}\n",
                        env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
        first = manager.wait_for("READY")
        ready = first[-1]
        assert ready["READY"] == "1" and ready["MAINPID"] == str(b.proc.pid), ready
        assert "STATUS" in ready
        assert all("WATCHDOG" not in m for m in first[:-1]), first  # the watchdog starts with readiness
        assert Api(http_port).get("/ready").status == 200  # what READY=1 promised
        for _ in range(2):
            assert manager.wait_for("WATCHDOG")[-1]["WATCHDOG"] == "1"
        b.proc.send_signal(signal.SIGTERM)
        assert manager.wait_for("STOPPING")[-1]["STOPPING"] == "1"
        assert b.proc.wait(timeout=15) == 0
    finally:
        manager.close()


def test_no_notify_socket_no_messages(http_broker):
    """Without NOTIFY_SOCKET petrel runs as before (the fixture's brokers); nothing is logged about systemd."""
    b = http_broker()
    assert b.api.get("/ready").status == 200
    assert "systemd" not in b.log_text()


def test_check_config_accepts_the_shipped_file():
    p = subprocess.run([PETREL_BIN, "check-config", str(ROOT / "config" / "petrel.toml")], capture_output=True,
                       timeout=20)
    assert p.returncode == 0, p
    assert p.stdout.decode().strip() == f"{ROOT / 'config' / 'petrel.toml'}: configuration OK"


def test_check_config_reports_file_line_and_what(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[mqtt]\nmax_qos = 1\n[http]\nport = "eighty"\n')
    p = subprocess.run([PETREL_BIN, "check-config", str(bad)], capture_output=True, timeout=20)
    assert p.returncode == 2, p
    assert p.stderr.decode().strip() == f"petrel: configuration error: {bad}:4:8: 'port' must be an integer"
    p = subprocess.run([PETREL_BIN, "check-config", str(tmp_path / "missing.toml")], capture_output=True, timeout=20)
    assert p.returncode == 2 and b"cannot open configuration file" in p.stderr, p


def test_check_config_binds_nothing(tmp_path):
    """check-config only reads: with the MQTT and HTTP ports taken, it still says OK."""
    with socket.socket() as mqtt_port, socket.socket() as http_port:
        mqtt_port.bind(("127.0.0.1", 0))
        http_port.bind(("127.0.0.1", 0))
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[[listener]]\nbind = "127.0.0.1"\nport = {mqtt_port.getsockname()[1]}\n'
                       f'[http]\nport = {http_port.getsockname()[1]}\n[store]\npath = "{tmp_path / "db"}"\n')
        p = subprocess.run([PETREL_BIN, "check-config", str(cfg)], capture_output=True, timeout=20)
    assert p.returncode == 0, p
    assert not (tmp_path / "db").exists()


def test_unit_file_is_notify_hardened_and_valid(tmp_path):
    text = UNIT.read_text()
    keys = [line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")]
    service = {k: v for k, v in keys}
    assert service["Type"] == "notify" and service["WatchdogSec"] == "30s"
    assert service["ExecStart"] == "/usr/bin/petrel --config /etc/petrel/petrel.toml"
    assert service["ExecStartPre"] == "/usr/bin/petrel check-config /etc/petrel/petrel.toml"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "RestrictSUIDSGID": "yes", "MemoryDenyWriteExecute": "yes"}.items():
        assert service[key] == value, key
    # systemd's own checker, on a copy pointing at the binary under test.
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze not found (Debian package systemd)"
    copy = tmp_path / "petrel.service"
    copy.write_text(text.replace("/usr/bin/petrel", PETREL_BIN))
    p = subprocess.run([analyze, "verify", str(copy)], capture_output=True, timeout=60)
    assert p.returncode == 0 and str(copy) not in (p.stdout + p.stderr).decode(), p
