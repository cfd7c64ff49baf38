"""The load test (`python -m seq2seq.devtools.serve_load`, scripts/serve_load.sh) at several client
counts: a table and one JSON line, one row per level; what was dropped (no reply) and what failed
(not 200, or not one translation per sentence) is counted apart, and either makes the exit status 1."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest

from seq2seq.devtools.serve_load import main, run_load
from seq2seq.serve.server import TranslationServer
from seq2seq.translation.torch_engine import Translator

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def server(run_dir: Path):
    with TranslationServer(Translator.from_checkpoint(run_dir / "best.pt"), port=0) as running:
        yield running


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src.xx"
    path.write_text("red cat\nbig old dog\nsmall bird\n")
    return path


def test_each_level_is_a_row_of_the_table_and_of_the_json_line(server, source: Path, capsys) -> None:
    argv = ["--url", server.url, "--input", str(source), "--requests", "6", "--concurrency", "1,3", "--sentences", "2",
            "--options", '{"beam_size": 1}', "--warmup", "1"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| clients | requests | requests/s |") and lines[1].startswith("|---:")
    assert [row.split("|")[1].strip() for row in lines[2:4]] == ["1", "3"] and lines[4] == ""
    result = json.loads(lines[5])
    assert result["errors"] == 0 and [r["concurrency"] for r in result["levels"]] == [1, 3]
    for level in result["levels"]:
        assert level["requests"] == 6 and level["dropped"] == level["failed"] == 0  # the warm-up is not counted
        assert 0 < level["p50_ms"] <= level["p99_ms"] <= level["max_ms"]
        assert level["sentences_per_s"] == pytest.approx(2 * level["requests_per_s"], rel=0.01)


def test_a_duration_sends_requests_until_it_is_over(server, source: Path) -> None:
    result = run_load(server.url, ["red cat"], requests=1, concurrency=2, per_request=1, duration=0.5,
                      options={"beam_size": 1})  # fmt: skip
    assert result["requests"] > 2 and result["errors"] == 0 and result["wall_s"] >= 0.5


def test_refused_requests_are_failed_and_unanswered_ones_dropped(server, source: Path, capsys) -> None:
    argv = ["--input", str(source), "--requests", "3", "--concurrency", "1,2"]
    assert main(["--url", server.url, *argv, "--options", '{"beam_size": 0}']) == 1
    levels = json.loads(capsys.readouterr().out.splitlines()[-1])["levels"]
    assert [(r["failed"], r["dropped"]) for r in levels] == [(3, 0), (3, 0)]
    assert levels[0]["first_error"].startswith("400 ") and levels[0]["requests_per_s"] == 0
    with socket.socket() as closed:  # a port nobody listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert main(["--url", f"http://127.0.0.1:{port}", *argv[:4], "--concurrency", "2"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert (result["dropped"], result["failed"]) == (3, 0) and "ConnectionRefusedError" in result["first_error"]


class _WrongCount(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"translations": ["one"]}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


def test_a_200_without_one_translation_per_sentence_is_a_failure(source: Path) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _WrongCount)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        assert run_load(url, ["a", "b"], requests=2, concurrency=1, per_request=1)["failed"] == 0
        result = run_load(url, ["a", "b"], requests=2, concurrency=1, per_request=2)
        assert result["failed"] == 2 and result["first_error"] == "200 with 1 translations for 2 sentences"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_run_load_refuses_what_the_command_line_bounds(source: Path) -> None:
    """duration=nan sent nothing and reported success; the library refuses what `main`'s flags bound."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _WrongCount)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        for bad in ({"duration": float("nan")}, {"duration": float("inf")}, {"per_request": 100_001},
                    {"concurrency": 2, "per_request": 600_000}, {"requests": 1_000_001}):  # fmt: skip
            with pytest.raises(ValueError, match="out of bounds"):
                run_load(url, ["a"], **{"requests": 1, "concurrency": 1, "per_request": 1, **bad})
    finally:
        httpd.shutdown()
        httpd.server_close()
