"""Where the petrel binary under test is (PETREL_BIN, default build/petrel).

Import this rather than `conftest`: with several conftest.py files on
sys.path, `from conftest import ...` resolves to whichever comes first.
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PETREL_BIN = os.environ.get("PETREL_BIN", str(ROOT / "build" / "petrel"))


_next_port = None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a broker to listen on.

    Chosen below Linux's ephemeral range (32768-60999): a port the kernel hands
    out with bind(0) is also what it hands to the next outgoing connection, so
    between this check and petrel's bind a client socket of another test could
    take it ("Address already in use"). Each pytest-xdist worker draws from a
    range of its own, in turn, so two workers never pick the same port.
    """
    import random
    import socket
    global _next_port
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    span = 12000 // max(1, workers)
    low = 20000 + index * span
    if _next_port is None or not low <= _next_port < low + span:
        _next_port = low + random.randrange(span)
    for _ in range(span):
        port = _next_port
        _next_port = low + (_next_port - low + 1) % span
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{low + span - 1}")
