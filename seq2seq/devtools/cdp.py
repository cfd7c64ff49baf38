"""A headless chromium driven over the Chrome DevTools Protocol, for browser_check.py: a small
websocket client (`WebSocket`, RFC 6455) and one page (`Browser`: navigate, evaluate, wait, click,
screenshot; the console errors and policy violations it reports). Standard library only.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class CheckFailed(Exception):
    """What the browser showed was not what it should (the summary line says what)."""


# --- a websocket client, enough for the DevTools protocol -----------------------------------------


class WebSocket:
    """Text messages over one websocket connection (RFC 6455: client frames masked, fragments joined)."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"websocket handshake refused: {head.splitlines()[0]!r}")

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the browser closed the DevTools connection")
        self.buffer += chunk

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        size = bytes([0x80 | n]) if n < 126 else (bytes([0xFE]) + n.to_bytes(2, "big") if n < 1 << 16 else
                                                  bytes([0xFF]) + n.to_bytes(8, "big"))  # fmt: skip
        mask = os.urandom(4)
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        self.sock.sendall(bytes([0x80 | opcode]) + size + mask + masked)

    def send(self, text: str) -> None:
        self._frame(0x1, text.encode("utf-8"))

    def recv(self) -> str:
        parts: list[bytes] = []
        while True:
            first, second = self._read(2)
            n = second & 0x7F
            if n >= 126:
                n = int.from_bytes(self._read(2 if n == 126 else 8), "big")
            payload = self._read(n)  # the server's frames are not masked
            opcode = first & 0x0F
            if opcode == 0x9:  # ping
                self._frame(0xA, payload)
            elif opcode == 0x8:
                raise ConnectionError("the browser closed the DevTools connection")
            elif opcode in (0x0, 0x1, 0x2):
                parts.append(payload)
                if first & 0x80:
                    return b"".join(parts).decode("utf-8")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# --- the browser ----------------------------------------------------------------------------------


class Browser:
    """Headless chromium with one page, driven over the DevTools protocol. `problems` collects the
    console errors, uncaught exceptions and policy violations the page reported."""

    def __init__(self, chromium: str, width: int = 1200, height: int = 900, timeout: float = 60.0) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="seq2seq-chromium-"))
        self.log = self.profile / "chromium.log"
        self.timeout, self.problems, self._id = timeout, [], 0
        flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                 "--disable-extensions", "--hide-scrollbars", "--remote-debugging-port=0",
                 f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"]  # fmt: skip
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([chromium, *flags], stdout=subprocess.DEVNULL, stderr=log)
        try:
            self.ws = WebSocket(self._page_socket(), timeout)
            for domain in ("Runtime", "Log", "Page"):
                self.call(f"{domain}.enable")
            self.call(
                "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
            )
        except BaseException:
            self.close()
            raise

    def _page_socket(self) -> str:
        """The DevTools websocket of the browser's page (the port chromium picked is in DevToolsActivePort)."""
        port_file, deadline = self.profile / "DevToolsActivePort", time.monotonic() + self.timeout
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise CheckFailed(f"chromium did not start: {self.log.read_text(errors='replace')[-500:]}")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout)
        conn.request("GET", "/json/list")
        targets = json.loads(conn.getresponse().read())
        conn.close()
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command's result; the events that arrive meanwhile are looked at (`problems`)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise CheckFailed(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})
            self._event(message.get("method", ""), message.get("params", {}))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.problems.append(
                "console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.problems.append(
                "exception: " + details.get("exception", {}).get("description", details.get("text", ""))
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.problems.append(f"{params['entry'].get('source')}: {params['entry'].get('text')}")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise CheckFailed(f"in the page: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, what: str, timeout: float | None = None) -> Any:
        """`expression`'s value once it is truthy (polled every 50 ms); past `timeout` s, CheckFailed naming `what`."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CheckFailed(f"timed out waiting for {what}")
            time.sleep(0.05)

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        there = json.dumps(url.split("?")[0])
        self.wait_for(f"location.href.startsWith({there}) && document.readyState === 'complete'", f"{url} to load")

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) in the middle of the element."""
        find = f"document.querySelector({json.dumps(selector)})"
        box = self.wait_for(f"(() => {{ const e = {find}; if (!e) return null; e.scrollIntoView({{block: 'center'}});"
                            " const r = e.getBoundingClientRect();"
                            " return r.width ? [r.x + r.width / 2, r.y + r.height / 2] : null; })()",
                            selector)  # fmt: skip
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type_into(self, selector: str, text: str) -> None:
        """Focus the field, select what it holds, and type `text` over it (as keyboard input)."""
        self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.value = ''; e.focus(); }})()"
        )
        self.call("Input.insertText", text=text)

    def screenshot(self, path: Path, width: int) -> tuple[int, int]:
        """A PNG of the whole page at `width` CSS pixels; its size."""
        height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
        self.evaluate("window.scrollTo(0, 0)")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return width, height

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            with contextlib.suppress(OSError, ConnectionError, CheckFailed):
                self.ws.send(json.dumps({"id": self._id + 1, "method": "Browser.close"}))
            self.ws.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
