"""Process-level plumbing for training: stop signals, and the process
settings (`ProcessSettings`: torch threads, TF32, a bounded oneDNN primitive cache, optionally glibc
malloc giving freed activations back), which `train()` applies once, first, with `apply`.

oneDNN (torch's CPU kernels for RNNs and bf16 matmuls) caches a primitive, with its buffers, per
distinct shape, up to 1,024 of them, and torch keeps a second cache of its own for the oneDNN ops it
runs through ideep (bf16 matmuls; `LRU_CACHE_CAPACITY`, also 1,024); every batch shape is new, so
both grow for thousands of updates. Small caches keep the last few shapes: measured in
docs/speed.md, bf16 training's peak RSS halves (~1.1-1.2 GB to ~0.5 GB after 250 updates) at the
same speed, and so does bf16 translation's. Training caps both at 4 entries (its batch shapes never
repeat), translation and serving at 16 (decoder steps repeat theirs: beam 5 is 13 % slower at 4).
Training with shape buckets (batches.py: a few fixed batch shapes, for bf16 on AMX CPUs) keeps 1,024:
all of its shapes' primitives (about 40 per shape), made once per run instead of once per update.

Every batch has a different shape, so its activations are freed and re-allocated in new sizes.
glibc serves blocks above its mmap threshold (adaptive, at most 32 MiB) with fresh mappings that
are returned to the OS on free, and trims the heap top; each such block is page-faulted in again
on every update (the output layer's scores alone are tens of MiB): ~100,000 minor faults/s and a
tenth of the CPU in the kernel during fp32 training. Pinning the threshold (and the trim
threshold) at 256 MiB keeps those blocks in the heap for reuse: measured in docs/speed.md,
24x fewer page faults and +15-19 % training tokens/s for +5 % peak RSS. Training applies it from
`TrainConfig.malloc_mmap_kib`, translation and serving (`for_decoding`) with the same value.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..config import BUCKETED_ONEDNN_CACHE, DECODING_ONEDNN_CACHE, TRAINING_ONEDNN_CACHE, TrainConfig
from ..errors import USER_ERRORS, exit_status
from .hardware import set_tf32, set_threads, shape_buckets_on

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

log = logging.getLogger("seq2seq")

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters from glibc's malloc.h


@dataclass(frozen=True)
class ProcessSettings:
    """What training sets for the whole process (once, before its first oneDNN primitive: `apply`)."""

    threads: int = 0  # torch intra-op threads (0: torch's default)
    onednn_cache: int = -1  # oneDNN primitive-cache entries (< 0: oneDNN's default)
    malloc_mmap_kib: int = 0  # > 0: pin glibc's mmap and trim thresholds (`pin_mmap_threshold`)
    tf32: bool | None = None  # GPU: TF32 for fp32 work (None: leave torch's setting, e.g. on a CPU)

    @classmethod
    def for_training(cls, cfg: TrainConfig, device_type: str) -> ProcessSettings:
        """The process settings of `cfg` for training on a `device_type` device (TF32: CUDA only; a negative
        `onednn_cache`: room for every shape-bucketed batch's primitives, else the last few)."""
        tf32 = cfg.tf32 if device_type == "cuda" else None
        cache = cfg.onednn_cache
        if cache < 0:
            bucketed = shape_buckets_on(cfg.shape_buckets, cfg.precision, device_type)
            cache = BUCKETED_ONEDNN_CACHE if bucketed else TRAINING_ONEDNN_CACHE
        return cls(threads=cfg.threads, onednn_cache=cache, malloc_mmap_kib=cfg.malloc_mmap_kib, tf32=tf32)

    @classmethod
    def for_decoding(cls) -> ProcessSettings:
        """What `seq2seq translate` and `seq2seq serve` set: training's allocator, and caches of 16 entries."""
        return cls(onednn_cache=DECODING_ONEDNN_CACHE, malloc_mmap_kib=TrainConfig.malloc_mmap_kib)


def decide_shape_buckets(cfg: TrainConfig, device_type: str) -> TrainConfig:
    """`cfg` with `shape_buckets` decided ("on" / "off") for training on a `device_type` device (`auto`:
    `hardware.shape_buckets_on`), as a run records it in its configs."""
    on = shape_buckets_on(cfg.shape_buckets, cfg.precision, device_type)
    return dataclasses.replace(cfg, shape_buckets="on" if on else "off")


def apply(settings: ProcessSettings) -> None:
    """Apply `settings` to this process; call it once, before the first RNN or bf16 op (see below)."""
    set_threads(settings.threads)
    limit_onednn_cache(settings.onednn_cache)  # before the first oneDNN primitive (the precision probe makes one)
    pin_mmap_threshold(settings.malloc_mmap_kib)
    if settings.tf32 is not None:
        set_tf32(settings.tf32)


def limit_onednn_cache(entries: int) -> None:
    """Cap oneDNN's primitive cache and torch's cache of oneDNN ops at `entries` each (torch's at >= 1; < 0: the
    defaults).

    oneDNN (and torch) read the capacity once, when the process creates its first primitive, so this must
    run before the first RNN or bf16 op of the process (train() applies it first thing, via `apply`).
    """
    if entries >= 0:
        os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = str(entries)
        # torch's own cache of oneDNN ops (ideep: bf16 matmuls); 0 crashes torch 2.13 (SIGSEGV) at its first use
        os.environ["LRU_CACHE_CAPACITY"] = str(max(entries, 1))


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def malloc_trim() -> bool:
    """glibc's `malloc_trim(0)`: give the heap's free pages back to the OS; False where there is no such call
    (the memory breakdown of devtools/train_memory uses it; training keeps its heap, see the module doc)."""
    try:
        _libc().malloc_trim(0)  # 1 if it gave memory back, 0 if there was none to give
    except (OSError, AttributeError):
        return False
    return True


def pin_mmap_threshold(kib: int) -> bool:
    """Serve allocations of `kib` KiB or more with mmap, smaller ones from the heap, and trim the heap
    top only beyond `kib` KiB of free space (glibc only; at most 2 GiB - 1).

    Returns whether the setting took effect (False on other C libraries, or with kib <= 0).
    """
    if kib <= 0:
        return False
    try:
        libc = _libc()
        size = min(kib * 1024, 2**31 - 1)  # mallopt takes an int
        ok = libc.mallopt(_M_MMAP_THRESHOLD, size) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, size) == 1
    except (OSError, AttributeError):
        ok = False
    if not ok:
        log.debug("mallopt not available: memory is left to the C library's defaults")
    return ok


class StopSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks between updates (then saves and exits)."""

    def __init__(self) -> None:
        self.caught: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.caught = signal.Signals(signum).name

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def one_line(prog: str, run: Callable[[], T]) -> T:
    """`run()`, where a `USER_ERRORS` error ends the process as the command line does: one line on standard
    error (`PROG: error: ...`) and its exit status (the lab and developer scripts run with `python -m`)."""
    try:
        return run()
    except USER_ERRORS as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(exit_status(err))
