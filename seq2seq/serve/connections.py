"""The listening side of `seq2seq serve` (docs/serving.md): one handler thread per connection, at most
`--max-connections` of them (beyond that a 503 and close); the kept-alive connections waiting for their
next request, which stopping closes; and a stop that waits a bounded time for the requests in flight,
then cuts the connections left, so that no client can keep the server from stopping. The requests on
a connection: transport.py's `Handler`.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from .limits import ServeLimits

log = logging.getLogger("seq2seq")
STOP_GRACE_S = 5.0  # stopping waits for the handlers this long beyond a request's budget, then cuts them off


class App(Protocol):
    """What the handler asks of the server behind it: server.py's `TranslationServer`."""

    allow_origins: tuple[str, ...]
    paths: dict[str, str]
    limits: ServeLimits

    def health(self) -> dict[str, Any]: ...
    def list_models(self) -> dict[str, Any]: ...
    def decode(self) -> dict[str, Any]: ...
    def cors_origin(self, origin: str | None) -> str | None: ...
    def cors_headers(self, allowed: str | None) -> dict[str, str]: ...
    def check_host(self, values: list[str]) -> None: ...
    def check_length(self, length: int) -> None: ...
    def translate_body(self, body: bytes, gone: Callable[[], bool] | None = None) -> dict[str, Any]: ...
    def translate_opennmt(self, body: bytes, gone: Callable[[], bool] | None = None) -> list[list[dict]]: ...


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # server_close() joins the handler threads (requests in flight finish), for a bounded time
    block_on_close = False  # ... itself, not ThreadingMixIn's unbounded join
    request_queue_size = 128  # listen backlog (the default 5 drops connections under concurrent load)
    app: App

    def __init__(self, address: Any, handler: Any, app: App) -> None:
        self.app = app  # before binding: a bind that fails calls server_close(), which reads the app's limits
        self.idle: set[socket.socket] = set()  # kept-alive connections waiting for their next request
        self.idle_lock = threading.Lock()
        self.stopping = False
        self.connections = 0  # open ones, each with its handler thread (at most the app's max_connections)
        self.handlers: dict[threading.Thread, socket.socket] = {}  # the handler threads and their connections
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A handler thread for the connection, or with `max_connections` open already a 503 and close:
        slow or idle clients cannot make the server start threads without bound."""
        with self.idle_lock:
            full = self.connections >= self.app.limits.max_connections
            self.connections += not full
        if not full:
            thread = threading.Thread(target=self.process_request_thread, args=(request, client_address), daemon=True)
            with self.idle_lock:
                self.handlers[thread] = request
            thread.start()
            return
        limit = self.app.limits.max_connections
        message = f"{limit} connections are open, this server's limit (--max-connections): try again"
        body = json.dumps({"error": message}).encode()
        app = self.app  # CORS as on every reply; the request is not read, so its Origin is unknown (`*` still says)
        cors = "".join(f"{key}: {value}\r\n" for key, value in app.cors_headers(app.cors_origin(None)).items())
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
                f"Content-Length: {len(body) + 1}\r\nRetry-After: 1\r\n{cors}Connection: close\r\n\r\n")  # fmt: skip
        try:
            request.sendall(head.encode() + body + b"\n")
        except OSError:
            pass
        self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.idle_lock:
                self.connections -= 1
                self.handlers.pop(threading.current_thread(), None)

    def server_close(self, wait_s: float | None = None) -> None:
        """Close the listening socket and wait for the handler threads: requests in flight finish (each
        answered within `--max-request-s`, its reply written within `--max-read-s`), a request still being
        sent ends within transport.READ_SLICE_S. After `wait_s` (default: those two and STOP_GRACE_S) the connections
        left are shut down, so no client can keep the server from stopping."""
        super().server_close()
        limits = self.app.limits
        wait_s = limits.max_request_s + limits.max_read_s + STOP_GRACE_S if wait_s is None else wait_s
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0 and (threads := list(self.handlers)):
            threads[0].join(left)
        with self.idle_lock:
            stuck = dict(self.handlers)
        if not stuck:
            return
        log.warning("stopping: %d connections still open after %.0f s: closing them", len(stuck), wait_s)
        for conn in stuck.values():
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in stuck:
            thread.join(1.0)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # not http.server.HTTPServer's: no getfqdn() (a DNS lookup) at start
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("connection from %s: %s", client_address[0], sys.exc_info()[1])

    def close_idle(self) -> None:
        """Stopping: close every connection waiting for a request; the busy ones close after their reply."""
        with self.idle_lock:
            self.stopping = True
            for conn in self.idle:
                try:
                    conn.shutdown(socket.SHUT_RDWR)  # its handler's read ends: the thread finishes
                except OSError:
                    pass


class HTTPServer6(HTTPServer):
    address_family = socket.AF_INET6
