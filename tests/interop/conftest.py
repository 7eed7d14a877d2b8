"""Fixtures for the interoperability tests: real clients against the real petrel binary.

`mosq_sub(...)` starts a mosquitto_sub (see mqttclients.MosquittoSub) and `paho(...)` makes a
mqttclients.Paho; both are torn down before the broker is stopped (they depend on make_broker).
"""
from __future__ import annotations

import pytest

import mqttclients as mc


@pytest.fixture
def mosq_sub(make_broker):
    procs: list[mc.MosquittoSub] = []

    def start(port: int, topics, **kw) -> mc.MosquittoSub:
        s = mc.MosquittoSub(port, topics, **kw)
        procs.append(s)
        return s

    yield start
    for s in procs:
        s.close()


@pytest.fixture
def paho(make_broker):
    clients: list[mc.Paho] = []

    def make(port: int, client_id: str, protocol: int = mc.mqtt.MQTTv311, **kw) -> mc.Paho:
        c = mc.Paho(port, client_id, protocol, **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
