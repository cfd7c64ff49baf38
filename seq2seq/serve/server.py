"""The HTTP JSON translation server behind `seq2seq serve` (docs/serving.md).

Standard library only: `http.server.ThreadingHTTPServer` runs one handler thread per connection;
a handler parses and checks its request, then hands the sentences to the `Batcher` (batcher.py) and waits.
One worker owns the translator: it takes every job queued (up to `max_batch` sentences), groups
the jobs by decode settings, translates each group in one call and hands each job its slice. Only
the worker touches the model (torch is not made thread-safe by the server); in `serve` the worker
is the main thread (torch ran a real model ~1.6x faster there than from a background thread).
One request per connection (`Connection: close`), so that stopping never waits on an idle client.
"""

from __future__ import annotations

import json
import logging
import math
import os
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, TextIO

from ..config import ConfigError, DecodeConfig, to_dict
from ..text import clean
from ..translation.base import decode_config
from .batcher import Batcher, ClientGone, RequestError
from .limits import ServeLimits
from .page import PAGE_ROUTES, page_file

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ..translation.base import Translating

log = logging.getLogger("seq2seq")

ROUTES = {"/health": "GET", "/translate": "POST", **PAGE_ROUTES}
DRAIN_BYTES = 16 << 20  # an unread request body up to this size is read before replying (no reset)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _describe(value: Any) -> str:
    if isinstance(value, list):
        bad = next(v for v in value if not isinstance(v, str))
        return f"an array holding {_json_type(bad)} ({json.dumps(bad)[:40]})"
    return f"{_json_type(value)} ({json.dumps(value)[:40]})"


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse_body(body: bytes) -> tuple[list[str], dict[str, Any]]:
    """The sentences and the decode options of a /translate body; malformed or mistyped: RequestError 400."""
    try:
        request = json.loads(body, parse_constant=_no_constant)
    except ValueError as err:  # JSONDecodeError, invalid UTF-8, NaN/Infinity
        raise RequestError(400, f"body is not valid JSON: {err}") from None
    except RecursionError:
        raise RequestError(400, "body is not valid JSON: nested too deeply") from None
    if not isinstance(request, dict):
        raise RequestError(400, f'body must be a JSON object {{"sentences": [...]}}, got {_json_type(request)}')
    options = dict(request)
    if "sentences" not in options:
        raise RequestError(400, 'missing "sentences": an array of strings to translate')
    sentences = options.pop("sentences")
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise RequestError(400, f'"sentences" must be an array of strings, got {_describe(sentences)}')
    for key, value in options.items():  # 1e400 parses as inf
        if isinstance(value, float) and not math.isfinite(value):
            raise RequestError(400, f"{key} must be a finite number, got {json.dumps(value)[:40]}")
    return sentences, options


# --- HTTP -----------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads: in-flight requests finish
    block_on_close = True
    request_queue_size = 128  # listen backlog (the default 5 drops connections under concurrent load)
    app: TranslationServer

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # not HTTPServer's: no getfqdn() (a DNS lookup) at start
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("connection from %s: %s", client_address[0], sys.exc_info()[1])


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"  # every response says Connection: close
    server_version = "seq2seq-serve"
    timeout = 30  # seconds a client may stall while sending its request
    disable_nagle_algorithm = True
    _unread = 0  # bytes of request body not read yet
    _started = 0.0

    def do_GET(self) -> None:
        self._route()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def _route(self) -> None:
        self._started = time.perf_counter()
        self._unread = self._length(strict=False) or 0
        path = self.path.split("?", 1)[0]
        if path not in ROUTES:
            self._error(404, f"no such path {path!r}: GET /health or POST /translate")
        elif self.command != ROUTES[path]:
            self._error(405, f"{path} takes {ROUTES[path]}, not {self.command}", {"Allow": ROUTES[path]})
        elif path == "/health":
            self._reply(200, self.server.app.health())
        elif path in PAGE_ROUTES:  # the page at / (page.py)
            body, headers = page_file(path)
            self._reply(200, body, f"{len(body)} bytes", headers)
        else:
            try:
                translations = self.server.app.translate_body(self._body(), self._client_gone)
            except RequestError as err:
                self._error(err.status, str(err))
            except ClientGone:  # nobody to answer
                ms = (time.perf_counter() - self._started) * 1000
                log.info("%s %s client gone after %.1f ms: translation stopped", self.command, self.path, ms)
                self.close_connection = True
            else:
                self._reply(200, {"translations": translations}, f"{len(translations)} sentences")

    def _client_gone(self) -> bool:
        """Whether the client has closed its connection (end of stream or a reset) while its request
        waits: the body is read, so a readable socket with nothing to read means it hung up."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except (OSError, ValueError):  # a reset; a closed socket
            return True

    def _length(self, strict: bool = True) -> int | None:
        raw = self.headers.get("Content-Length")
        try:
            length = int(raw) if raw is not None else None
        except ValueError:
            length = -1
        if strict and (length is None or length < 0):
            detail = "is required" if raw is None else f"{raw!r} is not a byte count"
            raise RequestError(411 if raw is None else 400, f"Content-Length {detail}")
        return length if length is None or length >= 0 else None

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestError(411, "send the body with a Content-Length (chunked transfer encoding is not supported)")
        length = self._length()
        assert length is not None
        self.server.app.check_length(length)
        body = self.rfile.read(length)
        self._unread = 0
        if len(body) < length:
            raise RequestError(400, f"body ended after {len(body)} of {length} bytes (Content-Length)")
        return body

    def handle_expect_100(self) -> bool:
        """`Expect: 100-continue` (curl, for large bodies): refuse a body over the limit before it is sent."""
        try:
            self.server.app.check_length(self._length(strict=False) or 0)
        except RequestError as err:
            self._started = time.perf_counter()
            self._error(err.status, str(err))
            return False
        return super().handle_expect_100()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, headers too large, unknown method) in JSON too."""
        self._started = self._started or time.perf_counter()
        if self.request_version == "HTTP/0.9":  # an unparsable request line: still answer with a status line
            self.request_version = "HTTP/1.0"
        self._error(code, message or HTTPStatus(code).phrase)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._reply(status, {"error": message}, message, headers)

    def _reply(self, status: int, obj: Any, note: str = "", headers: dict[str, str] | None = None) -> None:
        if 0 < self._unread <= DRAIN_BYTES:  # read a body we refused unread, so the client sees the reply
            try:
                self.rfile.read(self._unread)
            except OSError:
                pass
        self._unread = 0
        body = obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n"
        self.send_response(status)
        for key, value in {"Content-Type": "application/json; charset=utf-8", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        ms = (time.perf_counter() - self._started) * 1000
        log.info("%s %s %d %.1f ms %s", self.command, getattr(self, "path", "-"), status, ms, note)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Logged by _reply (one line per request)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- http.server's signature
        log.warning("%s: %s", self.address_string(), format % args)


# --- the server -----------------------------------------------------------------------------------


class TranslationServer:
    """The HTTP server and its batching worker, bound at construction (`port=0`: a free port, see
    `url`); `start()` serves from background threads, `stop()` finishes in-flight requests and ends."""

    def __init__(
        self,
        translator: Translating,
        decode_cfg: DecodeConfig | None = None,
        limits: ServeLimits | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "",
    ) -> None:
        self.translator, self.decode_cfg = translator, decode_cfg or DecodeConfig()
        self.limits, self.model = limits or ServeLimits(), model
        check_beam(self.decode_cfg, self.limits, "the default ")
        check_output_len(self.decode_cfg, self.limits, 1, "the default ")
        translator.check(self.decode_cfg)
        self.described = translator.describe()  # once: /health never touches the model
        wait_s, budget_s = self.limits.batch_wait_ms / 1000, self.limits.max_request_s
        self.batcher = Batcher(translator.translate, self.limits.max_batch, wait_s, budget_s)
        if not 0 <= port <= 65535:
            raise ConfigError(f"port must be in [0, 65535], got {port}")
        self.httpd = (_HTTPServer6 if ":" in host else _HTTPServer)((host, port), _Handler)
        self.httpd.app = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    def start(self, worker: bool = True) -> TranslationServer:
        """Serve HTTP from a background thread, and translate in another one; with `worker=False`, call
        `run_worker()` in the thread that should translate (`serve` uses the main thread: torch's
        OpenMP threads run its small operations faster there, docs/serving.md)."""
        if worker:
            self.batcher.start()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="seq2seq-serve-http", daemon=True)
        self._thread.start()
        return self

    def run_worker(self) -> None:
        """The batching worker in this thread, until `stop()` (called from another thread)."""
        self.batcher.run()

    def stop(self) -> None:
        """Stop accepting, finish the requests in flight, end the worker."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
        self.batcher.hurry()
        self.httpd.server_close()  # joins the handler threads, which wait for their jobs
        self.batcher.stop()

    def __enter__(self) -> TranslationServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def health(self) -> dict[str, Any]:
        stats = {**self.batcher.stats, "pending_jobs": self.batcher.pending}
        return {"status": "ok", "model": self.model, **self.described, "decode": to_dict(self.decode_cfg),
                "limits": to_dict(self.limits), "stats": stats}  # fmt: skip

    def check_length(self, length: int) -> None:
        if length > self.limits.max_body_bytes:
            limit = self.limits.max_body_bytes
            raise RequestError(413, f"body of {length} bytes is over the limit of {limit} bytes (--max-body-bytes)")

    def translate_body(self, body: bytes, gone: Callable[[], bool] | None = None) -> list[str]:
        """A /translate body's translations, in order; a request the server refuses raises RequestError
        (503: not done within the time budget), one whose client has gone (`gone()`) ClientGone."""
        sentences, options = parse_body(body)
        limits = self.limits
        if len(sentences) > limits.max_sentences:
            msg = f"{len(sentences)} sentences in one request: the limit is {limits.max_sentences} (--max-sentences)"
            raise RequestError(413, msg)
        for i, sentence in enumerate(sentences):
            if len(sentence) > limits.max_chars:
                msg = f"sentences[{i}] has {len(sentence)} characters: the limit is {limits.max_chars} (--max-chars)"
                raise RequestError(413, msg)
            if not sentence.isascii():
                try:
                    sentence.encode("utf-8")
                except UnicodeEncodeError:  # "\ud800" is valid JSON but no text: the tokenizer would fail
                    raise RequestError(400, f"sentences[{i}] holds a lone surrogate (not Unicode text)") from None
        try:
            if "memory_budget_gb" in options:  # a bound of the server's, not a client's to raise
                raise ConfigError("memory_budget_gb is this server's setting (--memory-budget-gb), not a request's")
            cfg = decode_config(self.decode_cfg, options)
            check_beam(cfg, self.limits)
            self.translator.check(cfg)
            live = [text for text in map(clean, sentences) if text]  # as translate_nbest tokenizes them
            src_pieces = max(map(len, self.translator.src_tok.encode(live)), default=0) if live else 0
            check_output_len(cfg, self.limits, src_pieces)
        except (ConfigError, TypeError) as err:  # unknown option, wrong type, bad value, what this engine cannot run
            raise RequestError(400, str(err).splitlines()[0]) from None
        return self.batcher.submit(sentences, cfg, gone) if sentences else []


def check_beam(cfg: DecodeConfig, limits: ServeLimits, what: str = "") -> None:
    """A beam wider than `limits.max_beam_size`, or n_best > 1 (the server answers one translation
    per sentence), is a ConfigError (`what`: "" or "the default ")."""
    if cfg.beam_size > limits.max_beam_size:
        limit = f"this server's limit of {limits.max_beam_size} (--max-beam-size)"
        raise ConfigError(f"{what}beam_size {cfg.beam_size} is over {limit}")
    if cfg.n_best != 1:
        raise ConfigError(f"{what}n_best {cfg.n_best}: the server returns one translation per sentence")


def check_output_len(cfg: DecodeConfig, limits: ServeLimits, src_pieces: int, what: str = "") -> None:
    """Outputs longer than `limits.max_output_len` pieces allowed for the longest source (`src_pieces`
    pieces, truncated to max_src_len, EOS added: what the search allows) are a ConfigError."""
    src = min(src_pieces, cfg.max_src_len) + 1
    limit = limits.max_output_len
    if cfg.max_len_b > limit or cfg.max_len_a * src + cfg.max_len_b > limit:  # b first: no int-to-float overflow
        allowed = f"max_len_a {cfg.max_len_a:g} x {src} source pieces + max_len_b {cfg.max_len_b}"
        raise ConfigError(f"{what}{allowed} allows outputs over this server's limit of {limit} (--max-output-len)")


def serve(
    checkpoint: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "cpu",
    decode_cfg: DecodeConfig | None = None,
    limits: ServeLimits | None = None,
    out: TextIO | None = None,
) -> None:
    """`seq2seq serve`: load the model, listen, print `serving CKPT on http://HOST:PORT`, serve until
    SIGTERM or SIGINT, finish the requests in flight, print `stopped`. A second signal exits at once."""
    from ..translation import load_translator

    out = out or sys.stdout
    decode_cfg, limits = decode_cfg or DecodeConfig(), limits or ServeLimits()
    check_beam(decode_cfg, limits, "the default ")  # before the model loads
    check_output_len(decode_cfg, limits, 1, "the default ")
    translator = load_translator(checkpoint, device, decode_cfg)
    server = TranslationServer(translator, decode_cfg, limits, host, port, model=str(checkpoint))
    stopper = threading.Thread(target=server.stop, name="seq2seq-serve-stop")  # the first signal starts it

    def on_signal(signum: int, frame: Any) -> None:
        if stopper.ident is not None:
            log.warning("second %s: exiting without finishing", signal.Signals(signum).name)
            os._exit(1)
        log.info("%s: stopping; requests in flight: %d", signal.Signals(signum).name, server.batcher.pending)
        stopper.start()

    server.start(worker=False)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        log.info("model: %s", ", ".join(f"{key} {value}" for key, value in server.described.items()))
        print(f"serving {checkpoint} on {server.url}", file=out, flush=True)
        server.run_worker()  # the main thread translates until the stopper has stopped the server
    finally:
        if stopper.ident is None:  # the worker failed (no signal): finish the requests in flight from a thread
            server.batcher.start()
            server.stop()
        else:
            stopper.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped", file=out, flush=True)
