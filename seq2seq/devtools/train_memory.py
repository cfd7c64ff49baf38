"""Where a training process's memory goes: resident set after each phase, and what autograd keeps.

    python -m seq2seq.devtools.train_memory --data DIR --src de --tgt en --out RUN \\
        [--precision fp32] [--max-tokens 2700] [--threads 2] [--shape-buckets auto] [--updates 60] [--onednn-cache N]

Prepares RUN if needed, builds the default model with `Updater.build` and runs `--updates` updates
on the first batches of epoch 0's order (the benchmark's batches), printing one JSON object:
VmRSS (MiB) after start-up, preparation, building the model and optimiser, and after updates 1,
5, 20 and the last; the process's peak; and, for one more update on the batch with the most padded
target positions among them (as trained: with shape buckets, its bucket's shape), the tensors autograd
saved for the backward (parameters excluded),
in MiB by shape and dtype, largest first (oneDNN's LSTM workspaces are the flat uint8 ones).
Then where the resident set is (`resident_by_kind`, from /proc/self/smaps: the C heap, other
anonymous memory, JIT code — oneDNN's kernels, anonymous and executable — and mapped files, i.e.
libraries), before and after glibc's `malloc_trim(0)` gives back the free heap it keeps (training
pins glibc's trim threshold: `TrainConfig.malloc_mmap_kib`); what the trim frees is allocator slack,
what stays is live. `--onednn-cache N` caps oneDNN's and torch's primitive caches, as `seq2seq train`'s.
"""

from __future__ import annotations

import json
import resource
import sys
from collections import Counter
from typing import Any

import torch
from torch.autograd.graph import saved_tensors_hooks

from ..batches import collate
from ..config import DataConfig, ModelConfig, TrainConfig
from ..machine import process
from ..machine.process import ProcessSettings, malloc_trim
from ..preprocess import ensure_prepared
from ..updater import Updater
from .train_profile import epoch_batches, run_arguments, run_updates, train_config

MIB = 2**20


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return round(int(f.read().split("VmRSS:")[1].split()[0]) / 1024, 1)


def resident_by_kind(smaps: str = "/proc/self/smaps") -> dict[str, float]:
    """Resident MiB of a process by kind of mapping (`smaps`: its /proc/PID/smaps): "heap" (the C heap),
    "jit code" (anonymous and executable), "anonymous" (the rest without a file: thread arenas, Python's
    own arenas, large blocks, stacks) and "files" (libraries' code and data, memory-mapped files)."""
    kinds: Counter[str] = Counter()
    kind = "files"
    with open(smaps) as f:
        for line in f:
            head = line.split()
            if not head:
                continue
            if not head[0].endswith(":"):  # a mapping: address perms offset device inode [path]
                path = head[5] if len(head) > 5 else ""
                jit = (not path or path.startswith("[anon:")) and "x" in head[1]  # not [vdso] / [vsyscall]
                kind = ("heap" if path == "[heap]" else "jit code" if jit
                        else "anonymous" if not path or path.startswith("[") else "files")  # fmt: skip
            elif head[0] == "Rss:":
                kinds[kind] += int(head[1])  # kB
    return {k: round(kinds[k] / 1024, 1) for k in ("heap", "anonymous", "jit code", "files")}


def _saved_by_shape(up: Updater, batch: Any, tokens: int) -> tuple[float, list[dict[str, Any]]]:
    """One update on `batch`; the tensors saved for its backward, by (shape, dtype), parameters excluded."""
    storages: dict[int, tuple[int, tuple[int, ...], str]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = (storage.nbytes(), tuple(t.shape), str(t.dtype).removeprefix("torch."))
        return t

    params = {p.untyped_storage().data_ptr() for p in up.model.parameters()}
    with saved_tensors_hooks(pack, lambda t: t):
        up.step(batch, tokens, up.cfg.lr)
    by_shape: Counter[tuple[tuple[int, ...], str]] = Counter()
    for ptr, (nbytes, shape, dtype) in storages.items():
        if ptr not in params:
            by_shape[(shape, dtype)] += nbytes
    rows = [{"shape": list(s), "dtype": d, "mib": round(b / MIB, 1)} for (s, d), b in by_shape.most_common()]
    return round(sum(by_shape.values()) / MIB, 1), rows


def training_memory(data: str, src: str, tgt: str, out: str, cfg: TrainConfig, updates: int = 60) -> dict[str, Any]:
    """The phases' resident set and the saved-tensor breakdown (see the module doc)."""
    cfg = process.decide_shape_buckets(cfg, "cpu")
    process.apply(ProcessSettings.for_training(cfg, "cpu"))
    rss = {"start": _rss_mib()}
    prepared = ensure_prepared(data, src, tgt, out, DataConfig(vocab_size=4000))
    rss["prepared"] = _rss_mib()
    up = Updater.build(ModelConfig(), prepared.vocab, cfg)
    rss["model_and_optimiser"] = _rss_mib()
    split = prepared.split("train")
    batches = epoch_batches(split, cfg)
    if len(batches) < updates or updates < 1:
        raise ValueError(f"{out}: {len(batches)} batches; --updates must be between 1 and that")
    up.model.train()
    for k, idx in enumerate(batches[:updates], start=1):
        run_updates(up, split, [idx])
        if k in (1, 5, 20, updates):
            rss[f"after_update_{k}"] = _rss_mib()
    # the most padded target positions as trained: with shape buckets, the bucket's shape
    largest = max(batches[:updates], key=lambda idx: collate(split, idx, cfg.bucket_tokens).tgt_in.numel())
    batch = collate(split, largest, cfg.bucket_tokens)
    saved, rows = _saved_by_shape(up, batch.to(up.device), batch.n_tokens)
    peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
    end = {"rss": _rss_mib(), "by_kind": resident_by_kind()}
    trimmed = {"rss": _rss_mib(), "by_kind": resident_by_kind()} if malloc_trim() else None
    return {
        "precision": up.precision.name, "threads": torch.get_num_threads(), "max_tokens": cfg.max_tokens,
        "shape_buckets": cfg.shape_buckets, "updates": updates, "rss_mib": rss, "peak_rss_mib": peak,
        "saved_for_backward": {"batch": len(largest), "padded_shape": list(batch.tgt_in.shape),
                               "tgt_tokens": batch.n_tokens, "mib": saved, "by_shape": rows[:20]},
        "resident_by_kind": {"end": end, "after_malloc_trim": trimmed},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = run_arguments("python -m seq2seq.devtools.train_memory", __doc__ or "")
    p.add_argument("--updates", type=int, default=60)
    p.add_argument("--onednn-cache", type=int, default=-1, help="primitive-cache entries, as seq2seq train's")
    args = p.parse_args(argv)
    cfg = train_config(p, args, onednn_cache=args.onednn_cache)
    json.dump(training_memory(args.data, args.src, args.tgt, args.out, cfg, args.updates), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
