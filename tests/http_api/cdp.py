"""A minimal Chrome DevTools Protocol client to drive Debian's headless chromium.

Chromium starts on about:blank with --remote-debugging-port=0; the port it picked is read from
DevToolsActivePort in its profile directory, the page's WebSocket from /json/list. `call()` sends a command
and returns its result; every event received meanwhile is kept in `events` (a list of (method, params)), so a
test can look for console errors after the fact. JavaScript dialogs (confirm) are accepted as they open.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class TextSocket:
    """A client WebSocket carrying text messages (masked frames out; fragments and pings handled in)."""

    def __init__(self, url: str, timeout: float):
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the upgrade")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.partial = b""
        assert head.startswith(b"HTTP/1.1 101"), head

    def settimeout(self, t: float) -> None:
        self.sock.settimeout(t)

    def _frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, text: str) -> None:
        self._frame(0x1, text.encode())

    def _fill(self, n: int) -> None:
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buf += chunk

    def _take_frame(self) -> tuple[int, bytes]:
        """(first byte, payload) of the next frame; nothing is consumed until the frame is whole, so a
        timeout in the middle leaves the buffer intact."""
        self._fill(2)
        n, at = self.buf[1] & 0x7F, 2
        if n == 126:
            self._fill(4)
            n, at = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._fill(10)
            n, at = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._fill(at + n)
        b0, payload = self.buf[0], self.buf[at:at + n]
        self.buf = self.buf[at + n:]
        return b0, payload

    def recv(self) -> str:
        """The next whole text message (socket.timeout if none arrives in time)."""
        while True:
            b0, payload = self._take_frame()
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self._frame(0xA, payload)
            elif opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            elif opcode in (0x0, 0x1):
                self.partial += payload
                if b0 & 0x80:
                    message, self.partial = self.partial, b""
                    return message.decode()

    def close(self) -> None:
        try:
            self._frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


class Browser:
    def __init__(self, profile: Path, log: Path, timeout: float = 30.0):
        self.profile = profile
        out = open(log, "wb")
        try:
            self.proc = subprocess.Popen(
                [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--no-default-browser-check", "--remote-debugging-port=0",
                 "--remote-allow-origins=*", f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            out.close()
        self.events: list[tuple[str, dict]] = []
        self.next_id = 0
        self.ws = None
        try:
            self._attach(profile, log, timeout)
        except BaseException:
            self.close()  # never leave a chromium behind
            raise

    def _attach(self, profile: Path, log: Path, timeout: float) -> None:
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (active.exists() and active.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not open its DevTools port (exit {self.proc.poll()}):\n"
                                   + log.read_text(errors="replace")[-3000:])
            time.sleep(0.05)
        port = int(active.read_text().split()[0])
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t["type"] == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert pages, "chromium has no page"
        self.ws = TextSocket(pages[0]["webSocketDebuggerUrl"], timeout)
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")

    def _handle(self, message: dict) -> None:
        if "method" in message:
            self.events.append((message["method"], message.get("params", {})))
            if message["method"] == "Page.javascriptDialogOpening":
                self._send("Page.handleJavaScriptDialog", {"accept": True})

    def _send(self, method: str, params: dict | None = None) -> int:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params or {}}))
        return self.next_id

    def call(self, method: str, params: dict | None = None) -> dict:
        wanted = self._send(method, params)
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._handle(message)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while True:
            v = self.evaluate(expression)
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what} ({expression})")
            # Let events (console, dialogs) arrive between polls.
            self.ws.settimeout(0.1)
            try:
                self._handle(json.loads(self.ws.recv()))
            except socket.timeout:
                pass
            finally:
                self.ws.settimeout(30)

    def console_errors(self) -> list[str]:
        out = []
        for method, p in self.events:
            if method == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')} "
                           f"{p['exceptionDetails'].get('exception', {}).get('description', '')}")
            elif method == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert", "warning"):
                out.append(f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p['args']]}")
            elif method == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out.append(f"log {p['entry']['level']}: {p['entry']['text']} {p['entry'].get('url', '')}")
        return out

    def close(self) -> None:
        try:
            if self.ws is not None:
                self.ws.close()
        except Exception:  # noqa: BLE001 -- chromium may be gone already
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
