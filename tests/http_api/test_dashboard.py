"""The dashboard in a real browser: Debian's headless chromium, driven over the DevTools protocol (cdp.py).

The page loads from petrel's HTTP listener with no console error, no failed request and no exception; it
shows the listeners (a TLS one with its certificate's days left), a client the test connected over MQTT, a
retained message and the throughput graph; clicking the client's Disconnect button (the confirm dialog is
accepted) disconnects it: the MQTT 5 client receives DISCONNECT 0x98 and the row goes away.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import certs
import mqttraw as m
from petrel_paths import free_port

from .cdp import CHROMIUM, Browser

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def browser(tmp_path):
    assert Path(CHROMIUM).exists(), f"chromium not found ({CHROMIUM}): run scripts/deps test"
    b = Browser(tmp_path / "profile", tmp_path / "chromium.log")
    yield b
    b.close()


def test_dashboard_shows_a_client_and_disconnects_it(http_broker, browser, tmp_path):
    pki = certs.Pki(tmp_path / "pki")
    b = http_broker(f'[[listener]]\nname = "tls"\ntype = "tls"\nbind = "127.0.0.1"\nport = {free_port()}\n'
                    f'cert_file = "{pki.server.cert}"\nkey_file = "{pki.server.key}"\n')
    assert b.api.post("/api/v1/publish", {"topic": "dash/retained", "payload": "<b>not html</b>",
                                          "retain": True}).status == 200
    with m.RawClient(b.port, version=5) as c:
        assert c.connect("dash-client <&>").fields["reason"] == 0
        browser.call("Page.navigate", {"url": f"http://127.0.0.1:{b.http_port}/"})
        row = 'document.querySelector(\'#clients tr[data-client-id="dash-client <&>"]\')'
        browser.wait_for(f"!!{row}", "the client's row")
        cells = browser.evaluate(f"[...{row}.cells].map(c => c.textContent)")
        assert cells[0] == "dash-client <&>" and cells[2] == "test" and cells[3] == "5.0", cells
        # Listeners, certificates, retained messages, the graph.
        assert browser.evaluate(
            "document.querySelector('#listeners tr[data-listener=\"test\"]').cells[3].textContent") == "accepting"
        days = browser.evaluate("document.querySelector('#certificates tbody tr').cells[3].textContent")
        assert 300 < float(days) < 400, days
        browser.wait_for("!!document.querySelector('#retained tr[data-topic=\"dash/retained\"]')", "retained row")
        assert browser.evaluate("document.querySelector('#retained tr[data-topic=\"dash/retained\"]')"
                                ".cells[3].textContent") == "<b>not html</b>"
        assert browser.evaluate("document.querySelectorAll('#retained b').length") == 0  # text, not markup
        browser.wait_for("document.getElementById('rates').textContent.startsWith('now:')", "a throughput rate")

        browser.evaluate(f"{row}.querySelector('button.disconnect').click()")
        assert c.expect(m.DISCONNECT, timeout=10).fields["reason"] == 0x98
        c.expect_closed()
        browser.wait_for(f"!{row}", "the row to go")
        assert any(method == "Page.javascriptDialogOpening" for method, _ in browser.events)
    assert browser.console_errors() == [], browser.console_errors()
    assert b.api.get("/api/v1/clients").json()["items"] == []
