"""Fixtures for the MQTT 3.1.1 / 3.1 conformance tests (see helpers.py).

`broker` is overridden here with MODULE scope: the tests of one file share one
default-config petrel (stopping a petrel takes ~0.2 s, which would dominate the
run time). Tests sharing it use client ids and topics of their own, so they do
not see each other's traffic. A test that needs a pristine broker (a root "#"
subscription, an empty retained store) or a special configuration uses the
function-scoped `make_broker` of tests/conftest.py instead.
"""
from pathlib import Path

import pytest

from . import helpers

_ROOT_CONFTEST = Path(__file__).resolve().parents[2] / "conftest.py"


def _root_conftest(config):
    for plugin in config.pluginmanager.get_plugins():
        f = getattr(plugin, "__file__", None)
        if f and Path(f).resolve() == _ROOT_CONFTEST:
            return plugin
    raise RuntimeError(f"{_ROOT_CONFTEST} is not loaded")


@pytest.fixture(scope="module")
def broker(request, tmp_path_factory):
    """One default-config petrel for the whole test module; stopped and checked (exit code 0, no sanitizer
    report) at the end of the module, like make_broker's brokers."""
    root = _root_conftest(request.config)
    b = root.Broker(tmp_path_factory.mktemp("petrel"))
    yield b
    root.check_clean_exit(b)


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    helpers.close_all()
