"""How fast the output layer's matmuls run when their shape changes with every batch (docs/speed.md).

    python -m seq2seq.devtools.matmul_shapes [--rows-min 2000] [--rows-max 2700] [--hidden 256] \\
        [--vocab 4000] [--repeats 40] [--bucket 128] [--threads 2] [--onednn-cache 4]

A training update multiplies its N target positions' (N, hidden) states by the (vocab, hidden) output
layer, and its backward makes two more products of the same sizes; N is the batch's token count, new
with every batch. This times those three products `--repeats` times, with N drawn from
[rows-min, rows-max] (as training sees it), fixed at one value, and rounded up to a multiple of
`--bucket`, in fp32 and in bf16 (where torch's bf16 runs on this CPU), and prints one JSON object of
GFLOP/s. oneDNN's kernels for a new shape are made on first use and kept in caches of
`--onednn-cache` entries (training's default), so a CPU whose kernels are costly to make (AMX) is fast
only on shapes it has seen.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from typing import Any

import torch

from ..config import TrainConfig
from ..machine import process
from ..machine.hardware import cpu_summary
from ..machine.process import ProcessSettings
from .benchmark import bf16_skipped


def flops(rows: int, hidden: int, vocab: int) -> int:
    """Multiply-adds x 2 of the forward product and the two backward ones for `rows` positions."""
    return 3 * 2 * rows * hidden * vocab


def row_sets(rows_min: int, rows_max: int, repeats: int, bucket: int, seed: int = 0) -> dict[str, list[int]]:
    """The N of each repeat: `varying` (drawn), `fixed` (their mean), `bucketed` (each rounded up to `bucket`)."""
    rng = random.Random(seed)
    varying = [rng.randint(rows_min, rows_max) for _ in range(repeats)]
    mean = round(sum(varying) / repeats)
    return {"varying": varying, "fixed": [mean] * repeats, "bucketed": [-(-n // bucket) * bucket for n in varying]}


def gflop_s(dtype: torch.dtype, rows: list[int], hidden: int, vocab: int) -> float:
    """GFLOP/s of the three products over `rows` (inputs made before the clock starts)."""
    weight = torch.randn(vocab, hidden).to(dtype)
    data = [(torch.randn(n, hidden).to(dtype), torch.randn(n, vocab).to(dtype)) for n in rows]
    start = time.perf_counter()
    for x, grad in data:
        x @ weight.t()  # the scores
        grad @ weight  # their gradient for the states
        grad.t() @ x  # ... and for the weight
    return sum(flops(n, hidden, vocab) for n in rows) / (time.perf_counter() - start) / 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seq2seq.devtools.matmul_shapes", description=__doc__.splitlines()[0])
    ap.add_argument("--rows-min", type=int, default=2000)
    ap.add_argument("--rows-max", type=int, default=2700)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--bucket", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--onednn-cache", type=int, default=TrainConfig.onednn_cache)
    args = ap.parse_args(argv)
    if not 0 < args.rows_min <= args.rows_max or min(args.hidden, args.vocab, args.repeats, args.bucket) < 1:
        ap.error("sizes must be positive and --rows-min <= --rows-max")
    process.apply(ProcessSettings(threads=args.threads, onednn_cache=args.onednn_cache))  # before any oneDNN op
    torch.manual_seed(0)
    sets = row_sets(args.rows_min, args.rows_max, args.repeats, args.bucket)
    out: dict[str, Any] = {"cpu": cpu_summary(), "threads": args.threads, "onednn_cache": args.onednn_cache}
    out.update(hidden=args.hidden, vocab=args.vocab, repeats=args.repeats, bucket=args.bucket)
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        if dtype == torch.bfloat16 and (skipped := bf16_skipped()):
            out[name] = skipped
            continue
        gflop_s(dtype, sets["fixed"][:3], args.hidden, args.vocab)  # warm-up: libraries loaded, threads started
        out[name] = {key: gflop_s(dtype, rows, args.hidden, args.vocab) for key, rows in sets.items()}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
