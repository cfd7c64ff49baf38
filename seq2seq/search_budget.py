"""What a search may allocate, checked before it starts (`check_search`): the output length limits
(`max_lengths`), the peak bytes of a batch (`search_bytes`), the n-best lists kept until the call returns
(`kept_bytes`), the sentences per batch (an engine's `batch_size`, halved until the batch fits
`DecodeConfig.memory_budget()`) and the parts a call's sources are searched in (`split_parts`, halved until each
part's search and n-best lists fit). search.py searches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from .config import DecodeConfig


def max_lengths(src_lens: np.ndarray, a: float, b: int) -> np.ndarray:
    """Output length limits in pieces, the output's EOS included: a * `src_lens` + b, where a source's length
    counts its EOS (3 pieces + EOS, a=2, b=10: 18, so at most 17 pieces before EOS); float32, truncated."""
    return (np.float32(a) * src_lens.astype(np.float32) + np.float32(b)).astype(np.int64)


def search_bytes(
    rows: int, steps: int, src_len: int, footprint: tuple[int, int], keep_attention: bool, kept_per_row: float = 2.0
) -> int:
    """The peak bytes of a search over `rows` hypotheses (batch x beam) of up to `steps` output pieces:
    per row the token ids of every step (int64, back-pointers resolved into them), one step's top-k
    work over the log-probs (a negated copy and int64 indices: 12 bytes a piece), attention weights
    of every step if kept (float32, twice while they grow), what the engine holds (`footprint`), and the
    finished hypotheses kept (n_best, and one step's K: 1 + n_best / K a row), their ids (Python ints, up
    to 36 bytes a piece) and attention."""
    vocab, engine_bytes = footprint
    live = 8 * (steps + 1) + 12 * vocab + engine_bytes + (8 * steps * src_len if keep_attention else 0)
    finished = kept_per_row * (36 * steps + (4 * steps * src_len if keep_attention else 0))
    return int(rows * (live + finished))


# Bytes a kept hypothesis holds at most: per hypothesis, and per output piece (its id as a Python int, its text
# and output line), at the output length limit; measured with tracemalloc on a Multi30k model (de-en, 8,000
# pieces), 2026-12-06: 330-450 bytes a hypothesis plus about 20 a piece. With attention kept (alignments): per
# hypothesis, per output piece, per source piece (the alignment's pieces and words), and 8 bytes per output x source
# piece (the float32 weights, one column per piece of the batch's longest source, and the word-level weights);
# measured 2.1-3.8 kB a hypothesis plus about 200 bytes a piece beside the weights.
KEPT_BYTES = (512, 40)
KEPT_ATTENTION_BYTES = (4096, 256, 32)


def kept_bytes(src_lens: np.ndarray, cfg: DecodeConfig, keep_attention: bool) -> int:
    """An upper bound of the bytes the n-best lists of sources of `src_lens` pieces (EOS included) hold once
    searched, until the caller lets them go (`KEPT_BYTES`, `KEPT_ATTENTION_BYTES`): `cfg.n_best` hypotheses
    a source, each at its length limit."""
    steps = max_lengths(src_lens, cfg.max_len_a, cfg.max_len_b).astype(np.float64)
    if keep_attention:
        hypothesis, piece, source = KEPT_ATTENTION_BYTES
        longest = float(src_lens.max(initial=0))
        each = hypothesis + steps * (piece + 8 * longest) + source * longest
    else:
        each = KEPT_BYTES[0] + KEPT_BYTES[1] * steps
    return int(cfg.n_best * each.sum())


class OverBudget(ConfigError):
    """A search `check_search` refuses for memory. `reason` says what it would need; `index` is the source that
    does not fit even searched alone, as its caller numbers it (None: they would fit in smaller parts)."""

    def __init__(self, reason: str, index: int | None = None) -> None:
        super().__init__(reason if index is None else f"sentence {index + 1}: {reason}")
        self.reason, self.index = reason, index


def _size(n: float) -> str:
    """Bytes as GB, MB or kB: a budget of 0.015 GB is 15.0 MB, not 0.0 GB."""
    scale, unit = next((s, u) for s, u in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")) if n >= s or u == "kB")
    return f"{n / scale:.1f} {unit}"


def engine_batch_size(engine: Any) -> int:
    """Sentences per batch the engine asks for (`engine.batch_size`), else ONNX's (config.DECODE_BATCH)."""
    from .config import DECODE_BATCH

    return getattr(engine, "batch_size", DECODE_BATCH["onnx"])


def check_search(engine: Any, src_ids: Sequence[Sequence[int]], cfg: DecodeConfig, keep_attention: bool) -> int:
    """The sentences per batch, checked before anything is allocated: `cfg.batch_size`, or with 0 the
    engine's own (`engine.batch_size`; DECODE_BATCH["onnx"] for an engine without one) halved until the
    largest batch (the longest sources, output length limit, full beam) fits `cfg.memory_budget()` beside the
    n-best lists of all the sources (`kept_bytes`, which may take half of it). A beam wider than the engine's
    vocabulary is one ConfigError; over the budget, an `OverBudget`: naming the longest source where its search
    alone (a batch of one, beside its own n-best lists alone) does not fit, else
    naming none (fewer sources at a time would fit: `split_parts`)."""
    if not len(src_ids):
        return 1  # nothing to search (every line blank)
    lens = np.array([min(len(s), cfg.max_src_len) + 1 for s in src_ids], dtype=np.int64)  # EOS appended
    src_len = int(lens.max(initial=1))
    footprint = engine.footprint(src_len) if hasattr(engine, "footprint") else (0, 0)
    if footprint[0]:
        cfg.check_vocab(footprint[0])
    batch = max(1, min(cfg.batch_size or engine_batch_size(engine), len(src_ids)))
    steps = int(max_lengths(np.array([src_len]), cfg.max_len_a, cfg.max_len_b)[0])
    budget, results = cfg.memory_budget(), kept_bytes(lens, cfg, keep_attention)
    where = "memory_budget_gb" if cfg.memory_budget_gb else "half of this machine's memory; memory_budget_gb"
    if results > budget / 2 and len(src_ids) > 1:
        attention = ", attention kept" if keep_attention else ""
        raise OverBudget(f"the n-best lists of {len(src_ids)} sentences would need about {_size(results)} "
                         f"({cfg.n_best} a sentence of up to {steps} output pieces{attention}), over half the budget "
                         f"of {_size(budget)} ({where}): translate fewer sentences at a time, or lower n_best or "
                         "max_len_a/max_len_b")  # fmt: skip
    kept = 1 + cfg.n_best / cfg.beam_size  # finished hypotheses kept per row
    need = search_bytes(batch * cfg.beam_size, steps, src_len, footprint, keep_attention, kept)
    while need + results > budget and batch > 1 and not cfg.batch_size:
        batch = (batch + 1) // 2
        need = search_bytes(batch * cfg.beam_size, steps, src_len, footprint, keep_attention, kept)
    if need + results > budget:
        longest, batch = int(lens.argmax()), 1  # searched alone, a source is a batch of one, whatever batch_size says
        alone = search_bytes(batch * cfg.beam_size, steps, src_len, footprint, keep_attention, kept)
        alone += kept_bytes(lens[longest : longest + 1], cfg, keep_attention)
        if alone <= budget:  # fewer sentences at a time fit: fewer n-best lists beside the batch
            lower = ", or lower batch_size" if cfg.batch_size else ""
            raise OverBudget(f"the search of {len(src_ids)} sentences and their n-best lists would need about "
                             f"{_size(need + results)}, over the budget of {_size(budget)} ({where}): translate "
                             f"fewer sentences at a time{lower}")  # fmt: skip
        raise OverBudget(
            f"this search would need about {_size(alone)} (batch {batch} x beam {cfg.beam_size} x up to {steps} output "
            f"pieces, {footprint[0]}-piece vocabulary), over the budget of {_size(budget)} ({where}): "
            "lower beam_size, batch_size or max_len_a/max_len_b",
            longest,
        )
    return batch


def split_parts(check: Callable[[int, int], object], n: int) -> Iterator[tuple[int, int]]:
    """Ranges [start, end) covering sources 0..`n`, in order, each accepted by `check(start, end)`: a range that
    it refuses with an `OverBudget` naming no source is halved; one naming a source (its index in the range) is
    re-raised naming its index among all `n`, once the ranges before it are yielded (a stream writes them;
    `Translating.translate_nbest` checks all before searching any). At most 2 `n` checks a refusal-free run."""
    todo: list[tuple[int, int, OverBudget | None]] = [(0, n, None)] if n else []
    while todo:
        start, end, refused = todo.pop()
        if refused is not None:
            raise refused
        try:
            check(start, end)
        except OverBudget as err:
            if err.index is None and end - start > 1:
                middle = (start + end) // 2
                todo += [(middle, end, None), (start, middle, None)]
                continue
            at = start + (err.index or 0)
            todo.append((at, at, OverBudget(err.reason, at)))
            if at > start:  # the sources before it first
                todo.append((start, at, None))
            continue
        yield start, end
