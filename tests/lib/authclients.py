"""Helpers of the access-control tests (tests/auth/) that tests import (a conftest.py cannot be imported
reliably: see tests/lib/petrel_paths.py)."""
from __future__ import annotations

import mqttraw as m


def connack(port: int, client_id: str = "", version: int = 4, username: str | None = None,
            password: bytes | str | None = None) -> int:
    """The CONNACK reason code for a CONNECT with these credentials (the connection is then closed)."""
    if isinstance(password, str):
        password = password.encode()
    with m.RawClient(port, version=version) as c:
        c.send(m.connect(client_id, version=version, username=username, password=password))
        return c.expect(m.CONNACK).fields["reason"]
