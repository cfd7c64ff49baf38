"""Load test for a running `seq2seq serve`: C client threads send requests of B sentences each, for a
count of requests or for a number of seconds, at one or several concurrency levels.

Starts nothing: point it at a server's URL. Standard library only (http.client), torch-free.

    python -m seq2seq.devtools.serve_load --url http://127.0.0.1:8000 --input val.de \\
        --requests 200 --concurrency 8 --sentences 8 [--options '{"beam_size": 1}'] [--health]
    python -m seq2seq.devtools.serve_load --url URL --input val.de --concurrency 1,8,32 --duration 30

One level prints one JSON object: requests, concurrency, sentences per request, wall seconds,
requests/s, sentences/s, p50/p90/p99/max latency (ms), and what failed: `dropped` (no reply: the
connection refused, reset or timed out), `failed` (a reply other than 200 with one translation per
sentence), `errors` (their sum). Several levels print a table, then one JSON line holding every
level. The exit status is 1 when any request was dropped or failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from ..serve.limits import LIMIT_BOUNDS
from ..text import read_lines

if TYPE_CHECKING:
    from collections.abc import Callable


def _percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_ms:
        return 0.0
    return sorted_ms[min(len(sorted_ms) - 1, max(0, math.ceil(p / 100 * len(sorted_ms)) - 1))]


def _request(host: str, port: int, body: bytes | None, timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        if body is None:
            conn.request("GET", "/health")
        else:
            conn.request("POST", "/translate", body, {"Content-Type": "application/json"})
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def _failure(status: int, reply: bytes, expected: int) -> str | None:
    """Why a reply is not a success (200, and `expected` translations when `expected` > 0), or None."""
    if status != 200:
        return f"{status} {reply[:200].decode('utf-8', 'replace').strip()}"
    if expected:
        try:
            translations = json.loads(reply)["translations"]
        except (ValueError, KeyError, TypeError):
            return f"200 without translations: {reply[:200]!r}"
        if len(translations) != expected:
            return f"200 with {len(translations)} translations for {expected} sentences"
    return None


def _bodies(sentences: list[str], per_request: int, options: dict[str, Any] | None, health: bool):
    """Request i's body: `per_request` sentences from position i*per_request, wrapping around (None: GET /health)."""

    def body(i: int) -> bytes | None:
        if health:
            return None
        batch = [sentences[(i * per_request + k) % len(sentences)] for k in range(per_request)]
        return json.dumps({"sentences": batch, **(options or {})}).encode("utf-8")

    return body


class _Tally:
    """What the client threads share: the next request's index, the latencies, what was dropped or failed."""

    def __init__(self, requests: int | None, deadline: float) -> None:
        self.lock, self.deadline = threading.Lock(), deadline
        self.counter = iter(range(MAX_REQUESTS if requests is None else requests))  # a --duration level: bounded
        self.latencies: list[float] = []
        self.dropped: list[str] = []
        self.failed: list[str] = []

    def next_index(self) -> int | None:
        with self.lock:
            return next(self.counter, None) if time.perf_counter() < self.deadline else None

    def add(self, ms: float, problem: str | None, into: list[str]) -> None:
        with self.lock:
            self.latencies.append(ms)
            if problem:
                into.append(problem)


def run_load(
    url: str,
    sentences: list[str],
    requests: int = 200,
    concurrency: int = 8,
    per_request: int = 8,
    options: dict[str, Any] | None = None,
    health: bool = False,
    timeout: float = 300.0,
    duration: float | None = None,
) -> dict[str, Any]:
    """Send POST /translate requests (request i: `per_request` sentences from position i*per_request of
    `sentences`, wrapping around) from `concurrency` threads: `requests` of them, or as many as the
    threads send in `duration` seconds when it is given (at most MAX_REQUESTS); GET /health instead with `health`.
    Each number within its MAX_* bound, else a ValueError before any request."""
    if not sentences and not health:
        raise ValueError("no sentences to send")
    counts = 1 <= requests <= MAX_REQUESTS and 1 <= concurrency <= MAX_CONCURRENCY and 1 <= per_request <= MAX_SENTENCES
    if not counts or concurrency * per_request > MAX_IN_FLIGHT or not (duration is None or 0 < duration <= MAX_SECONDS):
        raise ValueError(f"requests {requests}, concurrency {concurrency}, per_request {per_request}, duration "
                         f"{duration}: out of bounds (the MAX_* of seq2seq/devtools/serve_load.py)")  # fmt: skip
    parts = urlsplit(url if "//" in url else f"http://{url}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body, expected = _bodies(sentences, per_request, options, health), 0 if health else per_request
    started = time.perf_counter()
    tally = _Tally(None if duration else requests, started + duration if duration else math.inf)

    def client() -> None:
        while (i := tally.next_index()) is not None:
            data = body(i)
            start = time.perf_counter()
            try:
                status, reply = _request(host, port, data, timeout)
                problem, into = _failure(status, reply, expected), tally.failed
            except OSError as err:  # refused, reset, timed out, closed without a reply
                problem, into = f"{type(err).__name__}: {err}", tally.dropped
            tally.add((time.perf_counter() - start) * 1000, problem, into)

    threads = [threading.Thread(target=client, name=f"load-{n}") for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    done = sorted(tally.latencies)
    errors = tally.dropped + tally.failed
    ok = len(done) - len(errors)
    return {
        "url": url, "endpoint": "GET /health" if health else "POST /translate", "options": options or {},
        "requests": len(done), "concurrency": concurrency, "sentences_per_request": 0 if health else per_request,
        "wall_s": round(wall, 3), "requests_per_s": round(ok / wall, 2),
        "sentences_per_s": round(0 if health else ok * per_request / wall, 2),
        "p50_ms": round(_percentile(done, 50), 2), "p90_ms": round(_percentile(done, 90), 2),
        "p99_ms": round(_percentile(done, 99), 2), "max_ms": round(done[-1] if done else 0.0, 2),
        "dropped": len(tally.dropped), "failed": len(tally.failed), "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }  # fmt: skip


def table(levels: list[dict[str, Any]]) -> str:
    """The levels as a Markdown table (one row per concurrency level)."""
    head = "| clients | requests | requests/s | sentences/s | p50 ms | p99 ms | dropped | failed |"
    rows = [
        f"| {r['concurrency']} | {r['requests']} | {r['requests_per_s']:.1f} | {r['sentences_per_s']:.1f} | "
        f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['dropped']} | {r['failed']} |"
        for r in levels
    ]
    return "\n".join([head, "|---:|---:|---:|---:|---:|---:|---:|---:|", *rows])


# The most each flag may ask for: far beyond a real load test, so that a typo (--sentences 10**18, a list built in
# memory; --concurrency 10**18, a thread each; --duration inf) is one line, not a client that grows or never ends.
MAX_REQUESTS = 1_000_000  # per level, and per --warmup; a --duration level also ends at this many (its latencies)
MAX_SENTENCES = LIMIT_BOUNDS["max_sentences"]  # per request: no server takes more (seq2seq serve --max-sentences)
MAX_CONCURRENCY = 1024  # client threads per level
MAX_IN_FLIGHT = 1_000_000  # client threads x sentences per request: the request bodies held at once
MAX_SECONDS = 86_400.0  # --duration per level, and --timeout per request: 24 hours


def _count(high: int, low: int = 1, knob: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high` (`knob`: the scripts/serve_load.sh knob that gives it)."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:  # also 1e18 and 8.5: a count is a whole number
            n = low - 1
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"{knob}give a whole number from {low} to {high:,}, got {text!r}")
        return n

    return parse


def _seconds(knob: str = "") -> Callable[[str], float]:
    """An argparse type: finite seconds in (0, MAX_SECONDS] (nan, inf and <= 0 refused)."""

    def parse(text: str) -> float:
        try:
            s = float(text)
        except ValueError:
            s = math.nan
        if not 0 < s <= MAX_SECONDS:  # also nan
            raise argparse.ArgumentTypeError(f"{knob}give seconds > 0, at most {MAX_SECONDS:,.0f} (24 hours), "
                                             f"got {text!r}")  # fmt: skip
        return s

    return parse


def _levels(text: str) -> list[int]:
    parse = _count(MAX_CONCURRENCY, knob="CONCURRENCY (client threads; levels: 1,8,32): ")
    return [parse(part) for part in text.split(",")]


class _Parser(argparse.ArgumentParser):
    """Its refusals are one line (no usage block): `PROG: error: ...`, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="python -m seq2seq.devtools.serve_load", description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the server (default: http://127.0.0.1:8000)")
    p.add_argument("--input", help="source sentences, one per line (needed unless --health)")
    p.add_argument("--requests", type=_count(MAX_REQUESTS, knob="REQUESTS (per level): "), default=200,
                   help=f"requests per level, at most {MAX_REQUESTS:,} (default: 200)")  # fmt: skip
    p.add_argument("--duration", type=_seconds("DURATION (seconds per level): "),
                   help=f"seconds per level instead of a count of requests, at most {MAX_SECONDS:,.0f}")  # fmt: skip
    p.add_argument("--concurrency", type=_levels, default=[8],
                   help=f"client threads, or levels: 1,8,32; at most {MAX_CONCURRENCY:,} (default: 8)")  # fmt: skip
    p.add_argument("--sentences", type=_count(MAX_SENTENCES, knob="SENTENCES (per request): "), default=8,
                   help=f"sentences per request, at most {MAX_SENTENCES:,} (default: 8)")  # fmt: skip
    p.add_argument("--options", default="{}", help="decode options sent with each request, e.g. '{\"beam_size\": 1}'")
    p.add_argument("--health", action="store_true", help="GET /health instead: the server's own overhead")
    p.add_argument("--timeout", type=_seconds(), default=300.0, help="seconds per request (default: 300)")
    p.add_argument("--warmup", type=_count(MAX_REQUESTS, low=0), default=0,
                   help="requests sent before each level, not counted (default: 0)")  # fmt: skip
    p.add_argument("--check", action="store_true", help="check the flags and exit (before a server is started)")
    args = p.parse_args(argv)
    if max(args.concurrency) * args.sentences > MAX_IN_FLIGHT:
        p.error(f"--concurrency {max(args.concurrency)} x --sentences {args.sentences} (CONCURRENCY x SENTENCES): at "
                f"most {MAX_IN_FLIGHT:,} sentences in flight, the request bodies held at once")  # fmt: skip
    if not args.health and not args.input:
        p.error("--input is required (or --health)")
    if args.check:
        return 0
    try:
        options = json.loads(args.options)
        if not isinstance(options, dict):
            raise ValueError(f"--options must be a JSON object, got {args.options!r}")
        sentences = [] if args.health else [s for s in read_lines(args.input) if s.strip()]
        levels = []
        for clients in args.concurrency:
            if args.warmup:
                run_load(args.url, sentences, args.warmup, 1, args.sentences, options, args.health, args.timeout)
            levels.append(run_load(args.url, sentences, args.requests, clients, args.sentences, options,
                                   args.health, args.timeout, args.duration))  # fmt: skip
    except ValueError as err:  # bad --options JSON, an unreadable or empty input file
        print(f"serve_load: error: {err}", file=sys.stderr)
        return 2
    if len(levels) == 1:
        print(json.dumps(levels[0], indent=2))
    else:
        print(table(levels))
        print()
        print(json.dumps({"levels": levels, "errors": sum(r["errors"] for r in levels)}))
    return 1 if any(r["errors"] for r in levels) else 0


if __name__ == "__main__":
    sys.exit(main())
