"""Where the petrel binary under test is (PETREL_BIN, default build/petrel).

Import this rather than `conftest`: with several conftest.py files on
sys.path, `from conftest import ...` resolves to whichever comes first.
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PETREL_BIN = os.environ.get("PETREL_BIN", str(ROOT / "build" / "petrel"))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a broker to listen on.

    Chosen below Linux's ephemeral range (32768-60999): a port the kernel hands
    out with bind(0) is also what it hands to the next outgoing connection, so
    between this check and petrel's bind a client socket of another test could
    take it ("Address already in use").
    """
    import random
    import socket
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")
