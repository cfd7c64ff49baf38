"""`seq2seq serve` in a real headless browser (Debian's chromium), driven over the Chrome DevTools
Protocol (cdp.py: a small websocket client and the page): standard library only. Not part of the test suite (it needs
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
import contextlib
import functools
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from .cdp import Browser, CheckFailed

if TYPE_CHECKING:
    from collections.abc import Iterator


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
