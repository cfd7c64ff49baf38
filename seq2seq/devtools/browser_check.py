"""`seq2seq serve` in a real headless browser (Debian's chromium), driven over the Chrome DevTools
Protocol by a small websocket client: standard library only. Not part of the test suite (it needs
chromium and takes seconds); scripts/browser_check.sh and scripts/browser_cors.sh run it.

    python -m seq2seq.devtools.browser_check page --checkpoint CKPT --screenshot page.png
    python -m seq2seq.devtools.browser_check cors --checkpoint CKPT

`page`: starts the server, loads `/`, types a sentence, clicks Translate, and checks that the page
shows the server's own translation (the same request over plain HTTP), its candidates with scores,
a heat map for the chosen candidate (clicking the second one redraws it), and the server's error
line for a refused request; no console error or Content-Security-Policy violation on the way.
Writes a screenshot of the page with the translation.

`cors`: a page served from another port (http.server in a temporary folder) calls the server with
fetch(). Served with `--allow-origin` naming that page's origin, the call succeeds and the page shows
the translation; from a second origin, or from a server started without the flag, the browser blocks it.

Each prints one summary line and exits 0 (passed) or 1 (failed); 2 for a bad argument.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterator


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


# --- servers --------------------------------------------------------------------------------------


@contextlib.contextmanager
def seq2seq_serve(flags: list[str], log: Path, timeout: float = 120.0) -> Iterator[str]:
    """`seq2seq serve --port 0 FLAGS` (the model flags among them) in a process; yields its URL, stops it (SIGTERM)."""
    cmd = [sys.executable, "-m", "seq2seq", "serve", "--port", "0", *flags]
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    line = proc.stdout.readline()
    watchdog.cancel()
    try:
        if " on http://" not in line:
            raise CheckFailed(f"seq2seq serve did not start: {line.strip() or log.read_text()[-400:].strip()}")
        yield line.rsplit(" on ", 1)[1].strip()
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@contextlib.contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """http.server serving `folder` on a free loopback port (an origin other than the server's); yields its URL."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- http.server's signature
            """No request log."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def post_json(url: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


# --- the checks -----------------------------------------------------------------------------------

JS_TEXT = "(document.querySelector({sel}) || {{}}).textContent || ''"


def _text(selector: str) -> str:
    return JS_TEXT.format(sel=json.dumps(selector))


def _pick_model(browser: Browser) -> str | None:
    """With several models served, pick the last one in the page's model picker; its name (None: one model)."""
    names = browser.evaluate("[...document.querySelectorAll('#model option')].map(o => o.value)")
    visible = browser.evaluate("!document.querySelector('#model').hidden")
    if len(names) > 1 and not visible:
        raise CheckFailed(f"the server serves {names} but the page shows no model picker")
    if len(names) < 2:
        return None
    browser.evaluate(f"(() => {{ const s = document.querySelector('#model'); s.value = {json.dumps(names[-1])};"
                     " s.dispatchEvent(new Event('change')); })()")  # fmt: skip
    return names[-1]


def check_page(browser: Browser, url: str, sentence: str, beam: int, n_best: int, shot: Path | None) -> str:
    """Translate `sentence` on the page at `url`/ as a person would; the summary line."""
    browser.open(url + "/")
    browser.wait_for("document.body.classList.contains('ready')", "the page to read /health")
    info = browser.evaluate(_text("#model-info"))
    if not info or "not reachable" in info:
        raise CheckFailed(f"the page shows no model ({info!r})")
    model = _pick_model(browser)
    request = {"sentences": [sentence], "beam_size": beam, **({"model": model} if model else {})}
    status, direct = post_json(url, "/translate", request)
    if status != 200:
        raise CheckFailed(f"POST /translate answered {status}: {direct}")
    expected = direct["translations"][0]
    browser.type_into("#beam", str(beam))
    browser.type_into("#nbest", str(n_best))
    browser.type_into("#source", sentence)
    browser.click("#translate")
    browser.wait_for(f"{_text('#results .candidate.best .text')} || {_text('#error')}", "the translation to appear")
    error = browser.evaluate(_text("#error"))
    if error:
        raise CheckFailed(f"the page shows an error: {error}")
    shown = browser.evaluate(_text("#results .candidate.best .text"))
    if shown != expected:
        raise CheckFailed(f"the page shows {shown!r}, the server translates {sentence!r} as {expected!r}")
    candidates = browser.evaluate("document.querySelectorAll('#results .candidate').length")
    scores = browser.evaluate("[...document.querySelectorAll('#results .candidate .score')].map(e => e.textContent)")
    if not 1 <= candidates <= n_best or not all(scores):
        raise CheckFailed(f"{candidates} candidates shown with scores {scores} (asked for {n_best})")
    if candidates > 1:  # the second candidate's attention
        browser.click("#results li:nth-child(2) > .candidate")
        browser.wait_for("document.querySelector('#attention-caption').textContent.includes('andidate 2')",
                         "the second candidate's attention")  # fmt: skip
    rows = browser.evaluate("document.querySelectorAll('#heatmap tbody tr').length")
    cols = browser.evaluate("document.querySelectorAll('#heatmap thead th').length - 1")
    aligned = browser.evaluate("document.querySelectorAll('#heatmap td.aligned').length")
    if not rows or not cols or not aligned:
        raise CheckFailed(f"the heat map has {rows} rows, {cols} columns and {aligned} aligned cells")
    browser.click("#results .candidate.best")  # the screenshot shows the translation's own attention
    size = browser.screenshot(shot, 1000) if shot else None
    if browser.problems:
        raise CheckFailed(f"the page reported: {browser.problems[0]}")
    browser.type_into("#beam", "100000")  # over any --max-beam-size: the server's one-line error is shown
    browser.click("#translate")
    refusal = browser.wait_for(_text("#error"), "the server's error line")
    if "beam" not in refusal:
        raise CheckFailed(f"the error box shows {refusal!r}")
    picture = f"; screenshot {shot} ({size[0]}x{size[1]})" if shot else ""
    by = f" by model {model!r} (picked on the page)" if model else ""
    return (f"page check passed: {sentence!r} -> {shown!r}{by} (the server's own), {candidates} candidates with "
            f"scores, a {rows}x{cols} attention map with {aligned} aligned cells, the error line "
            f"shown{picture}")  # fmt: skip


CORS_PAGE = """<!doctype html>
<meta charset="utf-8"><title>another origin calls seq2seq serve</title>
<p id="out">waiting</p>
<script>
const server = new URLSearchParams(location.search).get("server");
const sentence = new URLSearchParams(location.search).get("sentence");
fetch(server + "/translate", {method: "POST", headers: {"Content-Type": "application/json"},
                              body: JSON.stringify({sentences: [sentence]})})
  .then((reply) => reply.json())
  .then((data) => { out.textContent = "translated: " + data.translations[0]; })
  .catch((err) => { out.textContent = "blocked: " + err; })
  .finally(() => document.body.classList.add("done"));
</script>
"""


def _cross_origin_call(browser: Browser, page: str, server: str, sentence: str) -> str:
    browser.open(f"{page}/cors.html?server={quote(server, safe='')}&sentence={quote(sentence, safe='')}")
    browser.wait_for("document.body.classList.contains('done')", f"the page at {page} to call {server}")
    return browser.evaluate(_text("#out"))


def check_cors(browser: Browser, checkpoint: str, sentence: str, folder: Path) -> str:
    """A page from another origin calls the server: allowed with --allow-origin naming it, blocked otherwise."""
    (folder / "cors.html").write_text(CORS_PAGE)
    with static_server(folder) as page, static_server(folder) as other:
        model = ["--checkpoint", checkpoint]
        with seq2seq_serve([*model, "--allow-origin", page], folder / "allowed.log") as open_url, \
                seq2seq_serve(model, folder / "closed.log") as closed_url:  # fmt: skip
            status, direct = post_json(open_url, "/translate", {"sentences": [sentence]})
            expected = f"translated: {direct['translations'][0]}" if status == 200 else f"HTTP {status}"
            got = _cross_origin_call(browser, page, open_url, sentence)
            if got != expected:
                raise CheckFailed(f"from the allowed origin {page}: {got!r}, expected {expected!r}")
            for origin, server, why in ((other, open_url, "another origin"), (page, closed_url, "no --allow-origin")):
                browser.problems.clear()
                got = _cross_origin_call(browser, origin, server, sentence)
                if not got.startswith("blocked: ") or not any("CORS" in p for p in browser.problems):
                    raise CheckFailed(
                        f"{why} ({origin} calling {server}): {got!r}; the browser said {browser.problems}"
                    )
            if post_json(closed_url, "/translate", {"sentences": [sentence]})[0] != 200:
                raise CheckFailed(f"the server without --allow-origin ({closed_url}) does not translate")
    return (f"CORS check passed: the page at {page} got {expected[len('translated: '):]!r} from the server with "
            f"--allow-origin {page}; the browser blocked the same call from {other} and from a server "
            "without the flag")  # fmt: skip


# --- the command line -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m seq2seq.devtools.browser_check", description=__doc__.splitlines()[0])
    p.add_argument("check", choices=("page", "cors"), help="page: the page at /; cors: a page from another origin")
    p.add_argument("--checkpoint", help="the model to serve (.pt or an ONNX export)")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="page: several models instead (repeated): the check picks the last on the page",
    )
    p.add_argument("--sentence", default="Ein Mann fährt Fahrrad.", help="what to translate")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--n-best", type=int, default=3, help="candidates asked for on the page")
    p.add_argument("--screenshot", type=Path, help="page: write a PNG of the page with the translation here")
    p.add_argument("--serve-flag", action="append", default=[], help="page: a flag passed on to seq2seq serve")
    p.add_argument("--chromium", default=os.environ.get("CHROMIUM", "chromium"), help="the browser (default: chromium)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each thing the page does")
    args = p.parse_args(argv)
    chromium = shutil.which(args.chromium)
    paths = [m.partition("=")[2] for m in args.model] if args.model else [args.checkpoint]
    problem = (f"no browser {args.chromium!r} (apt-get install chromium, or --chromium)" if chromium is None else
               "give --checkpoint or --model NAME=PATH" if paths == [None] or (args.model and args.checkpoint) else
               next((f"no model file {path}" for path in paths if not Path(path).is_file()), None))  # fmt: skip
    if problem:
        print(f"browser_check: error: {problem}")
        return 2
    models = [flag for m in args.model for flag in ("--model", m)] or ["--checkpoint", args.checkpoint]
    with tempfile.TemporaryDirectory(prefix="seq2seq-browser-check-") as tmp:
        browser = None
        try:
            browser = Browser(chromium, timeout=args.timeout)
            if args.check == "cors":
                print(check_cors(browser, paths[0], args.sentence, Path(tmp)))
            else:
                with seq2seq_serve([*models, *args.serve_flag], Path(tmp) / "serve.log") as url:
                    print(check_page(browser, url, args.sentence, args.beam_size, args.n_best, args.screenshot))
        except (CheckFailed, OSError) as err:
            print(f"{args.check} check FAILED: {err}")
            return 1
        finally:
            if browser is not None:
                browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
