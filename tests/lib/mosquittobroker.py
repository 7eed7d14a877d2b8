"""Debian's mosquitto broker, run by a test on a free loopback port (tests/auth, tests/bridge).

`Mosquitto(tmp_path, config)` starts it and returns once its port accepts; `config` holds extra lines for its
listener (TLS, a password file, an ACL). As root it is told `user root`, so that it may read files owned by
root. With `persistent=True` it keeps sessions and queues in the test's directory, so that `stop()` (SIGTERM,
which saves them) and `start()` on the same port bring a remote's subscribers back with their queues, as a
restarted cloud broker does. `stop()` is for teardown too.
"""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from petrel_paths import free_port

MOSQUITTO = "/usr/sbin/mosquitto"


class Mosquitto:
    def __init__(self, tmp_path: Path, config: str = "", port: int | None = None, persistent: bool = False):
        self.tmp_path = tmp_path
        self.port = port or free_port()
        self.config = config
        self.persistent = persistent
        self.starts = 0
        self.proc = None
        self.log = None
        self.start()

    def start(self) -> None:
        self.starts += 1
        lines = "user root\n"
        if self.persistent:
            data = self.tmp_path / f"mosquitto-{self.port}-data"
            data.mkdir(exist_ok=True)
            lines += (f"persistence true\npersistence_location {data}/\nautosave_interval 0\n"
                      "queue_qos0_messages true\nmax_queued_messages 0\nlog_type all\n")
        conf = self.tmp_path / f"mosquitto-{self.port}.conf"
        conf.write_text(f"{lines}listener {self.port} 127.0.0.1\n{self.config}\n")
        self.log_path = self.tmp_path / f"mosquitto-{self.port}.{self.starts}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        """SIGTERM (a persistent one saves its sessions and queues) and wait for the exit."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.log and not self.log.closed:
            self.log.close()

    def log_text(self) -> str:
        """Everything it logged, over all its starts."""
        return "".join(p.read_text(errors="replace") for p in sorted(self.tmp_path.glob(f"mosquitto-{self.port}.*.log")))
