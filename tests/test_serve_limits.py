"""No request owns `seq2seq serve` (issue 30): a time budget (503, and the search stops), work dropped
when the client hangs up, a limit on output length, every out-of-range decode value a 400, and a
short request answered within a second while a maximal one is being translated.

Timing is made deterministic with a scripted translator (`Endless`): its engine sleeps STEP_S per
decoder step and never prefers EOS, so every output runs to its length limit and a request's cost
is its max_len_b steps. The search is the real one (seq2seq/search.py), so is the server.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from test_serve import ENV, _call, _launch, _ready, _serve_cmd

from seq2seq.config import DecodeConfig
from seq2seq.search import Hypothesis, SearchStopped, search, stop_when
from seq2seq.serve.batcher import Batcher, RequestError
from seq2seq.serve.limits import ServeLimits
from seq2seq.serve.server import TranslationServer
from seq2seq.translation.base import Translating
from seq2seq.translation.torch_engine import Translator

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

STEP_S = 0.004  # the scripted engine's time per decoder step
VOCAB = 64
LOG_PROBS = np.full(VOCAB, np.log(1 / (VOCAB - 4)), np.float32)  # pieces 4.. equally likely
LOG_PROBS[:4] = -30.0  # EOS (and the other specials) never among the best: outputs run to the limit


class _Pieces:
    """A tokenizer for the scripted translator: one piece per word; an output of n pieces is "x" * n."""

    longest_piece = 10**6  # a piece is a whole word, of any length (what Translating cuts long sentences by)

    def __len__(self) -> int:
        return VOCAB

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [[4] * len(text.split()) for text in texts]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return ["x" * len(seq) for seq in ids]

    def has_words(self, ids: Sequence[int]) -> bool:
        return bool(ids)


class _SlowEngine:
    def __init__(self, owner: Endless) -> None:
        self.owner = owner

    def encode(self, src_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((len(src_ids), 1)), np.zeros((len(src_ids), 1))

    def step(self, prev_ids: np.ndarray, state: np.ndarray, memory: np.ndarray) -> tuple[Any, Any, Any]:
        self.owner.steps += 1
        time.sleep(STEP_S)
        return np.tile(LOG_PROBS, (len(prev_ids), 1)), state, np.zeros((len(prev_ids), 1), np.float32)

    def select(self, obj: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return obj[rows]


class Endless(Translating):
    """A translator whose outputs always run to their length limit, STEP_S per decoder step."""

    engine = "scripted"

    def __init__(self) -> None:
        self.src_tok = self.tgt_tok = _Pieces()  # type: ignore[assignment]
        self.steps = 0  # decoder steps run so far (all searches)

    def search(
        self, src_ids: Sequence[Sequence[int]], cfg: DecodeConfig, keep_attention: bool = False, progress: bool = False
    ) -> list[list[Hypothesis]]:
        return search(self.search_engine(cfg), src_ids, cfg, keep_attention, progress)

    def search_engine(self, cfg: DecodeConfig) -> _SlowEngine:
        return _SlowEngine(self)


MAXIMAL = {"sentences": ["one two three four"] * 4, "beam_size": 32, "max_len_a": 0.0, "max_len_b": 2000}
SHORT = {"sentences": ["a b"], "beam_size": 1, "max_len_a": 0.0, "max_len_b": 5}
LIMITS = ServeLimits(max_output_len=2000, max_request_s=2.0)  # the maximal request would take 2000 x 4 ms = 8 s


def _in_thread(fn: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn(*args)))
    thread.start()
    return thread, out


def _wait_for(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _steady(translator: Endless) -> int:
    """The step count once it has stopped moving for 0.2 s (it must within 1 s)."""
    deadline = time.monotonic() + 1.0
    while True:
        seen = translator.steps
        time.sleep(0.2)
        if translator.steps == seen:
            return seen
        assert time.monotonic() < deadline, "the search went on"


def test_a_short_request_is_answered_within_a_second_while_a_maximal_one_runs() -> None:
    """The maximal request (4 sentences, beam 32, max_len_b at --max-output-len) would hold the worker
    for 8 s; a one-sentence request sent while it runs is answered in < 1 s, correctly; the maximal one
    is answered 503 at its 2 s budget, and its search stops there."""
    translator = Endless()
    with TranslationServer(translator, limits=LIMITS) as server:
        started = time.monotonic()
        heavy, heavy_reply = _in_thread(_call, server.url, "POST", "/translate", MAXIMAL)
        _wait_for(lambda: translator.steps > 20, "the maximal request never started", timeout=30)
        sent = time.monotonic()
        reply = _call(server.url, "POST", "/translate", SHORT)
        latency = time.monotonic() - sent
        assert heavy.is_alive() and not heavy_reply, "the maximal request was over before the short one"
        heavy.join(timeout=30)
        answered = time.monotonic() - started
        steps = _steady(translator)
        time.sleep(0.3)
        assert translator.steps == steps, "the maximal request's search went on after its 503"
        stats = _call(server.url, "GET", "/health")[1]["stats"]
    print(f"\nsecond client's latency while a maximal request runs: {latency * 1000:.0f} ms")
    assert reply == (200, {"translations": ["xxxx"]})  # 4 pieces + EOS: the length limit of 5
    assert latency < 1.0
    status, body = heavy_reply[0]
    assert status == 503 and "time budget of 2 s (--max-request-s)" in body["error"]
    assert 2.0 <= answered < 3.5
    assert steps < 2000 * 0.75  # stopped well before the end of its 2000 steps
    assert stats["interleaved_batches"] >= 1 and stats["stopped_jobs"] == 1 and stats["pending_jobs"] == 0


def test_a_request_whose_client_hangs_up_stops_being_translated(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="seq2seq")
    translator = Endless()
    limits = ServeLimits(max_output_len=2000, max_request_s=60.0)  # the budget plays no part here
    with TranslationServer(translator, limits=limits) as server:
        parts = urlsplit(server.url)
        body = json.dumps(MAXIMAL).encode()
        sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        head = b"POST /translate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        head += b"Content-Length: %d\r\n\r\n"
        sock.sendall(head % len(body) + body)
        _wait_for(lambda: translator.steps > 20, "the request never started", timeout=30)
        sock.close()
        closed = time.monotonic()
        _wait_for(lambda: _call(server.url, "GET", "/health")[1]["stats"]["pending_jobs"] == 0,
                  "the abandoned request was still pending after 2 s", timeout=2.0)  # fmt: skip
        stopped_within = time.monotonic() - closed
        steps = _steady(translator)
        stats = _call(server.url, "GET", "/health")[1]["stats"]
    assert steps < 2000 * 0.5 and stopped_within < 1.0
    assert stats["stopped_jobs"] == 1
    assert any("client gone" in r.getMessage() for r in caplog.records)


def test_under_a_load_that_never_lets_the_queue_empty_no_request_starves() -> None:
    """Six clients keep two-sentence rounds queued without a pause (each request 60 steps, 0.24 s alone)
    while a first request of 60 steps runs. The first request yields to them after each slice, but gets
    back at least the time it gave away: it is answered within about twice its own time plus one round.
    Without that rule (50 ms of its own per nested round) it waited for the whole 4-second load."""
    translator = Endless()
    cfg = DecodeConfig(beam_size=1, max_len_a=0.0, max_len_b=60)
    batcher = Batcher(lambda sents, c: translator.translate(sents, c), max_batch=2, wait_s=0.0)
    batcher.start()
    load_until = time.monotonic() + 4.0
    latencies: list[float] = []

    def client() -> None:
        while time.monotonic() < load_until:
            sent = time.monotonic()
            batcher.submit(["a"], cfg)
            latencies.append(time.monotonic() - sent)

    sent = time.monotonic()
    first, first_out = _in_thread(lambda: batcher.submit(["a"], cfg))
    _wait_for(lambda: translator.steps > 0, "the first request never started")
    clients = [threading.Thread(target=client) for _ in range(6)]
    for thread in clients:
        thread.start()
    first.join(timeout=10)
    first_latency = time.monotonic() - sent
    for thread in clients:
        thread.join(timeout=10)
    batcher.stop()
    print(f"\nfirst request under load: {first_latency:.2f} s (alone 0.24 s); load requests: {len(latencies)}")
    assert first_out == [["x" * 59]] and batcher.stats["interleaved_batches"] >= 1
    assert first_latency < 1.5, f"the first request waited {first_latency:.2f} s under load"


def test_a_job_queued_past_its_budget_is_answered_503_and_never_translated() -> None:
    """The worker is held (a translate call that no search check can stop) past a queued job's
    deadline: that job is answered 503 and leaves the queue, so its sentences never reach the model."""
    release, calls = threading.Event(), []

    def translate(sentences: list[str], cfg: DecodeConfig) -> list[str]:
        calls.append(sentences)
        release.wait(10)
        return sentences

    batcher = Batcher(translate, max_batch=8, wait_s=0.0, budget_s=0.5)
    batcher.start()
    first, first_out = _in_thread(lambda: _outcome(batcher, ["held"]))
    _wait_for(lambda: calls, "the first job never reached the worker")
    assert _outcome(batcher, ["queued"]) == 503
    first.join(timeout=10)
    release.set()
    batcher.stop()
    assert first_out == [503] and calls == [["held"]]
    assert batcher.pending == 0 and batcher.stats["stopped_jobs"] == 2


def test_a_search_the_memory_bound_refuses_is_a_400_not_a_500(run_dir: Path) -> None:
    """The search's memory estimate (search_budget.check_search) refuses a request in the worker: 400 with its line."""
    translator = Translator.from_checkpoint(run_dir / "best.pt")
    batcher = Batcher(translator.translate, max_batch=8, wait_s=0.0)
    batcher.start()
    try:
        tight = DecodeConfig(beam_size=32, max_len_b=900, memory_budget_gb=1e-6)
        with pytest.raises(RequestError) as err:
            batcher.submit(["red cat"], tight)
        assert err.value.status == 400 and "memory_budget_gb" in str(err.value) and "\n" not in str(err.value)
        assert batcher.submit(["red cat"], DecodeConfig(beam_size=2)) == translator.translate(["red cat"], beam_size=2)
    finally:
        batcher.stop()


def _outcome(batcher: Batcher, sentences: list[str]) -> int | list[str]:
    try:
        return batcher.submit(sentences, DecodeConfig())
    except RequestError as err:
        return err.status


def test_stop_when_stops_every_search_of_the_real_model_and_nothing_else(run_dir: Path) -> None:
    translator = Translator.from_checkpoint(run_dir / "best.pt")
    expected = translator.translate(["red cat", "big old dog"], beam_size=2)
    with stop_when(lambda: False):  # a check that never fires changes nothing
        assert translator.translate(["red cat", "big old dog"], beam_size=2) == expected
    for beam in (1, 3):
        with stop_when(lambda: True), pytest.raises(SearchStopped):
            translator.translate(["red cat"], beam_size=beam)
    assert translator.translate(["red cat", "big old dog"], beam_size=2) == expected  # outside: no check


# --- out-of-range values, against a real `seq2seq serve` ------------------------------------------------------

OUT_OF_RANGE = {  # name: (request options (sentences: ["a"] unless given; inf sent as 1e400), words in the error)
    "beam over --max-beam-size": ({"beam_size": 33}, "beam_size 33 is over this server's limit of 32"),
    "beam 0": ({"beam_size": 0}, "beam_size must be >= 1"),
    "beam 10**30": ({"beam_size": 10**30}, "beam_size"),
    "beam 1e400 (inf)": ({"beam_size": 1e400}, "beam_size must be a finite number, got Infinity"),
    "beam a boolean": ({"beam_size": True}, "beam_size must be int"),
    "n_best over --max-n-best": ({"beam_size": 10, "n_best": 9}, "n_best 9 is over this server's limit of 8"),
    "memory budget raised by a request": ({"memory_budget_gb": 1000}, "memory_budget_gb is this server's setting"),
    "n_best 0": ({"n_best": 0}, "n_best"),
    "max_len_b 3000": ({"max_len_b": 3000}, "max_len_b 3000 allows outputs over this server's limit of 1024"),
    "max_len_b 1e8 (float)": ({"max_len_b": 1e8}, "max_len_b must be int"),
    "max_len_b 10**8": ({"max_len_b": 10**8}, "max_len_b"),
    "max_len_b 0": ({"max_len_b": 0}, "max_len_b"),
    "max_len_a 100, 12 words": (
        {"sentences": ["a b c d e f g h i j k l"], "max_len_a": 100},
        "+ max_len_b 10 allows outputs over this server's limit of 1024 (--max-output-len)",
    ),
    "max_len_a 1e300": ({"max_len_a": 1e300}, "max_len_a"),
    "max_len_a 1e400 (inf)": ({"max_len_a": 1e400}, "max_len_a must be a finite number, got Infinity"),
    "max_len_a -1": ({"max_len_a": -1}, "max_len_a"),
    "length_penalty -1e400": ({"length_penalty": -1e400}, "length_penalty must be a finite number, got -Infinity"),
    "length_penalty 1e300": ({"length_penalty": 1e300}, "length_penalty"),
    "max_src_len 0": ({"max_src_len": 0}, "max_src_len must be >= 1"),
    "batch_size -1": ({"batch_size": -1}, "batch_size must be >= 0"),
    "shortlist, removed": ({"shortlist": 5}, "unknown DecodeConfig key 'shortlist'"),
}


@pytest.fixture(scope="module")
def server(run_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("limits") / "serve.log"
    ckpt = run_dir / "best.pt"
    proc = _launch(_serve_cmd(ckpt, "--max-output-len", "1024", "--max-request-s", "30"), log)
    try:
        yield _ready(proc, log, ckpt)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("name", OUT_OF_RANGE)
def test_every_out_of_range_value_is_a_400_with_one_line(server, name: str) -> None:
    options, words = OUT_OF_RANGE[name]
    body = json.dumps({"sentences": ["a"], **options}).replace("Infinity", "1e400").encode()  # 1e400: inf in Python
    status, reply = _call(server.url, "POST", "/translate", body)
    assert (status, list(reply)) == (400, ["error"]), reply
    assert words in reply["error"] and "\n" not in reply["error"], reply["error"]


def test_the_limits_are_in_health_and_no_refusal_left_a_traceback(server) -> None:
    limits = _call(server.url, "GET", "/health")[1]["limits"]
    assert (limits["max_output_len"], limits["max_request_s"]) == (1024, 30.0)
    assert _call(server.url, "POST", "/translate", {"sentences": ["red cat"], "max_len_b": 900})[0] == 200
    log = server.log.read_text()
    assert "Traceback" not in log and " 500 " not in log and "connection from" not in log  # handle_error's line


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (
            ["--max-len-b", "2000"],
            "the default max_len_a 2 x 2 source pieces + max_len_b 2000 allows outputs over "
            "this server's limit of 1024 (--max-output-len)",
        ),  # fmt: skip
        (["--max-request-s", "0"], "max_request_s must be in (0, 86400] seconds, got 0.0"),
        (["--max-request-s", "nan"], "max_request_s must be in (0, 86400] seconds, got nan"),
        (["--max-output-len", "0"], "max_output_len must be in [1, 100,000], got 0"),
        (
            ["--max-body-bytes", "100000000000000"],
            "max_body_bytes must be in [1, 1,073,741,824], got 100,000,000,000,000",
        ),
        (["--max-connections", "1000000000"], "max_connections must be in [1, 10,000], got 1,000,000,000"),
        (  # a round of one sentence is full at once: the wait never happened
            ["--batch-wait-ms", "500", "--max-batch", "1"],
            "batch_wait_ms 500 would be ignored: with max_batch 1 every round is full at once, nothing is waited for; "
            "leave it out or raise max_batch",
        ),
    ],
)
def test_bad_limits_at_start_up_are_exit_2_with_one_line(run_dir: Path, flags: list[str], words: str) -> None:
    proc = subprocess.run(_serve_cmd(run_dir / "best.pt", *flags), capture_output=True, text=True, env=ENV,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"seq2seq serve: error: {words}\n"


def test_the_new_limits_are_flags_with_help() -> None:
    out = subprocess.run([sys.executable, "-m", "seq2seq", "serve", "--help"], capture_output=True, text=True,
                         env=ENV, timeout=60).stdout  # fmt: skip
    assert "--max-output-len" in out and "--max-request-s" in out


def test_each_search_gets_a_share_of_the_memory_budget(run_dir: Path) -> None:
    """Rounds nest up to MAX_DEPTH deep inside another round's search (batcher.py), each search holding its
    memory: every request's search gets 1 / (MAX_DEPTH + 1) of the server's budget, so all of them fit it."""
    from seq2seq.serve.batcher import MAX_DEPTH

    translator = Translator.from_checkpoint(run_dir / "best.pt")
    with TranslationServer(translator, DecodeConfig(memory_budget_gb=5.0)) as server:
        cfg = server._decode_config(server.default, ["red cat"], {"beam_size": 2})
        assert cfg.memory_budget_gb == pytest.approx(5.0 / (MAX_DEPTH + 1)) and MAX_DEPTH >= 1
        assert server.decode()["memory_budget_gb"] == 5.0  # what the server reports is what it was given
