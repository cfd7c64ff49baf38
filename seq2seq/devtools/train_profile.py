"""Where a training update spends its time: `torch.profiler` over real updates, self CPU time by operator.

    python -m seq2seq.devtools.train_profile --data DIR --src de --tgt en --out RUN \\
        [--precision fp32] [--max-tokens 2700] [--threads 2] [--warmup 100] [--updates 30]

Prepares RUN if needed (as `seq2seq train` does), builds the default model with `Updater.build`,
runs `--warmup` updates on the first batches of epoch 0's order, measures target tokens/s over
the next `--updates` updates without the profiler, then profiles as many more. Prints one JSON
object: tokens/s, the profiled seconds, and the operators with their share of self CPU time
(most first), plus the shares of the groups docs/speed.md reports (GEMMs, the LSTM, copies, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..batches import collate, make_batches
from ..config import ConfigError, DataConfig, ModelConfig, TrainConfig
from ..machine import process
from ..machine.process import ProcessSettings
from ..preprocess import ensure_prepared
from ..updater import Updater

if TYPE_CHECKING:
    from ..prepared import EncodedSplit

GROUPS = {  # operator name -> group (anything else: "other"); the loss (objective.OutputLoss) has no group of
    # its own: its operators (mm, copy_, exp_, sum, ...) are those of the groups here and of "other"
    "aten::mm": "gemm", "aten::addmm": "gemm", "aten::bmm": "gemm",
    "aten::mkldnn_rnn_layer": "lstm", "aten::mkldnn_rnn_layer_backward": "lstm",
    "aten::copy_": "copies", "aten::exp_": "exp", "aten::exp": "exp",
    "aten::random_": "dropout masks", "aten::uniform_": "dropout masks", "aten::_fused_adam_": "optimizer",
}  # fmt: skip


def epoch_batches(split: EncodedSplit, cfg: TrainConfig) -> list[np.ndarray]:
    """Epoch 0's batches of `cfg` (a decided one), in training's order."""
    rng = np.random.default_rng([cfg.seed, 0])
    return make_batches(split.src_lens, split.tgt_lens, cfg.max_tokens, rng, bool(cfg.bucket_tokens))


def run_updates(up: Updater, split: EncodedSplit, batches: list[np.ndarray]) -> int:
    """Run one update per batch (shape-bucketed as `up.cfg` says); returns the target tokens (+ EOS) they trained on."""
    tokens = 0
    for idx in batches:
        n = int(split.tgt_lens[idx].sum()) + len(idx)
        up.step(collate(split, idx, up.cfg.bucket_tokens).to(up.device), n, up.cfg.lr)
        tokens += n
    return tokens


def profile_training(
    data: str, src: str, tgt: str, out: str, cfg: TrainConfig, warmup: int = 100, updates: int = 30
) -> dict[str, Any]:
    """Tokens/s of `updates` plain updates after `warmup`, then a profile of `updates` more (see module doc)."""
    cfg = process.decide_shape_buckets(cfg, "cpu")
    process.apply(ProcessSettings.for_training(cfg, "cpu"))
    prepared = ensure_prepared(data, src, tgt, out, DataConfig(vocab_size=4000))
    up = Updater.build(ModelConfig(), prepared.vocab, cfg)
    split = prepared.split("train")
    batches = epoch_batches(split, cfg)
    if len(batches) < warmup + 2 * updates:
        raise ValueError(f"{out}: {len(batches)} batches, fewer than warmup + 2 x updates = {warmup + 2 * updates}")
    up.model.train()
    run_updates(up, split, batches[:warmup])
    start = time.perf_counter()
    tokens = run_updates(up, split, batches[warmup : warmup + updates])
    tok_s = tokens / (time.perf_counter() - start)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run_updates(up, split, batches[warmup + updates : warmup + 2 * updates])
    rows = sorted(prof.key_averages(), key=lambda r: -r.self_cpu_time_total)
    total = sum(r.self_cpu_time_total for r in rows) or 1
    ops = {r.key: round(100 * r.self_cpu_time_total / total, 2) for r in rows if r.self_cpu_time_total > 0}
    groups: dict[str, float] = {}
    for key, share in ops.items():
        group = GROUPS.get(key, "other")
        groups[group] = round(groups.get(group, 0.0) + share, 2)
    return {
        "precision": up.precision.name, "threads": torch.get_num_threads(), "max_tokens": cfg.max_tokens,
        "shape_buckets": cfg.shape_buckets, "warmup": warmup, "updates": updates, "tgt_tok_s": round(tok_s, 1),
        "profiled_self_cpu_s": round(total / 1e6, 3), "groups_pct": groups, "ops_pct": dict(list(ops.items())[:25]),
    }  # fmt: skip


def run_arguments(prog: str, doc: str) -> argparse.ArgumentParser:
    """The options train_profile and train_memory share: the corpus, the run folder, the batches."""
    p = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])
    p.add_argument("--data", required=True, help="folder of {split}.{lang} files")
    p.add_argument("--src", required=True)
    p.add_argument("--tgt", required=True)
    p.add_argument("--out", required=True, help="run folder (prepared now if needed)")
    p.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--max-tokens", type=int, default=2700, help="target tokens per batch (the benchmark's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shape-buckets", default="auto", choices=("auto", "on", "off"), help="as seq2seq train's")
    return p


def train_config(p: argparse.ArgumentParser, args: argparse.Namespace, **more: Any) -> TrainConfig:
    """The run's TrainConfig from the shared options (and `more` fields); a bad value: one line, exit 2."""
    try:
        return TrainConfig(precision=args.precision, max_tokens=args.max_tokens, threads=args.threads, lr=2e-3,
                           shape_buckets=args.shape_buckets, **more)  # fmt: skip
    except ConfigError as e:
        p.error(str(e))


def main(argv: list[str] | None = None) -> int:
    p = run_arguments("python -m seq2seq.devtools.train_profile", __doc__ or "")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--updates", type=int, default=30)
    args = p.parse_args(argv)
    cfg = train_config(p, args)
    result = profile_training(args.data, args.src, args.tgt, args.out, cfg, args.warmup, args.updates)
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
