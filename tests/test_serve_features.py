"""What `seq2seq serve` answers beyond `{"translations": [...]}` (issue 29: 3): n-best with scores,
alignments and attention per request, several models, CORS, keep-alive, OpenNMT-py's route.

In-process servers over the tiny trained model (conftest `run_dir`), a real HTTP client; every reply
is checked against the library's own answer (`translate_nbest`, `translate_aligned`), and the
default reply against the one of before: opt-in fields only.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
import pytest

from seq2seq.config import ConfigError, DecodeConfig
from seq2seq.serve.limits import ServeLimits
from seq2seq.serve.server import TranslationServer, check_origins, parse_models
from seq2seq.translation.torch_engine import Translator

if TYPE_CHECKING:
    from pathlib import Path

SENTENCES = ["red cat", "big old dog", "", "new house tree"]
PAGE = "http://page.example:8080"  # an origin allowed to call the server


@pytest.fixture(scope="module")
def tiny(run_dir: Path) -> Translator:
    return Translator.from_checkpoint(run_dir / "best.pt")


class Shouting:
    """A second model: the tiny one's translations upper-cased (a request reaching it shows)."""

    def __init__(self, inner: Translator) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def translate(self, sentences: list[str], cfg: DecodeConfig) -> list[str]:
        return [s.upper() + "!" for s in self.inner.translate(sentences, cfg)]


@pytest.fixture(scope="module")
def server(tiny: Translator, run_dir: Path):
    models = {"tiny": tiny, "loud": Shouting(tiny)}
    paths = {"tiny": str(run_dir / "best.pt"), "loud": "shouting"}
    limits = ServeLimits(max_n_best=3, max_attention_sentences=4, max_attention_weights=50_000)
    with TranslationServer(models, DecodeConfig(beam_size=2), limits, model=paths, allow_origins=[PAGE]) as running:
        yield running


def _request(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None,
             headers: dict | None = None) -> tuple[int, http.client.HTTPResponse, Any]:  # fmt: skip
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    conn.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
    reply = conn.getresponse()
    raw = reply.read()
    return reply.status, reply, json.loads(raw) if raw else None


def _call(url: str, method: str, path: str, body: Any = None, headers: dict | None = None) -> tuple[int, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        status, _, reply = _request(conn, method, path, body, headers)
        return status, reply
    finally:
        conn.close()


# --- n-best, scores, alignments, attention --------------------------------------------------------


def test_the_default_reply_is_unchanged(server: TranslationServer, tiny: Translator) -> None:
    assert _call(server.url, "POST", "/translate", {"sentences": SENTENCES}) == (
        200, {"translations": tiny.translate(SENTENCES, beam_size=2)}
    )  # fmt: skip


def test_n_best_and_scores_are_the_librarys(server: TranslationServer, tiny: Translator) -> None:
    status, reply = _call(server.url, "POST", "/translate", {"sentences": SENTENCES, "beam_size": 3, "n_best": 3})
    expected = tiny.translate_nbest(SENTENCES, beam_size=3, n_best=3)
    assert status == 200 and set(reply) == {"translations", "hypotheses"}
    assert reply["translations"] == [hyps[0][0] if hyps else "" for hyps in expected]
    assert [[h["text"] for h in hyps] for hyps in reply["hypotheses"]] == [[t for t, _ in hyps] for hyps in expected]
    for got, want in zip(reply["hypotheses"], expected):
        assert [set(h) for h in got] == [{"text", "score", "log_prob"}] * len(want)
        assert [h["score"] for h in got] == pytest.approx([h.score for _, h in want], abs=1e-5)
        assert [h["log_prob"] for h in got] == pytest.approx([h.log_prob for _, h in want], abs=1e-5)
    one = _call(server.url, "POST", "/translate", {"sentences": ["red cat"], "scores": True})[1]
    assert [len(h) for h in one["hypotheses"]] == [1]  # scores alone: the best hypothesis with its score


def test_alignments_and_attention_are_the_librarys(server: TranslationServer, tiny: Translator) -> None:
    body = {"sentences": SENTENCES, "n_best": 2, "alignments": True}
    reply = _call(server.url, "POST", "/translate", body)[1]
    expected = tiny.translate_aligned(SENTENCES, beam_size=2, n_best=2)
    assert [[(h["text"], h["alignment"]) for h in hyps] for hyps in reply["hypotheses"]] == [
        [(a.text, str(a.alignment)) for a in hyps] for hyps in expected
    ]
    assert all("attention" not in h for hyps in reply["hypotheses"] for h in hyps)
    reply = _call(server.url, "POST", "/translate", {"sentences": SENTENCES, "attention": True})[1]
    for hyps, want in zip(reply["hypotheses"], tiny.translate_aligned(SENTENCES, beam_size=2)):
        assert len(hyps) == len(want)
        for h, a in zip(hyps, want):
            att = h["attention"]
            assert h["alignment"] == str(a.alignment)  # attention brings the alignment along
            assert (att["src_pieces"], att["tgt_pieces"]) == (
                list(a.alignment.src_pieces),
                list(a.alignment.tgt_pieces),
            )
            assert att["src_pieces"][-1] == att["tgt_pieces"][-1] == "</s>"
            assert (att["src_words"], att["tgt_words"]) == (list(a.alignment.src_words), a.text.split())
            assert len(att["weights"]) == len(att["tgt_pieces"]) == len(att["tgt_word_of_piece"])
            assert {len(row) for row in att["weights"]} == {len(att["src_pieces"])} == {len(att["src_word_of_piece"])}
            np.testing.assert_allclose(att["weights"], a.alignment.attention, atol=5e-4)  # 3 decimals
            assert att["src_word_of_piece"][-1] is None and att["tgt_word_of_piece"][-1] is None


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (
            {"sentences": ["a"], "beam_size": 4, "n_best": 4},
            400,
            "n_best 4 is over this server's limit of 3 (--max-n-best)",
        ),
        ({"sentences": ["a"] * 5, "attention": True}, 413, "5 sentences with attention in one request: the limit is 4"),
        (  # 4 x 3 x (2 S + 1000) x S weights for S source pieces, before any work
            {"sentences": ["a b c d"] * 4, "attention": True, "beam_size": 3, "n_best": 3, "max_len_b": 1000},
            413,
            "attention for 4 sentences x n_best 3 could hold",
        ),
        ({"sentences": ["a"], "scores": "yes"}, 400, '"scores" must be true or false, got a string ("yes")'),
        ({"sentences": ["a"], "alignments": 1}, 400, '"alignments" must be true or false'),
        (
            {"sentences": ["a"], "model": "nope"},
            400,
            "no model 'nope' on this server: it serves tiny, loud (GET /models)",
        ),
        ({"sentences": ["a"], "model": 3}, 400, '"model" must be a string'),
    ],
)
def test_reply_options_out_of_range_are_one_line_errors(server: TranslationServer, body: dict, status: int,
                                                        words: str) -> None:  # fmt: skip
    got, reply = _call(server.url, "POST", "/translate", body)
    assert (got, list(reply)) == (status, ["error"]) and words in reply["error"]


def test_alignments_are_bounded_by_the_memory_budget_not_the_attention_weights(tiny: Translator) -> None:
    """A review of 2026-12-06: `"alignments": true` (the page sends it always) counted against
    --max-attention-weights, sized for the JSON of matrices its reply does not send: 413 where it was 200. What
    the reply keeps (every hypothesis's attention, in one part: the library would search in parts and still hold
    them all) is checked against the memory budget: over it, one-line 400."""
    cfg, limits = DecodeConfig(beam_size=2, memory_budget_gb=0.005), ServeLimits(max_attention_weights=100)
    with TranslationServer(tiny, cfg, limits) as server:  # each search: a fifth of 5 MB (batcher.MAX_DEPTH)
        body = {"sentences": SENTENCES, "n_best": 2, "alignments": True}  # ~1,000 weights: over the 100
        status, reply = _call(server.url, "POST", "/translate", body)
        expected = tiny.translate_aligned(SENTENCES, beam_size=2, n_best=2)
        assert status == 200 and [[h["alignment"] for h in hyps] for hyps in reply["hypotheses"]] == [
            [str(a.alignment) for a in hyps] for hyps in expected
        ]
        assert _call(server.url, "POST", "/translate", {**body, "attention": True})[0] == 413  # matrices sent: bound
        big = {"sentences": ["red cat"] * 20, "n_best": 2, "alignments": True, "max_len_b": 200}  # ~2.5 MB kept
        status, reply = _call(server.url, "POST", "/translate", big)
        assert (status, list(reply)) == (400, ["error"]) and "\n" not in reply["error"]
        assert "attention kept" in reply["error"] and "memory_budget_gb" in reply["error"]
        # n-best lists with scores are held for the reply too: the whole request as one part, not searched in parts
        many = {"sentences": ["red cat"] * 200, "n_best": 8, "beam_size": 8, "scores": True, "max_len_b": 1000}
        status, reply = _call(server.url, "POST", "/translate", many)
        assert (status, list(reply)) == (400, ["error"]) and "n-best lists of 200 sentences" in reply["error"]


def test_a_default_n_best_over_the_limit_is_refused_at_start(tiny: Translator) -> None:
    with pytest.raises(ConfigError, match=r"the default n_best 9 is over this server's limit of 8"):
        TranslationServer(tiny, DecodeConfig(beam_size=10, n_best=9))


# --- several models -----------------------------------------------------------------------------


def test_several_models_are_listed_and_chosen_by_name(server: TranslationServer, tiny: Translator, run_dir) -> None:
    status, models = _call(server.url, "GET", "/models")
    assert status == 200 and models["default"] == "tiny"
    assert [(m["name"], m["path"], m["engine"]) for m in models["models"]] == [
        ("tiny", str(run_dir / "best.pt"), "torch"), ("loud", "shouting", "torch")
    ]  # fmt: skip
    health = _call(server.url, "GET", "/health")[1]
    assert (health["models"], health["model"]) == (["tiny", "loud"], str(run_dir / "best.pt"))
    plain = tiny.translate(["red cat"], beam_size=2)
    assert _call(server.url, "POST", "/translate", {"sentences": ["red cat"]})[1]["translations"] == plain
    loud = _call(server.url, "POST", "/translate", {"sentences": ["red cat"], "model": "loud"})[1]
    assert loud["translations"] == [plain[0].upper() + "!"]


def test_model_flags_are_checked() -> None:
    assert parse_models(["de-en=a.pt", "fr.v2=b.onnx.zip"]) == {"de-en": "a.pt", "fr.v2": "b.onnx.zip"}
    for bad, words in (["a.pt"], "give NAME=PATH"), (["x=a", "x=b"], "'x' is given twice"), (["=a"], "NAME=PATH"):
        with pytest.raises(ConfigError, match=words):
            parse_models(bad)


# --- CORS ---------------------------------------------------------------------------------------


def test_a_preflight_from_an_allowed_origin_says_what_it_may_send(server: TranslationServer) -> None:
    headers = {
        "Origin": PAGE,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("OPTIONS", "/translate", headers=headers)
    reply = conn.getresponse()
    assert (reply.status, reply.read()) == (204, b"")
    assert reply.getheader("Access-Control-Allow-Origin") == PAGE
    assert reply.getheader("Access-Control-Allow-Methods") == "POST, OPTIONS"
    assert reply.getheader("Access-Control-Allow-Headers") == "Content-Type"
    assert reply.getheader("Access-Control-Max-Age") == "600"
    assert reply.getheader("Vary") == "Origin" and reply.getheader("Content-Length") is None
    conn.close()
    status, refused = _call(server.url, "OPTIONS", "/translate", None, {**headers, "Origin": "http://evil.example"})
    assert (
        status == 403 and "origin 'http://evil.example' is not allowed: this server allows " + PAGE in refused["error"]
    )


def test_replies_carry_allow_origin_for_allowed_origins_only_errors_included(server: TranslationServer) -> None:
    parts = urlsplit(server.url)
    for origin, expected in ((PAGE, PAGE), ("http://evil.example", None), (None, None)):
        for body, status in (({"sentences": ["red cat"]}, 200), ({"sentences": ["a"], "beam": 2}, 400)):
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            got, reply, _ = _request(conn, "POST", "/translate", body, {"Origin": origin} if origin else {})
            assert got == status  # served either way: CORS tells the browser what to show, it is not access control
            assert reply.getheader("Access-Control-Allow-Origin") == expected and reply.getheader("Vary") == "Origin"
            conn.close()


def test_cors_is_off_by_default_and_star_allows_any_origin(tiny: Translator) -> None:
    preflight = {"Origin": PAGE, "Access-Control-Request-Method": "POST"}
    with TranslationServer(tiny) as closed, TranslationServer(tiny, allow_origins=["*"]) as star:
        parts = urlsplit(closed.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        status, reply, body = _request(conn, "OPTIONS", "/translate", None, preflight)
        assert status == 405 and reply.getheader("Access-Control-Allow-Origin") is None  # as before: no OPTIONS
        status, reply, _ = _request(conn, "POST", "/translate", {"sentences": ["red cat"]}, {"Origin": PAGE})
        assert status == 200 and reply.getheader("Access-Control-Allow-Origin") is None
        parts = urlsplit(star.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        status, reply, _ = _request(conn, "OPTIONS", "/health", None, {**preflight, "Origin": "http://any.example"})
        assert (status, reply.getheader("Access-Control-Allow-Origin")) == (204, "*")
        assert (
            reply.getheader("Access-Control-Allow-Methods") == "GET, HEAD, OPTIONS" and reply.getheader("Vary") is None
        )
    assert check_origins(["*", "null", "https://a.example", "http://[::1]:8080"])
    for bad in ("http://a.example/", "a.example", "http://a.example/page"):
        with pytest.raises(ConfigError, match="an origin is SCHEME://HOST"):
            check_origins([bad])


# --- keep-alive -----------------------------------------------------------------------------------


def test_one_connection_carries_several_requests(server: TranslationServer, tiny: Translator) -> None:
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.connect()
    sock = conn.sock
    bodies = [("POST", "/translate", {"sentences": ["red cat"]}, 200), ("GET", "/health", None, 200),
              ("POST", "/translate", {"sentences": ["a"], "beam": 1}, 400), ("GET", "/nothing", None, 404),
              ("POST", "/translate", {"sentences": ["big old dog"]}, 200)]  # fmt: skip
    for method, path, body, status in bodies:
        got, reply, answer = _request(conn, method, path, body)
        assert got == status and reply.getheader("Content-Length") is not None
        assert reply.getheader("Connection") is None and conn.sock is sock  # the same connection, still open
    assert answer == {"translations": tiny.translate(["big old dog"], beam_size=2)}
    conn.close()


def _raw(url: str, data: bytes) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):  # the server closes the connection: the loop ends
            out += chunk
    return out


def test_the_connection_closes_when_asked_or_when_its_rest_is_unreadable(server: TranslationServer) -> None:
    body = b'{"sentences": ["red cat"]}'
    head = (b"POST /translate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n" % len(body))  # fmt: skip
    assert b"Connection: close" in _raw(server.url, head + b"Connection: close\r\n\r\n" + body)
    old = _raw(server.url, b"GET /health HTTP/1.0\r\n\r\n")  # HTTP/1.0: one request (the server closes)
    assert old.startswith(b"HTTP/1.1 200") and b"Connection: close" in old
    two = _raw(server.url, head + b"\r\n" + body + head + b"Connection: close\r\n\r\n" + body)
    assert two.count(b"HTTP/1.1 200 OK") == 2  # pipelined on one connection, both answered
    chunked = b"POST /translate HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"5\r\nhello\r\n0\r\n\r\n"
    assert b"411" in _raw(server.url, chunked).split(b"\r\n")[0] and b"Connection: close" in _raw(server.url, chunked)


def test_stopping_does_not_wait_for_an_idle_kept_alive_connection(tiny: Translator) -> None:
    running = TranslationServer(tiny).start()
    parts = urlsplit(running.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    assert _request(conn, "GET", "/health")[0] == 200  # the connection stays open, idle
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 5  # not the 30 s idle timeout
    conn.close()


# --- OpenNMT-py's route -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nbest_server(tiny: Translator):
    with TranslationServer({"100": tiny}, DecodeConfig(beam_size=3, n_best=2)) as running:
        yield running


def test_opennmt_clients_get_opennmts_reply(nbest_server: TranslationServer, tiny: Translator) -> None:
    request = [{"src": "red cat", "id": 100}, {"src": " big old dog "}, {"src": ""}]
    status, reply = _call(nbest_server.url, "POST", "/translator/translate", request)
    expected = tiny.translate_nbest(["red cat", "big old dog", ""], beam_size=3, n_best=2)
    assert status == 200 and len(reply) == 2  # one list per rank
    for rank, items in enumerate(reply):
        assert [set(item) for item in items] == [{"src", "tgt", "n_best", "pred_score"}] * 3
        assert [item["src"] for item in items] == ["red cat", " big old dog ", ""]
        assert [item["n_best"] for item in items] == [2, 2, 2]
        assert items[0]["tgt"] == expected[0][rank][0] and items[1]["tgt"] == f" {expected[1][rank][0]} "
        assert items[0]["pred_score"] == pytest.approx(expected[0][rank][1].score)
        assert (items[2]["tgt"], items[2]["pred_score"]) == ("", 0.0)
    assert _call(nbest_server.url, "POST", "/translator/translate", []) == (200, [[], []])
    assert _call(nbest_server.url, "GET", "/translator/health") == (200, {"status": "ok"})
    models = _call(nbest_server.url, "GET", "/translator/models")[1]
    assert [(m["model_id"], m["loaded"], m["opt"]["n_best"]) for m in models] == [(100, True, 2)]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([{"src": "red cat", "id": 7}], "No such model '7': this server serves 100"),
        ({"src": "red cat"}, "body must be a JSON array"),
        ([{"src": 5}], '[0]["src"] must be a string'),
        ([{"src": "a", "ref": "b"}], "[0] has 'ref'"),
        ([{"src": "a", "id": 100}, {"src": "b", "id": 7}], "the items name different models"),
    ],
)
def test_opennmt_errors_are_one_line_with_its_status_field(
    nbest_server: TranslationServer, body: Any, words: str
) -> None:
    status, reply = _call(nbest_server.url, "POST", "/translator/translate", body)
    assert status == 400 and reply["status"] == "error" and words in reply["error"]


# --- the command line ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--model", "a.pt"], "--model 'a.pt': give NAME=PATH"),
        (["--checkpoint", "CKPT", "--allow-origin", "http://a.example/"], "--allow-origin 'http://a.example/': an"),
        (["--model", "x=CKPT", "--model", "y=no/such.pt"], "no/such.pt"),
        (["--checkpoint", "no/such.pt", "--port", "70000"], "--port must be in [0, 65535], got 70000"),  # not loaded
        (["--checkpoint", "no/such.pt", "--host", ""], "--host '' names no address"),  # not 0.0.0.0 unsaid
        (["--checkpoint", "no/such.pt", "--allow-host", "box:80"], "--allow-host 'box:80': give a name"),
    ],
)
def test_serve_start_up_errors_are_one_line_exit_2(run_dir: Path, flags: list[str], words: str) -> None:
    flags = [f.replace("CKPT", str(run_dir / "best.pt")) for f in flags]
    proc = subprocess.run([sys.executable, "-m", "seq2seq", "serve", "--port", "0", *flags], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert (proc.returncode, proc.stdout) == (2, "") and proc.stderr.count("\n") == 1 and words in proc.stderr


def test_a_port_in_use_is_one_line_and_exit_1(tiny: Translator, run_dir: Path) -> None:
    """A failed bind called server_close() before the server had its app: an AttributeError, not the line."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError) as refused:
            TranslationServer(tiny, DecodeConfig(beam_size=1), port=port)
        assert refused.value.strerror == f"cannot listen on 127.0.0.1:{port}: Address already in use"
        proc = subprocess.run([sys.executable, "-m", "seq2seq", "serve", "--checkpoint", str(run_dir / "best.pt"),
                               "--port", str(port)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert (proc.returncode, proc.stdout) == (1, ""), proc.stderr
    assert proc.stderr == f"seq2seq serve: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_checkpoint_and_model_are_exclusive() -> None:
    proc = subprocess.run([sys.executable, "-m", "seq2seq", "serve", "--checkpoint", "a.pt", "--model", "b=b.pt"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr


def test_connections_over_the_limit_are_answered_503_and_closed(tiny: Translator) -> None:
    """Each open connection holds a handler thread: with --max-connections open (idle, or sending
    slowly), one more gets a one-line 503 and is closed; once one closes, requests are served again."""
    with TranslationServer(tiny, DecodeConfig(beam_size=1), ServeLimits(max_connections=2)) as server:
        parts = urlsplit(server.url)
        idle = [socket.create_connection((parts.hostname, parts.port), timeout=10) for _ in range(2)]
        deadline = time.monotonic() + 10
        while server.httpd.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as extra:
            reply = b""
            while chunk := extra.recv(65536):  # the server closes it after the reply
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in head
        assert json.loads(body) == {"error": "2 connections are open, this server's limit (--max-connections): "
                                             "try again"}  # fmt: skip
        idle.pop().close()
        while server.httpd.connections > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _call(server.url, "GET", "/health")[0] == 200
        idle.pop().close()


@pytest.mark.parametrize(("origins", "header"), [(["*"], b"Access-Control-Allow-Origin: *"), ([PAGE], b"Vary: Origin")])
def test_the_503_over_the_connection_limit_carries_cors_headers(tiny: Translator, origins: list, header: bytes) -> None:
    """Every other reply has them; a page allowed by `*` could not read this one's message."""
    limits = ServeLimits(max_connections=1)
    with TranslationServer(tiny, DecodeConfig(beam_size=1), limits, allow_origins=origins) as server:
        parts = urlsplit(server.url)
        with socket.create_connection((parts.hostname, parts.port), timeout=10):
            deadline = time.monotonic() + 10
            while server.httpd.connections < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            with socket.create_connection((parts.hostname, parts.port), timeout=10) as extra:
                reply = b""
                while chunk := extra.recv(65536):
                    reply += chunk
    head = reply.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 503") and header in head.split(b"\r\n"), head
