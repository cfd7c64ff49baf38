"""Load test for a running `seq2seq serve`: N requests from C client threads, B sentences each.

Starts nothing: point it at a server's URL. Standard library only (http.client), torch-free.

    python -m seq2seq.devtools.serve_load --url http://127.0.0.1:8000 --input val.de \\
        --requests 200 --concurrency 8 --sentences 8 [--options '{"beam_size": 1}'] [--health]

Prints one JSON object: requests, concurrency, sentences per request, wall seconds, requests/s,
sentences/s, p50/p90/p99/max latency (ms) and errors (non-200 replies and failed connections).
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


def run_load(
    url: str,
    sentences: list[str],
    requests: int = 200,
    concurrency: int = 8,
    per_request: int = 8,
    options: dict[str, Any] | None = None,
    health: bool = False,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Send `requests` POST /translate requests (request i: `per_request` sentences from position
    i*per_request of `sentences`, wrapping around) from `concurrency` threads; or GET /health with `health`."""
    if not sentences and not health:
        raise ValueError("no sentences to send")
    parts = urlsplit(url if "//" in url else f"http://{url}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    bodies = [None] * requests if health else [
        json.dumps({"sentences": [sentences[(i * per_request + k) % len(sentences)] for k in range(per_request)],
                    **(options or {})}).encode("utf-8")
        for i in range(requests)
    ]  # fmt: skip
    latencies: list[float] = []
    errors: list[str] = []
    next_index = iter(range(requests))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            start = time.perf_counter()
            try:
                status, reply = _request(host, port, bodies[i], timeout)
                error = None if status == 200 else f"{status} {reply[:200].decode('utf-8', 'replace').strip()}"
            except OSError as err:
                error = f"{type(err).__name__}: {err}"
            with lock:
                latencies.append((time.perf_counter() - start) * 1000)
                if error:
                    errors.append(error)

    threads = [threading.Thread(target=client, name=f"load-{n}") for n in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    done = sorted(latencies)
    ok = requests - len(errors)
    return {
        "url": url, "endpoint": "GET /health" if health else "POST /translate", "options": options or {},
        "requests": requests, "concurrency": concurrency, "sentences_per_request": 0 if health else per_request,
        "wall_s": round(wall, 3), "requests_per_s": round(ok / wall, 2),
        "sentences_per_s": round(0 if health else ok * per_request / wall, 2),
        "p50_ms": round(_percentile(done, 50), 2), "p90_ms": round(_percentile(done, 90), 2),
        "p99_ms": round(_percentile(done, 99), 2), "max_ms": round(done[-1] if done else 0.0, 2),
        "errors": len(errors), "first_error": errors[0] if errors else None,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m seq2seq.devtools.serve_load", description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the server (default: http://127.0.0.1:8000)")
    p.add_argument("--input", help="source sentences, one per line (needed unless --health)")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=8, help="client threads")
    p.add_argument("--sentences", type=int, default=8, help="sentences per request")
    p.add_argument("--options", default="{}", help="decode options sent with each request, e.g. '{\"beam_size\": 1}'")
    p.add_argument("--health", action="store_true", help="GET /health instead: the server's own overhead")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.sentences < 1:
        p.error("--requests, --concurrency and --sentences must be >= 1")
    if not args.health and not args.input:
        p.error("--input is required (or --health)")
    try:
        options = json.loads(args.options)
        if not isinstance(options, dict):
            raise ValueError(f"--options must be a JSON object, got {args.options!r}")
        sentences = [] if args.health else [s for s in read_lines(args.input) if s.strip()]
        result = run_load(args.url, sentences, args.requests, args.concurrency, args.sentences, options,
                          args.health, args.timeout)  # fmt: skip
    except ValueError as err:  # bad --options JSON, an unreadable or empty input file
        print(f"serve_load: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
