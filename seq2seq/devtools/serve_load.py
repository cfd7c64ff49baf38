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
from typing import Any
from urllib.parse import urlsplit

from ..text import read_lines


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
        self.counter = iter(range(sys.maxsize if requests is None else requests))
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
    threads send in `duration` seconds when it is given; GET /health instead with `health`."""
    if not sentences and not health:
        raise ValueError("no sentences to send")
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


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected client counts such as 8 or 1,8,32, got {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"client counts must be >= 1, got {text!r}")
    return levels


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m seq2seq.devtools.serve_load", description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the server (default: http://127.0.0.1:8000)")
    p.add_argument("--input", help="source sentences, one per line (needed unless --health)")
    p.add_argument("--requests", type=int, default=200, help="requests per level (default: 200)")
    p.add_argument("--duration", type=float, help="seconds per level instead of a count of requests")
    p.add_argument("--concurrency", type=_levels, default=[8], help="client threads, or levels: 1,8,32 (default: 8)")
    p.add_argument("--sentences", type=int, default=8, help="sentences per request (default: 8)")
    p.add_argument("--options", default="{}", help="decode options sent with each request, e.g. '{\"beam_size\": 1}'")
    p.add_argument("--health", action="store_true", help="GET /health instead: the server's own overhead")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request (default: 300)")
    p.add_argument("--warmup", type=int, default=0, help="requests sent before each level, not counted (default: 0)")
    args = p.parse_args(argv)
    if args.requests < 1 or args.sentences < 1 or args.warmup < 0 or (args.duration is not None and args.duration <= 0):
        p.error("--requests and --sentences must be >= 1, --warmup >= 0, --duration > 0")
    if not args.health and not args.input:
        p.error("--input is required (or --health)")
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
