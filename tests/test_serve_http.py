"""HTTP details of `seq2seq serve` a reviewer found wrong (docs/serving.md, "Errors" and "Connections"):
hang-up detection on descriptors over 1023, one unambiguous Content-Length, HEAD wherever GET works,
no HTTP/0.9 replies, and POST bodies that must say they are JSON (no cross-origin form or text/plain
POST without a CORS preflight).

In-process servers over the tiny trained model (conftest `run_dir`), real sockets.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import socket
from types import SimpleNamespace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from test_serve_limits import Endless

from seq2seq.config import ConfigError, DecodeConfig
from seq2seq.serve.batcher import RequestError
from seq2seq.serve.limits import ServeLimits
from seq2seq.serve.server import TranslationServer, check_hosts, host_names
from seq2seq.serve.transport import Handler
from seq2seq.translation.torch_engine import Translator

if TYPE_CHECKING:
    from pathlib import Path

BODY = b'{"sentences": ["red cat"]}'


@pytest.fixture(scope="module")
def tiny(run_dir: Path) -> Translator:
    return Translator.from_checkpoint(run_dir / "best.pt")


@pytest.fixture(scope="module")
def server(tiny: Translator):
    with TranslationServer({"tiny": tiny, "100": tiny}, DecodeConfig(beam_size=1)) as running:
        yield running


def _raw(server: TranslationServer, data: bytes) -> bytes:
    """Send `data` on one connection; everything the server answers until it closes (a 5 s stall fails)."""
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def _post(server: TranslationServer, headers: bytes, body: bytes = BODY, path: str = "/translate") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".encode()
    return _raw(server, head + headers + b"\r\n" + body)


def _status(reply: bytes) -> tuple[int, dict]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


# --- 2: hang-up detection on any descriptor ---------------------------------------------------------


def test_a_request_on_a_descriptor_over_1023_is_answered(run_dir: Path) -> None:
    """select() cannot watch a descriptor over 1023 (ValueError): the hang-up check took that for a
    client gone, and every translation over 0.1 s on such a connection (a server with a thousand
    connections open) was dropped without a reply."""
    translator = Endless()  # 4 ms per decoder step: 60 steps take 0.24 s, the hang-up check runs
    request = json.dumps({"sentences": ["a b"], "beam_size": 1, "max_len_a": 0.0, "max_len_b": 60})
    filler: list[int] = []
    with TranslationServer(translator, limits=ServeLimits(max_output_len=100)) as running:
        parts = urlsplit(running.url)
        try:
            while not filler or filler[-1] < 1030:  # every lower descriptor taken: the next ones are over 1023
                filler.append(os.open(os.devnull, os.O_RDONLY))
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            conn.request("POST", "/translate", request, {"Content-Type": "application/json"})
            assert conn.sock.fileno() > 1024
            reply = conn.getresponse()
            assert (reply.status, json.loads(reply.read())) == (200, {"translations": ["x" * 59]})  # 59 + EOS
            conn.close()
        finally:
            for fd in filler:
                os.close(fd)
    assert translator.steps >= 59


def test_a_hang_up_is_still_seen_on_a_descriptor_over_1023() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        high = os.dup2(ours.fileno(), 1100)
        with socket.socket(fileno=high) as conn:
            handler = SimpleNamespace(connection=conn)
            assert Handler._client_gone(handler) is False  # type: ignore[arg-type]
            theirs.sendall(b"GET /health HTTP/1.1\r\n")  # a pipelined request: still there
            assert Handler._client_gone(handler) is False  # type: ignore[arg-type]
            conn.recv(100)
            theirs.close()
            assert Handler._client_gone(handler) is True  # type: ignore[arg-type]


# --- 3: one unambiguous Content-Length ---------------------------------------------------------------


def test_two_different_content_lengths_are_400_and_nothing_after_them_runs(server: TranslationServer) -> None:
    """Request smuggling: with two lengths, a proxy and this server could read different bodies; the
    first used to win and the rest ran as a second request on the kept-alive connection."""
    smuggled = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
    data = (b"POST /translate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Content-Length: %d\r\n\r\n%s%s") % (len(BODY), len(BODY) + len(smuggled), BODY, smuggled)  # fmt: skip
    reply = _raw(server, data)
    assert reply.count(b"HTTP/1.1 ") == 1 and b"Connection: close" in reply  # one reply, then closed
    status, body = _status(reply)
    assert status == 400 and body["error"] == 'the request has 2 different Content-Length headers ("26", "67")'


@pytest.mark.parametrize("value", ["+26", "1_26", "0x1a", "26.0", "-1", "26, 26", "\u0662\u0666", "\u200326"])
def test_a_content_length_that_is_not_ascii_digits_is_400(server: TranslationServer, value: str) -> None:
    reply = _post(server, f"Content-Type: application/json\r\nContent-Length: {value}\r\n".encode())
    status, body = _status(reply)
    assert status == 400 and "is not a byte count (ASCII digits)" in body["error"]
    assert reply.count(b"HTTP/1.1 ") == 1 and b"Connection: close" in reply


@pytest.mark.parametrize(
    "lengths", [b"Content-Length: 26\r\n", b"Content-Length: 26\r\nContent-Length: 26\r\n", b"Content-Length:  26 \r\n"]
)
def test_one_length_given_once_twice_or_with_spaces_is_read(server: TranslationServer, lengths: bytes) -> None:
    assert _status(_post(server, b"Content-Type: application/json\r\n" + lengths))[0] == 200


# --- 4: HEAD, HTTP/0.9 ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/models", "/", "/translator/models"])
def test_head_is_answered_wherever_get_is(server: TranslationServer, path: str) -> None:
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.request("GET", path)
    got = conn.getresponse()
    body = got.read()
    conn.request("HEAD", path)  # on the same connection: no body follows the headers
    head = conn.getresponse()
    assert (head.status, head.read()) == (200, b"")
    assert head.getheader("Content-Length") == got.getheader("Content-Length") == str(len(body))
    assert head.getheader("Content-Type") == got.getheader("Content-Type")
    conn.request("HEAD", "/translate")
    refused = conn.getresponse()
    assert (refused.status, refused.getheader("Allow"), refused.read()) == (405, "POST", b"")
    conn.request("POST", path, BODY, {"Content-Type": "application/json"})
    refused = conn.getresponse()
    assert (refused.status, refused.getheader("Allow")) == (405, "GET, HEAD")
    conn.close()


def test_a_request_line_without_a_version_is_400_with_a_status_line(server: TranslationServer) -> None:
    reply = _raw(server, b"GET /health\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in reply
    assert _status(reply)[1] == {"error": "the request line has no HTTP version: send 'GET /health HTTP/1.1'"}


def test_a_refused_request_line_is_logged_with_its_method_and_path(
    server: TranslationServer, caplog: pytest.LogCaptureFixture
) -> None:
    """http.server refuses HTTP/2.0 (505) before it sets the method and path: the log names them anyway."""
    with caplog.at_level("INFO", logger="seq2seq"):
        reply = _raw(server, b"GET /health HTTP/2.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 505 ") or reply.startswith(b"HTTP/1.0 505 ")
    lines = [r.getMessage() for r in caplog.records if " 505 " in r.getMessage()]
    assert lines and lines[0].startswith("GET /health 505 "), lines


# --- 5: POST bodies must say they are JSON ----------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "application/json; charset=latin-1",
        "application/jsonp",
    ],  # fmt: skip
)
@pytest.mark.parametrize("path", ["/translate", "/translator/translate"])
def test_a_body_not_labelled_json_is_415_and_not_translated(
    server: TranslationServer, content_type: str | None, path: str
) -> None:
    """What a page on any site can POST here without a CORS preflight (a form, text/plain, an untyped
    body): it must not get a translation, or any page a user opens could use this server's CPU."""
    jobs = server.batcher.stats["jobs"]
    body = BODY if path == "/translate" else b'[{"src": "red cat"}]'
    header = b"" if content_type is None else f"Content-Type: {content_type}\r\n".encode()
    status, reply = _status(_post(server, header + b"Content-Length: %d\r\n" % len(body), body, path))
    shown = "none" if content_type is None else json.dumps(content_type)
    assert status == 415
    assert reply["error"] == f"Content-Type must be application/json (charset utf-8, if any), got {shown}"
    assert server.batcher.stats["jobs"] == jobs


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON", "application/json; charset=utf-8",
                                          'application/json;charset="UTF-8"'])  # fmt: skip
def test_json_bodies_are_translated(server: TranslationServer, content_type: str) -> None:
    reply = _post(server, f"Content-Type: {content_type}\r\nContent-Length: {len(BODY)}\r\n".encode())
    assert _status(reply)[0] == 200


# --- DNS rebinding: a loopback server answers its own names only (a review of 2026-12-06) -----------


def _get(server: TranslationServer, host: bytes | None, path: str = "/models") -> tuple[int, dict]:
    head = b"GET %s HTTP/1.1\r\nConnection: close\r\n" % path.encode()
    return _status(_raw(server, head + (b"" if host is None else b"Host: %s\r\n" % host) + b"\r\n"))


@pytest.mark.parametrize("host", [b"localhost", b"LocalHost:8000", b"127.0.0.1", b"127.0.0.1:80", b"[::1]:8000", None])
def test_a_loopback_server_answers_its_own_names(server: TranslationServer, host: bytes | None) -> None:
    assert _get(server, host)[0] == 200


MACHINE = socket.gethostname()  # this machine's name, as a browser on it may name it


MACHINE_NAMES = (b"localhost.", b"LOCALHOST.:8000", b"[0:0:0:0:0:0:0:1]", b"[0::1]:8000", b"127.0.0.2",
                 b"127.1.2.3.:80", b"ip6-localhost", b"IP6-Loopback:8000", b"[::ffff:127.0.0.1]", b"", b" ",
                 MACHINE.encode(), MACHINE.upper().encode() + b".:8000")  # fmt: skip


@pytest.mark.parametrize("host", MACHINE_NAMES)
def test_a_loopback_server_answers_every_name_of_this_machine(server: TranslationServer, host: bytes) -> None:
    """A review of 2026-12-06: these were 421 on the default 127.0.0.1 bind (an empty Host names nothing to rebind)."""
    assert _get(server, host)[0] == 200


def test_a_server_on_ipv6_loopback_answers_ip6_localhost(tiny: Translator) -> None:
    try:
        six = TranslationServer(tiny, DecodeConfig(beam_size=1), host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with six:
        assert [_get(six, host)[0] for host in (b"ip6-localhost", b"[::1]", b"localhost", b"x.example")] == [
            200, 200, 200, 421]  # fmt: skip


OTHER_NAMES = (b"attacker.example", b"attacker.example:8000", b"localhost.attacker.example", b"127.0.0.1.nip.io",
               b"attacker.example.", b"localhost..", b"[127.0.0.1]", b"2130706433", b"127.0.0.1.:x")  # fmt: skip


@pytest.mark.parametrize("host", OTHER_NAMES)
def test_a_loopback_server_refuses_other_host_names(server: TranslationServer, host: bytes) -> None:
    """A page on attacker.example whose name was pointed at 127.0.0.1 (DNS rebinding) read /models: 200."""
    jobs = server.batcher.stats["jobs"]
    status, reply = _get(server, host)
    assert status == 421 and list(reply) == ["error"] and "models" not in reply
    assert reply["error"].startswith(f"Host '{host.decode()}' is not a name of this server: it answers ")
    assert reply["error"].endswith("(--allow-host NAME adds one)") and "\n" not in reply["error"]
    body = b'{"sentences": ["red cat"]}'
    head = b"POST /translate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nConnection: close\r\n" % host
    assert _status(_raw(server, head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)))[0] == 421
    assert server.batcher.stats["jobs"] == jobs
    assert _status(_raw(server, b"GET /models HTTP/1.1\r\nHost: localhost\r\nHost: x\r\nConnection: close\r\n\r\n"))[
        0] == 421  # fmt: skip


def test_allow_host_adds_names_and_checks_the_host_on_any_address(tiny: Translator) -> None:
    with TranslationServer(tiny, DecodeConfig(beam_size=1), allow_hosts=["My-Box.local"]) as named:
        got = [_get(named, host)[0] for host in (b"my-box.local:8000", b"localhost", b"other.local")]
        assert got == [200, 200, 421]
    with TranslationServer(tiny, DecodeConfig(beam_size=1), host="0.0.0.0") as everywhere:
        assert _get(everywhere, b"any.example")[0] == 200  # reached by any name: nothing to rebind
    with TranslationServer(tiny, DecodeConfig(beam_size=1), host="0.0.0.0", allow_hosts=["box"]) as listed:
        assert [_get(listed, host)[0] for host in (b"box:8000", b"127.0.0.1", b"any.example")] == [200, 200, 421]


def test_allow_host_on_an_address_answers_that_address() -> None:
    """A review of 2026-12-06: --host 192.0.2.2 --allow-host translate.example refused its own address, the one
    of the URL it prints at start-up."""
    for bound, url in (("192.0.2.2", "192.0.2.2:8000"), ("2001:db8::2", "[2001:db8::2]:8000")):
        hosts = host_names(bound, check_hosts(["translate.example"]))
        app = SimpleNamespace(hosts=hosts)
        for value in (url, "translate.example", "localhost:8000"):
            TranslationServer.check_host(app, [value])  # type: ignore[arg-type]
        with pytest.raises(RequestError, match="is not a name of this server") as refused:
            TranslationServer.check_host(app, ["192.0.2.3:8000"])  # type: ignore[arg-type]
        assert refused.value.status == 421
    assert not host_names("0.0.0.0", ("box",)).answers("0.0.0.0")  # type: ignore[union-attr]  # not an address
    assert not host_names("::", ("box",)).answers("[::]")  # type: ignore[union-attr]


def test_allow_host_takes_a_name_without_a_port() -> None:
    with pytest.raises(ConfigError, match=r"--allow-host 'box:8000': give a name .* without the port"):
        check_hosts(["box:8000"])
    assert check_hosts(["Box.Local", "10.0.0.5", "[fe80::1]"]) == ("box.local", "10.0.0.5", "[fe80::1]")
    assert check_hosts(["my_box.local.", "Box.", "[FE80:0::1]"]) == ("my_box.local", "box", "[fe80::1]")
    with pytest.raises(ConfigError, match=r"--allow-host '\*' answers any name: the other --allow-host names would be"):
        check_hosts(["*", "box"])


def test_allow_host_star_turns_the_check_off(tiny: Translator) -> None:
    with TranslationServer(tiny, DecodeConfig(beam_size=1), allow_hosts=["*"]) as anyname:
        assert anyname.hosts is None and _get(anyname, b"any.example:8000")[0] == 200
    with TranslationServer(tiny, DecodeConfig(beam_size=1), allow_hosts=["My_Box.local."]) as named:
        got = [_get(named, host)[0] for host in (b"my_box.local", b"MY_BOX.LOCAL.:80", b"box.local")]
        assert got == [200, 200, 421]


# --- what a request would have had ignored ---------------------------------------------------------


@pytest.mark.parametrize("path", ["/translate?beam_size=1", "/translate?", "/translator/translate?x"])
def test_a_query_string_on_a_post_route_is_400_not_ignored(server: TranslationServer, path: str) -> None:
    """POST /translate?beam_size=1 translated with the server's beam: the query was dropped unread."""
    jobs = server.batcher.stats["jobs"]
    body = BODY if path.startswith("/translate?") else b'[{"src": "red cat"}]'
    head = b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    status, reply = _status(_post(server, head, body, path))
    route, query = path.split("?")
    assert (status, reply["error"]) == (400, f'the query string "?{query}" would be ignored: POST {route} reads none '
                                             "(decode options go in the JSON body of POST /translate)")  # fmt: skip
    assert server.batcher.stats["jobs"] == jobs


@pytest.mark.parametrize(("method", "path"), [("GET", "/health?x=1"), ("GET", "/?lang=de"), ("GET", "/models?"),
                                              ("HEAD", "/health?t=17"), ("GET", "/translator/health?x")])  # fmt: skip
def test_a_query_string_on_a_get_route_is_answered(server: TranslationServer, method: str, path: str) -> None:
    """A review of 2026-12-06: a cache-buster or a monitor's /health?x=1 got 400 (it asks for no option)."""
    reply = _raw(server, f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("coding", ["gzip", "deflate", "identity, gzip"])
def test_a_content_encoding_is_415_not_ignored(server: TranslationServer, coding: str) -> None:
    """A gzip body was read as if it were JSON (a confusing 400)."""
    body = gzip.compress(BODY) if coding.endswith("gzip") else BODY
    headers = f"Content-Type: application/json\r\nContent-Encoding: {coding}\r\nContent-Length: {len(body)}\r\n"
    status, reply = _status(_post(server, headers.encode(), body))
    assert (
        status == 415 and reply["error"] == f'Content-Encoding "{coding}" is not supported: send the body uncompressed'
    )


@pytest.mark.parametrize("coding", ["identity", "Identity", " IDENTITY "])
def test_content_encoding_identity_is_the_body_as_it_is(server: TranslationServer, coding: str) -> None:
    """A review of 2026-12-06: `Content-Encoding: identity` (no encoding) was a 415."""
    headers = f"Content-Type: application/json\r\nContent-Encoding: {coding}\r\nContent-Length: {len(BODY)}\r\n"
    assert _status(_post(server, headers.encode()))[0] == 200
