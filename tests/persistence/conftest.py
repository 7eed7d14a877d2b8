"""Fixtures for the durable-store tests.

`petrel` starts brokers through make_broker (tests/conftest.py: every one is stopped and checked at
teardown) and restarts them on the same port and database, after a graceful stop (SIGTERM, which must
exit 0) or a crash (SIGKILL).
"""
from __future__ import annotations

from typing import Callable

import pytest

from . import helpers


class Petrel:
    def __init__(self, make_broker):
        self._make = make_broker
        self._how: dict[int, tuple[str, dict]] = {}

    def start(self, config: str = "", **kw):
        """A broker (own port, own database unless `config` has a [store] table)."""
        b = self._make(config, **kw)
        self._how[id(b)] = (config, kw)
        return b

    def restart(self, b, crash: bool = False, config: str | None = None,
                while_down: Callable[[], None] | None = None):
        """Stops `b` (SIGTERM, exit 0 checked here; or SIGKILL with crash=True), calls `while_down`, and
        starts a broker on its port and database, with its configuration unless `config` is given. Returns
        once the new broker has opened its store (the start-up summary is in its log)."""
        old_config, kw = self._how[id(b)]
        config = old_config if config is None else config
        if crash:
            b.kill()
        else:
            rc = b.stop()
            assert rc == 0, f"petrel exited with {rc} on SIGTERM:\n{b.log_path.read_text(errors='replace')[-3000:]}"
        if while_down is not None:
            while_down()
        kw = dict(kw, port=b.port)
        if "[store]" not in config:
            kw["db_path"] = b.db_path
        nb = self.start(config, **kw)
        if 'type = "memory"' in config:
            nb.wait_log("store: memory only")
        else:
            helpers.store_summary(nb)
        return nb


@pytest.fixture
def petrel(make_broker):
    return Petrel(make_broker)


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    helpers.close_all()
