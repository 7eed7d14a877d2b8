"""A real browser: Debian's chromium (headless) runs MQTT.js (tests/websocket/browser/package.json pins the
version; scripts/deps test installs both) against petrel's ws and wss listeners.

The test serves browser/page.html and MQTT.js's mqtt.min.js from an HTTP server on 127.0.0.1 (a thread), and
points chromium at the page with the broker's URL in the query string. The page connects, subscribes (QoS 1),
publishes (QoS 1) to the same topic, and POSTs what came back (topic, payload, QoS, elapsed ms), or its error,
to the test's server, which sets a threading.Event. A raw TCP subscriber checks that the browser's message
reached the other transport as well. chromium is killed by its PID (its process group) afterwards.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest

import mqttraw as m

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).resolve().parent
PAGE = HERE / "browser" / "page.html"
MQTT_JS = HERE / "browser" / "node_modules" / "mqtt" / "dist" / "mqtt.min.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPORT_TIMEOUT = 60.0
INSTALL_HINT = "run scripts/deps test (it installs Debian's chromium and MQTT.js from tests/websocket/browser)"


class PageServer:
    """Serves the page and MQTT.js on 127.0.0.1 (an ephemeral port) and receives the page's report."""

    def __init__(self) -> None:
        self.report: dict | None = None
        self.reported = threading.Event()
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                path = self.path.split("?", 1)[0]
                if path == "/page.html":
                    self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
                elif path == "/mqtt.min.js":
                    self._send(200, MQTT_JS.read_bytes(), "text/javascript; charset=utf-8")
                else:
                    self._send(404, b"not here\n", "text/plain")

            def do_POST(self) -> None:
                outer.requests.append(f"POST {self.path}")
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/report" and outer.report is None:
                    try:
                        outer.report = json.loads(body)
                    except ValueError:
                        outer.report = {"ok": False, "error": f"unparseable report {body[:200]!r}"}
                    outer.reported.set()
                self._send(204, b"", "text/plain")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="page-server")
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture
def page_server():
    s = PageServer()
    yield s
    s.close()


def start_chromium(url: str, profile: Path, log: Path) -> subprocess.Popen:
    """chromium, headless, in a session (process group) of its own so that all of its processes can be ended
    by its PID."""
    args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
            "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
            f"--user-data-dir={profile}", url]
    out = open(log, "wb")
    try:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        out.close()


def stop_chromium(proc: subprocess.Popen) -> None:
    """SIGTERM to chromium's process group (its PID), then SIGKILL if it does not exit within 10 s."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the renderer and helper processes of that group, if any remain
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


CASES = {
    # scheme, MQTT protocol version MQTT.js uses (3: MQIsdp with the "mqttv3.1" subprotocol)
    "ws-mqtt-3.1.1": ("ws", 4),
    "ws-mqtt-3.1": ("ws", 3),
    "wss-mqtt-5": ("wss", 5),
}
LOGGED_VERSION = {3: "3.1", 4: "3.1.1", 5: "5.0"}


@pytest.mark.parametrize("case", list(CASES))
def test_browser_mqtt_js_round_trip(ws_broker, page_server, tmp_path, case):
    """chromium running MQTT.js connects over <scheme> with MQTT <version>, subscribes and publishes QoS 1 to
    one topic, and reports receiving its own message (topic, UTF-8 payload, QoS 1); petrel logs the client as
    connected from 127.0.0.1 with that protocol version; a TCP subscriber gets the browser's message too."""
    assert Path(CHROMIUM).exists(), f"chromium not found ({CHROMIUM}): {INSTALL_HINT}"
    assert MQTT_JS.exists(), f"{MQTT_JS} is missing: {INSTALL_HINT}"
    scheme, version = CASES[case]
    b = ws_broker(ws=scheme == "ws", wss=scheme == "wss")
    port = b.ws_port if scheme == "ws" else b.wss_port
    client_id = f"browser-{case}"
    topic = f"browser/{case}/echo"
    payload = f"hello from {case}: héllo ✓"

    with m.RawClient(b.port) as watcher:
        watcher.connect("browser-watcher")
        watcher.send(m.subscribe(1, [("browser/#", 1)]))
        assert watcher.expect(m.SUBACK).fields["reasons"] == [1]

        query = urlencode({"url": f"{scheme}://127.0.0.1:{port}/mqtt", "topic": topic, "client": client_id,
                           "version": version, "payload": payload})
        url = f"http://127.0.0.1:{page_server.port}/page.html?{query}"
        chromium_log = tmp_path / f"chromium-{case}.log"
        proc = start_chromium(url, tmp_path / f"profile-{case}", chromium_log)
        try:
            reported = page_server.reported.wait(REPORT_TIMEOUT)
            exited = proc.poll()
        finally:
            stop_chromium(proc)
        diagnostics = (f"chromium exit={exited}; requests={page_server.requests}; "
                       f"chromium log tail:\n{chromium_log.read_text(errors='replace')[-3000:]}")
        assert reported, f"no report from the page within {REPORT_TIMEOUT} s; {diagnostics}"
        r = page_server.report
        assert r.get("ok") is True, f"the page reported a failure: {r}; {diagnostics}"
        assert (r["topic"], r["payload"], r["qos"]) == (topic, payload, 1), r
        assert r["mqtt_version"] == version, r
        assert isinstance(r["elapsed_ms"], (int, float)) and r["elapsed_ms"] >= 0, r
        assert "Chrome/" in r["user_agent"], r

        p = watcher.expect(m.PUBLISH)
        assert (p.fields["topic"], p.fields["payload"]) == (topic, payload.encode()), p

    line = next(ln for ln in b.wait_log(f"client connected: id={client_id} ").splitlines()
                if f"client connected: id={client_id} " in ln)
    assert " peer=127.0.0.1:" in line and f" protocol={LOGGED_VERSION[version]} " in line, line
