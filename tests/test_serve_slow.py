"""Slow clients cannot hold `seq2seq serve` (docs/serving.md, "Connections"): a whole request (request
line, headers, body) has `--max-read-s`, however it trickles in (one deadline, not one per read: a byte
every few seconds used to keep a handler thread, and a --max-connections slot, forever); stopping cuts
off the requests still being sent and does not wait on them; the wait for the handler threads is bounded.

In-process servers over the tiny trained model (conftest `run_dir`), real sockets.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from seq2seq.config import DecodeConfig
from seq2seq.serve.limits import ServeLimits
from seq2seq.serve.server import TranslationServer
from seq2seq.translation.torch_engine import Translator

if TYPE_CHECKING:
    from pathlib import Path

HEAD = b"POST /translate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def tiny(run_dir: Path) -> Translator:
    return Translator.from_checkpoint(run_dir / "best.pt")


def _connect(server: TranslationServer) -> socket.socket:
    parts = urlsplit(server.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=5)


def _trickle(sock: socket.socket, start: bytes, every_s: float = 0.2) -> threading.Event:
    """Send `start`, then one byte every `every_s` until the connection fails or the event is set."""
    done = threading.Event()
    sock.sendall(start)

    def drip() -> None:
        while not done.wait(every_s):
            try:
                sock.sendall(b"a")
            except OSError:
                return

    threading.Thread(target=drip, daemon=True).start()
    return done


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection (a socket timeout fails the test)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _wait_for(condition, what: str, timeout: float = 5.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.mark.parametrize(
    "start",
    [HEAD + b"X-Slow: ", HEAD + b'Content-Length: 1000\r\n\r\n{"sentences": ["'],
    ids=["headers", "body"],
)
def test_a_request_trickling_in_gets_408_when_its_time_is_up(tiny: Translator, start: bytes) -> None:
    """A byte every 0.2 s: each read is quick, the request never ends. It has max_read_s in all (1 s),
    then a 408 and the connection closes; its --max-connections slot is free again."""
    with TranslationServer(tiny, DecodeConfig(beam_size=1), ServeLimits(max_read_s=1.0)) as server:
        with _connect(server) as sock:
            started = time.monotonic()
            done = _trickle(sock, start)
            try:
                reply = _read_all(sock)
            finally:
                done.set()
            took = time.monotonic() - started
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408") and b"Connection: close" in head
        assert json.loads(body) == {"error": "the request was not sent within 1 s (--max-read-s)"}
        assert 0.9 < took < 2.5
        _wait_for(lambda: server.httpd.connections == 0, "the connection still holds its slot")


def test_an_idle_connection_is_closed_without_a_reply(tiny: Translator) -> None:
    with TranslationServer(tiny, DecodeConfig(beam_size=1), ServeLimits(max_read_s=0.5)) as server:
        with _connect(server) as sock:
            started = time.monotonic()
            assert _read_all(sock) == b""  # nothing was asked: nothing answered, the connection closes
            assert 0.4 < time.monotonic() - started < 2.0


def test_stopping_cuts_off_a_request_still_being_sent(tiny: Translator) -> None:
    """With the default 30 s to send a request, stopping does not wait for it: the client gets a 503
    and the connection closes, and stop() returns within a second or two."""
    server = TranslationServer(tiny, DecodeConfig(beam_size=1)).start()
    with _connect(server) as sock:
        done = _trickle(sock, HEAD + b"X-Slow: ")
        _wait_for(lambda: server.httpd.connections == 1, "the connection was never accepted")
        time.sleep(0.3)  # the request line and some headers are in: the request is part-way
        stopper = threading.Thread(target=server.stop)
        started = time.monotonic()
        stopper.start()
        stopper.join(timeout=5)
        took = time.monotonic() - started
        try:
            reply = _read_all(sock)
        finally:
            done.set()
    stopper.join()  # (a failing server stops when the trickle does, 30 s later)
    assert took < 2.0, f"stop() took {took:.1f} s"
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"Connection: close" in head
    assert json.loads(body) == {"error": "this server is stopping: send the request again"}


def test_stopping_answers_a_request_line_part_way_503(tiny: Translator) -> None:
    """A connection counted as idle until its whole request line was in: stopping closed it unanswered."""
    server = TranslationServer(tiny, DecodeConfig(beam_size=1)).start()
    with _connect(server) as sock:
        sock.sendall(b"POST /trans")  # part of a request line, then nothing
        _wait_for(lambda: server.httpd.connections == 1, "the connection was never accepted")
        time.sleep(0.3)  # its bytes are in
        server.stop()
        reply = _read_all(sock)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"Connection: close" in head, reply
    assert json.loads(body) == {"error": "this server is stopping: send the request again"}


def test_a_pipelined_request_left_part_way_gets_408_when_its_time_is_up(tiny: Translator) -> None:
    """The start of a second request, sent with the first, waited as an idle connection: closed unanswered."""
    with TranslationServer(tiny, DecodeConfig(beam_size=1), ServeLimits(max_read_s=1.0)) as server:
        with _connect(server) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\nGET /hea")
            started = time.monotonic()
            reply = _read_all(sock)
            took = time.monotonic() - started
    first, second = reply.split(b"HTTP/1.1 ")[1:]  # the health reply, then the refusal
    assert first.startswith(b"200 ") and second.startswith(b"408 ") and b"Connection: close" in second, reply
    error = json.loads(second.partition(b"\r\n\r\n")[2])["error"]
    assert error == "the request was not sent within 1 s (--max-read-s)"
    assert 0.9 < took < 2.5


def test_the_wait_for_handler_threads_is_bounded(tiny: Translator) -> None:
    """A handler that never finishes (here: a translation stuck outside the batcher's budget) cannot
    keep server_close() waiting past its bound: its connection is shut down and close returns."""
    server = TranslationServer(tiny, DecodeConfig(beam_size=1)).start()
    release = threading.Event()
    server.translate_body = lambda body, gone=None: release.wait(30) and {"translations": []}  # type: ignore[method-assign]
    try:
        with _connect(server) as sock:
            body = b'{"sentences": ["red cat"]}'
            sock.sendall(HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            _wait_for(lambda: server.httpd.connections == 1, "the connection was never accepted")
            time.sleep(0.2)
            server.httpd.shutdown()
            server.httpd.close_idle()
            started = time.monotonic()
            server.httpd.server_close(wait_s=0.5)
            took = time.monotonic() - started
            assert _read_all(sock) == b""  # its connection was shut down
        assert took < 2.0, f"server_close() took {took:.1f} s"
    finally:
        release.set()
        server.batcher.stop()
