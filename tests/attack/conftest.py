"""Fixtures for the resource-limit and attack tests (helpers in tools.py).

`guard(broker, name, rss_mib=..., min_round_trips=...)`: starts a canary client and an RSS sampler on `broker`
(see tools.Guard); stopped at teardown. `sys_watch(broker, topics)`: a tools.SysWatch, closed at teardown.
Both depend on make_broker so that they end before the brokers are stopped and checked.
"""
from __future__ import annotations

import pytest

from . import tools


@pytest.fixture
def guard(make_broker):
    made: list[tools.Guard] = []

    def make(broker, name: str, rss_mib: float = 200, min_round_trips: int = 10) -> tools.Guard:
        g = tools.Guard(broker, name, rss_mib, min_round_trips)
        made.append(g)
        return g

    yield make
    for g in made:
        g.close()


@pytest.fixture
def sys_watch(make_broker):
    made: list[tools.SysWatch] = []

    def make(broker, topics: list[str], client_id: str = "sys-watch") -> tools.SysWatch:
        w = tools.SysWatch(broker, topics, client_id)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()
