"""Fixtures for the WebSocket listener tests (helpers in wsraw.py).

`ws_broker(ws=True, wss=False, ...)`: a petrel with the fixture's TCP listener "test" (broker.port) plus a
listener of type "ws" named "ws" (broker.ws_port) and/or one of type "wss" named "wss" (broker.wss_port), each on
its own free port. `path` and `trusted_proxies` go to both; the other keyword arguments are TLS keys of the wss
listener, which default (as in tests/tls) to the test PKI's server certificate and key and, when client_cert is
not "none", the CA and the CRL. $SYS is published every second unless sys_interval says otherwise.
`pki` (session): the test PKI of tests/lib/certs.py.
`sys_watch(broker, listener)`: a tlsclient.SysWatch on $SYS/broker/listeners/<listener>/, closed at teardown.
`paho_ws(port, client_id, protocol, tls=None)`: a paho-mqtt client over WebSocket (PahoWs), closed before the
broker is stopped.
"""
from __future__ import annotations

import json

import paho.mqtt.client as mqtt
import pytest

import certs
import mqttclients as mc
import tlsclient
from petrel_paths import free_port


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a TOML basic string


def ws_listener_toml(kind: str, port: int, name: str, pki: certs.Pki | None = None, **keys) -> str:
    """A [[listener]] table of type `kind` ("ws" or "wss"). None values leave a key out."""
    settings: dict = {}
    if kind == "wss":
        settings = {"cert_file": pki.server.cert, "key_file": pki.server.key}
        if keys.get("client_cert", "none") != "none":
            settings["ca_file"] = pki.ca
            settings["crl_file"] = pki.crl
    settings.update(keys)
    lines = ["[[listener]]", f'name = "{name}"', f'type = "{kind}"', 'bind = "127.0.0.1"', f"port = {port}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in settings.items() if v is not None]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> certs.Pki:
    return certs.Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def ws_broker(make_broker, pki):
    def make(*, ws: bool = True, wss: bool = False, mqtt: str = "", sys_interval: int = 1, threads: int = 2,
             path: str | None = None, trusted_proxies: list[str] | None = None, **tls_keys):
        config = ""
        ports = {}
        common = {"path": path, "trusted_proxies": trusted_proxies}
        if ws:
            ports["ws"] = free_port()
            config += ws_listener_toml("ws", ports["ws"], "ws", **common)
        if wss:
            ports["wss"] = free_port()
            while ports["wss"] == ports.get("ws"):
                ports["wss"] = free_port()
            config += ws_listener_toml("wss", ports["wss"], "wss", pki, **common, **tls_keys)
        if mqtt:
            config += "[mqtt]\n" + mqtt.strip() + "\n"
        config += f"[sys]\ninterval = {sys_interval}\n"
        b = make_broker(config=config, threads=threads)
        b.ws_port, b.wss_port = ports.get("ws"), ports.get("wss")
        for kind, port in ports.items():
            b.wait_log(f"listener '{kind}' accepting MQTT over {kind} on 127.0.0.1:{port}")
        return b

    return make


@pytest.fixture
def sys_watch(make_broker):
    made: list[tlsclient.SysWatch] = []

    def make(broker, listener: str = "ws") -> tlsclient.SysWatch:
        w = tlsclient.SysWatch(broker, listener, client_id=f"sys-watch-{len(made)}")
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


class PahoWs(mc.Paho):
    """mqttclients.Paho over WebSocket (paho-mqtt 1.6.1 transport="websockets", path /mqtt), over TLS with `tls`
    (an ssl.SSLContext; paho checks the server certificate for 127.0.0.1)."""

    def __init__(self, port: int, client_id: str, protocol: int = mqtt.MQTTv311, *, tls=None, path: str = "/mqtt"):
        super().__init__(port, client_id, protocol)
        tcp_client = self.client
        self.client = mqtt.Client(client_id=client_id, protocol=protocol, clean_session=None if self.v5 else True,
                                  transport="websockets", reconnect_on_failure=False)
        for callback in ("on_connect", "on_subscribe", "on_unsubscribe", "on_disconnect", "on_message"):
            setattr(self.client, callback, getattr(tcp_client, callback))
        self.client.ws_set_options(path=path)
        if tls is not None:
            self.client.tls_set_context(tls)


@pytest.fixture
def paho_ws(make_broker):
    clients: list[PahoWs] = []

    def make(port: int, client_id: str, protocol: int = mqtt.MQTTv311, **kw) -> PahoWs:
        c = PahoWs(port, client_id, protocol, **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
