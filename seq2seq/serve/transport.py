"""The HTTP transport of `seq2seq serve` (docs/serving.md): routes, CORS, keep-alive, request parsing.

Standard library only: `http.server.ThreadingHTTPServer` runs one handler thread per connection;
a handler parses and checks its request, then hands its body to the server (server.py: the models,
the limits, the `Batcher`) and waits. Connections are kept alive (HTTP/1.1). A client has
`--max-read-s` for its whole request (request line, headers and body, however slowly it sends them:
one deadline, not one per read), and an idle connection as long for its next request; stopping closes
the idle connections and the ones part-way through sending a request, and waits a bounded time for
the rest, so it never waits on a client. CORS is off unless origins are allowed (`--allow-origin`).
The connections (their limit, the idle ones, stopping): connections.py. The JSON itself: protocol.py.
server.py imports these modules, never the other way (no import cycle): the handler knows the server
only as an `App` (connections.py).
"""

from __future__ import annotations

import io
import json
import logging
import re
import select
import socket
import socketserver
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from .batcher import ClientGone, RequestError
from .page import PAGE_ROUTES, page_file
from .protocol import opennmt_models, shown

if TYPE_CHECKING:
    from collections.abc import Callable

    from .connections import HTTPServer

log = logging.getLogger("seq2seq")

ROUTES = {"/health": "GET", "/models": "GET", "/translate": "POST", **PAGE_ROUTES,
          "/translator/translate": "POST", "/translator/models": "GET", "/translator/health": "GET"}  # fmt: skip
OPENNMT = "/translator/"  # OpenNMT-py's REST routes (its default url_root), in its format (protocol.py)
OPENNMT_OK = {"status": "ok"}  # its GET /translator/health
DRAIN_BYTES = 16 << 20  # an unread request body up to this size is read before replying (no reset)
CORS_MAX_AGE = 600  # seconds a browser may cache a preflight's answer
CORS_HEADERS = "Content-Type"  # the request headers a cross-origin page may send (JSON bodies need it)
READ_SLICE_S = 0.25  # a handler waiting for a request's bytes looks this often whether the server is stopping
DIGITS = re.compile(r"[0-9]+")  # a Content-Length: ASCII digits only (int() takes "+17", "1_7", "١٧")
JSON_TYPE = "application/json"  # what POST bodies must say they are (Content-Type), charset utf-8 optional


class RequestCut(Exception):
    """A request whose bytes stopped coming: past its deadline (408), or the server is stopping (503).
    `status` None: the connection was idle between requests (closed without a reply). Not an
    OSError: http.server must not swallow it, the handler answers it."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status


class RequestReader(io.RawIOBase):
    """The connection's bytes for the handler's `rfile`, read against one deadline for the whole request
    (`Handler.deadline`): a client sending a byte now and then cannot hold its thread past it, as it could
    with a timeout per read. While the server stops, a read that would wait ends the request instead."""

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler
        self.sock: socket.socket = handler.connection

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        handler = self.handler
        while True:
            left = handler.deadline - time.monotonic()
            if left <= 0:
                handler.cut(408, f"the request was not sent within {handler.read_s:g} s (--max-read-s)")
            stopping = handler.server.stopping
            self.sock.settimeout(0 if stopping else min(left, READ_SLICE_S))
            try:
                got = self.sock.recv_into(buffer)
            except (TimeoutError, BlockingIOError, InterruptedError):
                if stopping:
                    handler.cut(503, "this server is stopping: send the request again")
                continue
            finally:
                self.sock.settimeout(handler.read_s)  # writes: a reply's sendall() has as long
            return got


class Handler(BaseHTTPRequestHandler):
    server: HTTPServer
    protocol_version = "HTTP/1.1"  # connections are kept alive unless the client says close
    server_version = "seq2seq-serve"
    disable_nagle_algorithm = True
    read_s = 30.0  # the app's max_read_s: for a whole request, for an idle connection, for writing a reply
    deadline = 0.0  # time.monotonic() by which the request being read must be in (RequestReader)
    waiting = True  # no byte of the next request has come yet (the connection is idle)
    replied = False  # this request's reply has been started
    _unread = 0  # bytes of request body not read yet
    _started = 0.0
    _origin: str | None = None  # the Access-Control-Allow-Origin of this request's reply (CORS), if any

    def setup(self) -> None:
        """StreamRequestHandler's, but the request is read through a `RequestReader` (one deadline)."""
        self.connection = self.request
        self.read_s = self.server.app.limits.max_read_s
        self.connection.settimeout(self.read_s)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.rfile = io.BufferedReader(RequestReader(self))
        self.wfile = socketserver._SocketWriter(self.connection)  # type: ignore[attr-defined]

    def cut(self, status: int | None, message: str) -> None:
        """End the request being read (RequestReader): idle between requests, the connection just closes."""
        raise RequestCut(None if self.waiting else status, message)

    def handle_one_request(self) -> None:
        """Wait for the next request as an idle connection (closed by `close_idle` when stopping), `read_s`
        at most; from its first byte the whole request has `read_s` to come in, else a 408 and close."""
        with self.server.idle_lock:
            if self.server.stopping:
                self.close_connection = True
                return
            self.server.idle.add(self.connection)
        self.waiting, self.replied, self.deadline = True, False, time.monotonic() + self.read_s
        self.command, self.path, self.request_version = "", "", "HTTP/1.1"  # not the previous request's
        try:
            self._first_byte()
            super().handle_one_request()
        except RequestCut as err:
            self.close_connection = True
            if err.status is None or self.replied:
                return
            self._started = self._started or time.perf_counter()
            self._unread = 0
            self._error(err.status, str(err))

    def _first_byte(self) -> None:
        """Idle until the next request's first byte is in: read now, or read already with the request before
        (pipelined). From then the connection is busy: out of the idle set (a stop answers it 503, it is not
        closed unanswered) and the whole request has `read_s` from now (else a 408)."""
        if self.rfile.peek(1):  # the buffer's bytes, or one read (RequestReader: ends an idle wait by its deadline)
            with self.server.idle_lock:
                self.server.idle.discard(self.connection)
            self.waiting, self.deadline = False, time.monotonic() + self.read_s

    def parse_request(self) -> bool:
        self._started, self._origin = time.perf_counter(), None
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":  # "GET /health" without a version: http.server would answer a bare body
            self.send_error(400, "the request line has no HTTP version: send 'GET /health HTTP/1.1'")
            return False
        return True

    def finish(self) -> None:
        with self.server.idle_lock:
            self.server.idle.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._route()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def _route(self) -> None:
        app = self.server.app
        self._origin = app.cors_origin(self.headers.get("Origin"))
        try:
            self._unread = self._length() or 0
        except RequestError as err:  # two lengths, or one that is not digits: where this request ends is unknown
            self._unread, self.close_connection = 0, True
            self._error(err.status, str(err))
            return
        if "Transfer-Encoding" in self.headers:
            self.close_connection = True  # a body of unknown length: the connection cannot carry another request
        try:
            self._check_request()
        except RequestError as err:
            self._error(err.status, str(err))
            return
        path = self.path.split("?", 1)[0]
        method = "GET" if self.command == "HEAD" else self.command  # HEAD: a GET's status and headers, no body
        allowed = ROUTES.get(path, "")
        allowed = f"{allowed}, HEAD" if allowed == "GET" else allowed
        if self.command == "OPTIONS" and app.allow_origins and path in ROUTES:
            self._preflight(path, allowed)
        elif path not in ROUTES:
            self._error(404, f"no such path {path[:100]!r}: GET /health, GET /models or POST /translate "
                             "(docs/serving.md)")  # fmt: skip
        elif method != ROUTES[path]:
            allow = f"{allowed}, OPTIONS" if app.allow_origins else allowed
            self._error(405, f"{path} takes {ROUTES[path]}, not {self.command}", {"Allow": allow})
        elif path in PAGE_ROUTES:  # the page at / (page.py)
            body, headers = page_file(path)
            self._reply(200, body, f"{len(body)} bytes", headers)
        elif ROUTES[path] == "GET":
            replies = {"/health": app.health, "/models": app.list_models, "/translator/health": lambda: OPENNMT_OK,
                       "/translator/models": lambda: opennmt_models(app.paths, app.decode())}  # fmt: skip
            self._reply(200, replies[path]())
        else:
            self._translate(app.translate_body if path == "/translate" else app.translate_opennmt)

    def _check_request(self) -> None:
        """What no route takes: a Host that is not this server's (421, DNS rebinding)."""
        self.server.app.check_host(self.headers.get_all("Host") or [])

    def _check_query(self) -> None:
        """A POST route's query string: 400 (nothing reads it, `/translate?beam_size=1` would translate with the
        default beam). A GET route's is let through (a cache-buster, a monitor's): it asks for no option."""
        if "?" in self.path:
            path, query = self.path.split("?", 1)
            raise RequestError(400, f"the query string {shown('?' + query)} would be ignored: POST {path} "
                                    "reads none (decode options go in the JSON body of POST /translate)")  # fmt: skip

    def _translate(self, translate: Callable[[bytes, Callable[[], bool]], Any]) -> None:
        try:
            self._check_query()
            reply = translate(self._body(), self._client_gone)
        except RequestError as err:
            self._error(err.status, str(err))
        except ClientGone:  # nobody to answer
            ms = (time.perf_counter() - self._started) * 1000
            log.info("%s %s client gone after %.1f ms: translation stopped", self.command, self.path, ms)
            self.close_connection = True
        else:
            count = len(reply["translations"]) if isinstance(reply, dict) else len(reply[0]) if reply else 0
            self._reply(200, reply, f"{count} sentences")

    def _preflight(self, path: str, allowed: str) -> None:
        """A CORS preflight (OPTIONS with Origin) from an allowed origin: 204 with what it may send; from
        another origin 403. Without Origin (not a browser's preflight): 204 naming the methods."""
        origin, methods = self.headers.get("Origin"), f"{allowed}, OPTIONS"
        if origin is not None and self._origin is None:
            allowed = " ".join(self.server.app.allow_origins)
            self._error(403, f"origin {origin[:100]!r} is not allowed: this server allows {allowed} (--allow-origin)")
            return
        headers = {"Allow": methods}
        if origin is not None:
            headers.update({"Access-Control-Allow-Methods": methods, "Access-Control-Allow-Headers": CORS_HEADERS,
                            "Access-Control-Max-Age": str(CORS_MAX_AGE)})  # fmt: skip
        self._reply(204, None, "preflight", headers)

    def _client_gone(self) -> bool:
        """Whether the client has closed its connection (end of stream or a reset) while its request
        waits: the body is read, so a readable socket with nothing to read means it hung up (a
        pipelined next request is something to read: not gone). poll(), not select(): select() fails
        for a descriptor over 1023, as a connection gets with a thousand others open."""
        try:
            poller = select.poll()
            poller.register(self.connection, select.POLLIN)
            if not poller.poll(0):
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (BlockingIOError, TimeoutError):
            return False
        except (OSError, ValueError):  # a reset; a closed socket (fileno -1)
            return True

    def _length(self) -> int | None:
        """The Content-Length (None: none given). Two different ones, or one that is not ASCII digits
        (int() would take "+17", " 1_7", "١٧"): a RequestError 400, and the connection cannot go on."""
        values = {value.strip(" \t") for value in self.headers.get_all("Content-Length") or ()}
        if len(values) > 1:
            shown = ", ".join(sorted(json.dumps(value)[:40] for value in values))
            raise RequestError(400, f"the request has {len(values)} different Content-Length headers ({shown})")
        raw = values.pop() if values else None
        if raw is not None and not DIGITS.fullmatch(raw):
            raise RequestError(400, f"Content-Length {json.dumps(raw)[:40]} is not a byte count (ASCII digits)")
        if raw is None:
            return None
        digits = raw.lstrip("0") or "0"
        return int(digits) if len(digits) <= 30 else 10**30  # over any limit all the same (no 4,300-digit int)

    def _check_type(self) -> None:
        """A POST body must say it is JSON: a browser page may send text/plain, a form or an untyped body
        to any server without asking first (no CORS preflight), and would have it translate."""
        raw = self.headers.get("Content-Type")
        kind, *params = (raw or "").split(";")
        charset = next((p.split("=", 1)[1].strip(" \t\"").lower() for p in params if "=" in p
                        and p.split("=", 1)[0].strip().lower() == "charset"), "utf-8")  # fmt: skip
        if kind.strip(" \t").lower() != JSON_TYPE or charset not in ("utf-8", "utf8"):
            got = "none" if raw is None else json.dumps(raw)[:60]
            raise RequestError(415, f"Content-Type must be {JSON_TYPE} (charset utf-8, if any), got {got}")

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestError(411, "send the body with a Content-Length (chunked transfer encoding is not supported)")
        length = self._length()
        if length is None:
            raise RequestError(411, "Content-Length is required")
        self.server.app.check_length(length)
        self._check_type()
        for coding in self.headers.get_all("Content-Encoding") or ():  # a gzip body would be read as JSON
            if coding.strip(" \t").lower() != "identity":  # identity: the body as it is
                message = f"Content-Encoding {shown(coding)} is not supported: send the body uncompressed"
                raise RequestError(415, message)
        body = self.rfile.read(length)
        self._unread = 0
        if len(body) < length:
            self.close_connection = True
            raise RequestError(400, f"body ended after {len(body)} of {length} bytes (Content-Length)")
        return body

    def handle_expect_100(self) -> bool:
        """`Expect: 100-continue` (curl, for large bodies): refuse a body over the limit before it is sent."""
        try:
            self.server.app.check_length(self._length() or 0)
        except RequestError as err:
            self._origin = self.server.app.cors_origin(self.headers.get("Origin"))
            self._unread, self.close_connection = 0, True  # the client may send the body or not: close
            self._error(err.status, str(err))
            return False
        return super().handle_expect_100()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, headers too large, unknown method) in JSON too."""
        self._started = self._started or time.perf_counter()
        if self.request_version == "HTTP/0.9":  # an unparsable request line: still answer with a status line
            self.request_version = "HTTP/1.0"
        self.close_connection = True  # what follows on the connection cannot be trusted
        self._error(code, message or HTTPStatus(code).phrase)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        path = getattr(self, "path", "")
        body = {"error": message, "status": "error"} if path.startswith(OPENNMT) else {"error": message}
        self._reply(status, body, message, headers)

    def _drain(self) -> None:
        """Read a body we refused unread, so the client sees the reply and the connection can go on;
        one too large to read closes the connection (its rest would be taken for the next request)."""
        if 0 < self._unread <= DRAIN_BYTES:
            try:
                while self._unread > 0 and (got := len(self.rfile.read(min(self._unread, 1 << 16)))):
                    self._unread -= got  # 64 KiB at a time: a refused body is never held whole
                self.close_connection |= self._unread > 0  # the client stopped short
            except (OSError, RequestCut):
                self.close_connection = True
        elif self._unread:
            self.close_connection = True
        self._unread = 0
        if self.server.stopping:
            self.close_connection = True

    def _reply(self, status: int, obj: Any, note: str = "", headers: dict[str, str] | None = None) -> None:
        """Send `obj` as JSON (bytes as they are; None: no body, a 204) with `headers`, the CORS headers
        and Content-Length; `Connection: close` when the connection ends after it."""
        self._drain()
        self.replied = True
        if obj is None:
            body, head = b"", {}
        else:
            body = obj if isinstance(obj, bytes) else _json_bytes(obj)
            head = {"Content-Type": "application/json; charset=utf-8", "Content-Length": str(len(body))}
        head.update({**(headers or {}), **self.server.app.cors_headers(self._origin)})
        if self.close_connection:
            head["Connection"] = "close"
        elif self.request_version == "HTTP/1.0":  # an HTTP/1.0 client that asked for keep-alive
            head["Connection"] = "keep-alive"
        self.send_response(status)
        for key, value in head.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        ms = (time.perf_counter() - self._started) * 1000
        log.info("%s %s %d %.1f ms %s", *self._request_words(), status, ms, note)

    def _request_words(self) -> tuple[str, str]:
        """The method and path to log: http.server's, or where it refused the request line before setting
        them (a 505 for HTTP/2.0, a 400) the line's own first two words, clipped; "-" for none."""
        words = str(getattr(self, "requestline", "") or "").split()
        command = self.command or (words[0][:16] if words else "-")
        return command, getattr(self, "path", "") or (words[1][:200] if len(words) > 1 else "-")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Logged by _reply (one line per request)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- http.server's signature
        log.warning("%s: %s", self.address_string(), format % args)


def _json_bytes(obj: Any) -> bytes:
    """A reply's JSON in UTF-8, a line; a lone surrogate (a client's, echoed) written as JSON's `\\ud800`
    (strict UTF-8 cannot carry it: the reply was never sent)."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "backslashreplace") + b"\n"
