"""`seq2seq serve` end to end over loopback: real server processes, a real HTTP client (http.client).

The translations are the library's (`Translator.translate`, the ONNX model's `translate`), in input
order, alone or under concurrent load; every refusal is the right 4xx with a JSON one-liner; SIGTERM
and SIGINT stop cleanly (exit 0, "stopped", a request in flight still answered); a bad checkpoint is
exit 2 with one line. Batching is checked in-process, where it is deterministic.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest

from seq2seq.config import DecodeConfig
from seq2seq.devtools.serve_load import main as load_main
from seq2seq.serve.limits import ServeLimits
from seq2seq.serve.server import TranslationServer
from seq2seq.translation import export_model, load_translator
from seq2seq.translation.torch_engine import Translator

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ["red cat", "big old dog", "", "new house tree", "small bird", "green blue cat dog", "dog bird cat tree"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # one thread, like this process (conftest)
SERVE_FLAGS = ["--beam-size", "2", "--max-sentences", "8", "--max-chars", "100", "--max-body-bytes", "4096"]


class Server(NamedTuple):
    proc: subprocess.Popen
    url: str
    log: Path


def _launch(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "w") as err:  # a file, not a pipe: the request log can never fill a pipe and stall the server
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env or ENV, cwd=ROOT)


def _ready(proc: subprocess.Popen, log: Path, checkpoint: Path) -> Server:
    """Wait for the one line `serving CKPT on http://HOST:PORT` (a watchdog kills a server that hangs)."""
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    line = proc.stdout.readline()
    watchdog.cancel()
    match = re.fullmatch(rf"serving {re.escape(str(checkpoint))} on (http://127\.0\.0\.1:\d+)\n", line)
    assert match, f"stdout {line!r}; stderr: {log.read_text()[-2000:]}"
    return Server(proc, match.group(1), log)


def _serve_cmd(checkpoint: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "seq2seq", "serve", "--checkpoint", str(checkpoint), "--port", "0", *flags]


def _stop(server: Server, sig: int = signal.SIGTERM) -> str:
    """Signal the server; it must exit 0 printing exactly "stopped" after the ready line."""
    server.proc.send_signal(sig)
    rest, _ = server.proc.communicate(timeout=60)
    assert server.proc.returncode == 0, server.log.read_text()[-2000:]
    assert rest == "stopped\n"
    return server.log.read_text()


def _call(url: str, method: str, path: str, body: Any = None, headers: dict | None = None) -> tuple[int, Any]:
    """One request; the reply must be JSON whatever the status."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        conn.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
        reply = conn.getresponse()
        assert reply.getheader("Content-Type") == "application/json; charset=utf-8"
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


def _raw(url: str, request: bytes) -> tuple[int, Any]:
    """A hand-written request (what http.client will not send): status and JSON body."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(request)
        data = b""
        while (chunk := sock.recv(65536)) and not _whole_reply(data := data + chunk):
            pass  # a reply that keeps the connection open is read to its Content-Length, not to a 30-s idle close
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _whole_reply(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    length = [line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    return bool(sep) and bool(length) and len(body) >= int(length[0])


@pytest.fixture(scope="module")
def reference(run_dir: Path) -> Translator:
    return Translator.from_checkpoint(run_dir / "best.pt")


@pytest.fixture(scope="module")
def onnx(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxruntime")
    return export_model(run_dir / "best.pt", tmp_path_factory.mktemp("onnx") / "model.onnx.zip")


@pytest.fixture(scope="module")
def servers(run_dir: Path, onnx: Path, tmp_path_factory: pytest.TempPathFactory):
    """The .pt server (small limits, default beam 2), the ONNX one (started by scripts/serve.sh) and one
    that waits 3 s for rounds to fill (to hold a request in flight), all started at once."""
    logs = tmp_path_factory.mktemp("logs")
    ckpt = run_dir / "best.pt"
    script_env = {**ENV, "PYTHON": sys.executable, "CHECKPOINT": str(onnx), "PORT": "0"}
    procs = {
        "pt": (_launch(_serve_cmd(ckpt, *SERVE_FLAGS), logs / "pt.log"), ckpt),
        "onnx": (_launch(["bash", "scripts/serve.sh", "--beam-size", "2"], logs / "onnx.log", script_env), onnx),
        "slow": (_launch(_serve_cmd(ckpt, "--batch-wait-ms", "3000"), logs / "slow.log"), ckpt),
    }
    try:
        yield {name: _ready(proc, logs / f"{name}.log", path) for name, (proc, path) in procs.items()}
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_health_describes_the_model_decode_settings_and_limits(servers, run_dir: Path) -> None:
    status, health = _call(servers["pt"].url, "GET", "/health")
    assert status == 200
    assert health["status"] == "ok" and health["model"] == str(run_dir / "best.pt")
    assert (health["engine"], health["src_lang"], health["tgt_lang"], health["device"]) == ("torch", "xx", "yy", "cpu")
    assert health["decode"] == {**health["decode"], "beam_size": 2, "n_best": 1}
    assert health["limits"] == {**health["limits"], "max_sentences": 8, "max_chars": 100, "max_body_bytes": 4096}
    assert set(health["stats"]) >= {"jobs", "batches", "translate_calls", "pending_jobs"}


def test_health_and_models_report_the_precision_the_server_decodes_in(reference: Translator) -> None:
    assert reference.describe(DecodeConfig(precision="fp32"))["precision"] == "fp32"
    with TranslationServer(reference, DecodeConfig(precision="fp32")) as server:
        health, models = _call(server.url, "GET", "/health")[1], _call(server.url, "GET", "/models")[1]
    assert health["precision"] == health["decode"]["precision"] == "fp32"  # not what "auto" would pick
    assert "fp32" in json.dumps(models) and "bf16" not in json.dumps(models), models


@pytest.mark.parametrize("options", [{}, {"beam_size": 1}, {"beam_size": 5, "length_penalty": 0.5}])
def test_translations_are_the_libraries_in_input_order(servers, reference: Translator, options: dict) -> None:
    status, reply = _call(servers["pt"].url, "POST", "/translate", {"sentences": SENTENCES, **options})
    assert status == 200
    assert reply == {"translations": reference.translate(SENTENCES, DecodeConfig(beam_size=2), **options)}
    assert reply["translations"][2] == ""  # an empty sentence translates to ""


def test_empty_request_is_an_empty_answer(servers) -> None:
    assert _call(servers["pt"].url, "POST", "/translate", {"sentences": []}) == (200, {"translations": []})


def test_concurrent_requests_are_all_answered_correctly(servers, reference: Translator) -> None:
    url = servers["pt"].url
    jobs_before = _call(url, "GET", "/health")[1]["stats"]["jobs"]
    requests = [(SENTENCES[i % 7 :] + SENTENCES[: i % 7], {"beam_size": 1 + i % 3}) for i in range(24)]
    expected = [reference.translate(s, DecodeConfig(**options)) for s, options in requests]
    got: dict[int, Any] = {}

    def client(first: int) -> None:
        for i in range(first, len(requests), 8):
            got[i] = _call(url, "POST", "/translate", {"sentences": requests[i][0], **requests[i][1]})

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [got.get(i) for i in range(len(requests))] == [(200, {"translations": e}) for e in expected]
    stats = _call(url, "GET", "/health")[1]["stats"]
    assert stats["jobs"] - jobs_before == len(requests) and stats["pending_jobs"] == 0


def test_concurrent_requests_are_batched_and_grouped_by_decode_settings(reference: Translator) -> None:
    """Six requests (two decode settings) arrive while the worker waits for a round of 12 sentences:
    one round, two translate calls, each request its own slice."""
    sentences = [SENTENCES[i : i + 2] for i in range(6)]
    options = [{"beam_size": 1} if i % 2 else {} for i in range(6)]
    expected = [reference.translate(s, DecodeConfig(beam_size=2), **o) for s, o in zip(sentences, options)]
    limits = ServeLimits(max_batch=12, batch_wait_ms=20_000)  # the round goes as soon as it is full
    got: dict[int, Any] = {}
    with TranslationServer(reference, DecodeConfig(beam_size=2), limits) as server:

        def client(i: int) -> None:
            got[i] = _call(server.url, "POST", "/translate", {"sentences": sentences[i], **options[i]})

        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        stats = _call(server.url, "GET", "/health")[1]["stats"]
    assert [got.get(i) for i in range(6)] == [(200, {"translations": e}) for e in expected]
    assert stats == {"jobs": 6, "sentences": 12, "batches": 1, "translate_calls": 2, "max_jobs_per_batch": 6,
                     "interleaved_batches": 0, "stopped_jobs": 0, "retried_jobs": 0, "pending_jobs": 0}  # fmt: skip


class Failing:
    """A translator that fails on "boom" (a model error): the worker must fail only that request."""

    def __init__(self, inner: Translator) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def translate(self, sentences: list[str], cfg: DecodeConfig) -> list[str]:
        if "boom" in sentences:
            raise RuntimeError("the model exploded")
        return self.inner.translate(sentences, cfg)


def test_a_failing_request_fails_alone_not_the_requests_batched_with_it(reference: Translator) -> None:
    bodies = [{"sentences": ["red cat"]}, {"sentences": ["boom"]}, {"sentences": ["big dog"]}]
    got: dict[int, Any] = {}
    limits = ServeLimits(max_batch=3, batch_wait_ms=20_000)  # one round of three jobs, one translate call
    with TranslationServer(Failing(reference), limits=limits) as server:  # type: ignore[arg-type]

        def client(i: int) -> None:
            got[i] = _call(server.url, "POST", "/translate", bodies[i])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        stats = _call(server.url, "GET", "/health")[1]["stats"]
    # each sentence counted once, the call that failed once; the three jobs translated alone again as retries
    assert (stats["batches"], stats["jobs"], stats["sentences"], stats["translate_calls"]) == (1, 3, 3, 1)
    assert stats["retried_jobs"] == 3
    assert got[0] == (200, {"translations": reference.translate(["red cat"])})
    assert got[2] == (200, {"translations": reference.translate(["big dog"])})
    assert got[1] == (500, {"error": "translation failed: RuntimeError: the model exploded"})


BAD = {  # name: (method, path, body, status, words in the error)
    "malformed JSON": ("POST", "/translate", b'{"sentences": [', 400, "not valid JSON"),
    "not UTF-8": ("POST", "/translate", b'{"sentences": ["\xff"]}', 400, "not valid JSON"),
    "nested too deeply": ("POST", "/translate", b"[" * 3000, 400, "nested too deeply"),
    "lone surrogate": ("POST", "/translate", b'{"sentences": ["a", "\\ud800"]}', 400, "sentences[1] holds a lone"),
    "NaN": ("POST", "/translate", b'{"sentences": ["a"], "length_penalty": NaN}', 400, "NaN is not JSON"),
    "body an array": ("POST", "/translate", ["red cat"], 400, "must be a JSON object"),
    "no sentences": ("POST", "/translate", {"beam_size": 1}, 400, 'missing "sentences"'),
    "sentences a string": ("POST", "/translate", {"sentences": "red cat"}, 400, "must be an array of strings"),
    "a sentence a number": ("POST", "/translate", {"sentences": ["a", 5]}, 400, "holding a number (5)"),
    "model an array": ("POST", "/translate", {"sentences": ["a"], "model": ["x"]}, 400, 'got an array (["x"])'),
    "scores an array": ("POST", "/translate", {"sentences": ["a"], "scores": []}, 400, "got an array ([])"),
    "an OpenNMT src an array": ("POST", "/translator/translate", [{"src": ["a"]}], 400, 'got an array (["a"])'),
    "body an array of strings, OpenNMT": ("POST", "/translator/translate", ["a"], 400, "must be"),
    "max_len_a a 400-digit integer": (
        "POST",
        "/translate",
        b'{"sentences": ["a"], "max_len_a": 1' + b"0" * 400 + b"}",
        400,
        "max_len_a must be a finite number, got an integer over 1e307",
    ),
    "beam_size a string": ("POST", "/translate", {"sentences": ["a"], "beam_size": "5"}, 400, "beam_size must be int"),
    "beam_size a float": ("POST", "/translate", {"sentences": ["a"], "beam_size": 2.0}, 400, "beam_size must be int"),
    "unknown option": ("POST", "/translate", {"sentences": ["a"], "beam": 5}, 400, "did you mean 'beam_size'"),
    "beam_size 0": ("POST", "/translate", {"sentences": ["a"], "beam_size": 0}, 400, "beam_size must be >= 1"),
    "n_best > beam": ("POST", "/translate", {"sentences": ["a"], "n_best": 3}, 400, "n_best must be in"),
    "bad precision": ("POST", "/translate", {"sentences": ["a"], "precision": "fp8"}, 400, "precision must be one of"),
    "beam over the limit": ("POST", "/translate", {"sentences": ["a"], "beam_size": 33}, 400, "limit of 32"),
    "beam over DecodeConfig's bound too": (  # the server's limit is the one to name
        "POST",
        "/translate",
        {"sentences": ["a"], "beam_size": 5000},
        400,
        "beam_size 5000 is over this server's limit of 32 (--max-beam-size)",
    ),
    "n_best over DecodeConfig's bound too": (
        "POST",
        "/translate",
        {"sentences": ["a"], "n_best": 2000},
        400,
        "n_best 2000 is over this server's limit of 8 (--max-n-best)",
    ),
    "n_best over --max-n-best": (
        "POST",
        "/translate",
        {"sentences": ["a"], "beam_size": 10, "n_best": 9},
        400,
        "n_best 9 is over this server's limit of 8 (--max-n-best)",
    ),
    "too many sentences": ("POST", "/translate", {"sentences": ["a"] * 9}, 413, "limit is 8 (--max-sentences)"),
    "sentence too long": ("POST", "/translate", {"sentences": ["a", "b" * 101]}, 413, "sentences[1] has 101"),
    "body too large": ("POST", "/translate", {"sentences": ["a" * 90] * 50}, 413, "limit of 4096 bytes"),
    "unknown path": ("GET", "/translations", None, 404, "no such path '/translations'"),
    "GET /translate": ("GET", "/translate", None, 405, "/translate takes POST, not GET"),
    "POST /health": ("POST", "/health", {"sentences": ["a"]}, 405, "/health takes GET, not POST"),
    "DELETE /health": ("DELETE", "/health", None, 405, "/health takes GET"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_requests_are_4xx_with_a_one_line_json_error(servers, name: str) -> None:
    method, path, body, status, words = BAD[name]
    got, reply = _call(servers["pt"].url, method, path, body)
    assert (got, list(reply)) == (status, ["error", "status"] if path.startswith("/translator/") else ["error"])
    assert words in reply["error"] and "\n" not in reply["error"]


@pytest.mark.parametrize(
    ("request_", "status", "words"),
    [
        (b"POST /translate HTTP/1.1\r\nHost: localhost\r\n\r\n", 411, "Content-Length is required"),
        (b"POST /translate HTTP/1.1\r\nHost: localhost\r\nContent-Length: many\r\n\r\n", 400, "not a byte count"),
        (
            b"POST /translate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 9000\r\nExpect: 100-continue\r\n\r\n",
            413,
            "4096",
        ),  # fmt: skip
        (b"HELLO\r\n\r\n", 400, "Bad request"),
        (b"BREW /health HTTP/1.1\r\nHost: localhost\r\n\r\n", 501, "Unsupported method"),
    ],
)
def test_protocol_errors_are_json_too(servers, request_: bytes, status: int, words: str) -> None:
    got, reply = _raw(servers["pt"].url, request_)
    assert got == status and words in reply["error"]


def test_the_exported_onnx_model_is_served_by_the_script_and_stops_on_sigint(servers, onnx: Path) -> None:
    server = servers["onnx"]
    health = _call(server.url, "GET", "/health")[1]
    assert (health["engine"], health["src_lang"], health["model"]) == ("onnx", "xx", str(onnx))
    runtime = load_translator(onnx)
    for options in ({}, {"beam_size": 1}):
        expected = runtime.translate(SENTENCES, DecodeConfig(beam_size=2), **options)
        assert _call(server.url, "POST", "/translate", {"sentences": SENTENCES, **options}) == (
            200, {"translations": expected}
        )  # fmt: skip
    # what an ONNX model cannot run is a 400 naming the reason, not a failure in the worker
    status, reply = _call(server.url, "POST", "/translate", {"sentences": ["a"], "precision": "bf16"})
    assert status == 400 and "an ONNX model decodes in fp32" in reply["error"]
    _stop(server, signal.SIGINT)


def test_sigterm_finishes_the_request_in_flight_then_exits_0(servers, reference: Translator) -> None:
    server = servers["slow"]  # waits up to 3 s for a round to fill: the request stays in flight
    got: list[Any] = []
    client = threading.Thread(
        target=lambda: got.append(_call(server.url, "POST", "/translate", {"sentences": SENTENCES}))
    )
    client.start()
    deadline = time.monotonic() + 30
    while _call(server.url, "GET", "/health")[1]["stats"]["pending_jobs"] < 1:
        assert time.monotonic() < deadline, "the request never reached the worker"
        time.sleep(0.02)
    signalled = time.monotonic()
    log = _stop(server, signal.SIGTERM)
    client.join(timeout=60)
    assert got == [(200, {"translations": reference.translate(SENTENCES)})]
    assert time.monotonic() - signalled < 2.5, "stopping waited for the round to fill"
    assert "SIGTERM: stopping; requests in flight: 1" in log
    with pytest.raises(ConnectionRefusedError):
        _call(server.url, "GET", "/health")


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--checkpoint", "no/such/model.pt"], "no/such/model.pt"),
        (["--max-batch", "0"], "max_batch must be in [1, 100,000], got 0"),
        (["--beam-size", "40"], "the default beam_size 40 is over this server's limit of 32"),
    ],
)
def test_start_up_errors_are_exit_2_with_one_line(run_dir: Path, flags: list[str], words: str) -> None:
    cmd = _serve_cmd(run_dir / "best.pt", *flags)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("seq2seq serve: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert words in proc.stderr


def test_load_test_reports_throughput_and_latency(servers, tmp_path: Path, capsys) -> None:
    source = tmp_path / "src.xx"
    source.write_text("".join(s + "\n" for s in SENTENCES if s))
    argv = ["--url", servers["pt"].url, "--input", str(source), "--requests", "12", "--concurrency", "3",
            "--sentences", "4", "--options", '{"beam_size": 1}']  # fmt: skip
    assert load_main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["requests"], result["concurrency"], result["sentences_per_request"]) == (12, 3, 4)
    assert result["errors"] == 0 and result["requests_per_s"] > 0
    assert result["sentences_per_s"] == pytest.approx(4 * result["requests_per_s"], rel=0.01)
    assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert load_main([*argv[:4], "--requests", "2", "--options", '{"beam_size": 0}']) == 1  # errors counted
    assert json.loads(capsys.readouterr().out)["first_error"].startswith("400 ")
