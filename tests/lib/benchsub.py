"""`petrel bench sub --json` in the background, for tests that run `petrel bench pub` against it.

BenchSub(args).ready() returns once the sub printed its ready line on standard error ("petrel bench
sub: N subscriptions ready", after every SUBACK): publishing before that could lose messages to a
subscription not yet in place. result() waits for the exit and returns (exit code, JSON summary or None).
"""
from __future__ import annotations

import json
import re
import select
import subprocess
import time

from petrel_paths import PETREL_BIN

READY = re.compile(rb"petrel bench sub: \d+ subscriptions? ready\n")


class BenchSub:
    def __init__(self, args: list[str]):
        self.proc = subprocess.Popen([PETREL_BIN, "bench", "sub", "--json", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.stderr = b""

    def ready(self, timeout: float = 10.0) -> "BenchSub":
        deadline = time.monotonic() + timeout
        while not READY.search(self.stderr):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"bench sub not ready within {timeout} s: {self.stderr!r}")
            if select.select([self.proc.stderr], [], [], left)[0]:
                chunk = self.proc.stderr.read1(4096)
                if not chunk:
                    raise AssertionError(f"bench sub exited with {self.proc.wait()}: {self.stderr!r}")
                self.stderr += chunk
        return self

    def result(self, timeout: float = 30.0) -> tuple[int, dict | None]:
        out, err = self.proc.communicate(timeout=timeout)
        self.stderr += err
        return self.proc.returncode, (json.loads(out) if out.strip() else None)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
