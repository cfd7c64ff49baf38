"""Training batches: token-budget batch lists, padding, and a padded `Batch` of an encoded split.

Shape buckets (`bucketed=True`, `TrainConfig.shape_buckets`): every pair falls in the width bucket of
its longer side (`bucket_width`: a multiple of 4 up to 32, of 8 up to 64, of 16 up to 128, then of
32), and a bucket's batches are padded to one shape, `bucket_shape`: (rows, width) with rows the
token budget over the width, rounded down to a multiple of 16. Source and target are both padded to
the width and short batches get rows of nothing (source EOS alone, target all padding), so a run sees
about a dozen batch shapes on Multi30k instead of a new one per update. The model's output at the
real positions does not change (padding comes after every sentence and is masked out); the batch
costs more FLOPs, and on a CPU whose kernels are expensive to make (bf16 on AMX) it pays many times
over (docs/speed.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .ids import BOS_ID, EOS_ID, PAD_ID

if TYPE_CHECKING:
    from .prepared import EncodedSplit


class Batch(NamedTuple):
    """A padded training batch; target input starts with BOS, target output ends with EOS."""

    src_ids: Tensor  # (B, S) source pieces + EOS
    src_lens: Tensor  # (B,)
    tgt_in: Tensor  # (B, T) BOS + target pieces
    tgt_out: Tensor  # (B, T) target pieces + EOS
    n_tokens: int  # real (non-pad) target tokens

    def to(self, device: torch.device | str) -> Batch:
        """The batch on `device`; to a GPU through pinned memory, copied asynchronously."""
        tensors = self[:4]
        if torch.device(device).type == "cuda":
            tensors = tuple(t.pin_memory() for t in tensors)
        return Batch(*(t.to(device, non_blocking=True) for t in tensors), self.n_tokens)


def pad(seqs: list[np.ndarray | list[int]], before: int | None = None, after: int | None = None) -> Tensor:
    """A (B, max_len) LongTensor of `seqs`, each optionally wrapped in `before`/`after` ids.

    Built in NumPy, one slice assignment per row (per-row tensor copies, or `list()` of a
    memory-mapped row, cost ~5 % of a CPU training step).
    """
    lens = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    first = int(before is not None)
    out = np.full((len(seqs), int(lens.max()) + first + (after is not None)), PAD_ID, dtype=np.int64)
    for row, s in zip(out, seqs):
        row[first : first + len(s)] = s
    if before is not None:
        out[:, 0] = before
    if after is not None:
        out[np.arange(len(seqs)), first + lens] = after
    return torch.from_numpy(out)


ROW_ALIGN = 16  # bucketed batches' rows: a multiple of this (AMX tiles have 16 rows), where the budget allows


def bucket_width(width: np.ndarray) -> np.ndarray:
    """The bucket of each padded width (longer side + EOS/BOS): rounded up to a multiple of 4 up to 32,
    of 8 up to 64, of 16 up to 128, of 32 beyond."""
    step = np.select([width <= 32, width <= 64, width <= 128], [4, 8, 16], 32)
    return -(-width // step) * step


def bucket_shape(width: int, max_tokens: int) -> tuple[int, int]:
    """(rows, columns) of a bucketed batch of pairs up to `width` wide: the budget's rows at the bucket's
    width (a multiple of `ROW_ALIGN` when there are that many; at least one)."""
    cols = int(bucket_width(np.array(width)))
    rows = max_tokens // cols
    return (rows // ROW_ALIGN * ROW_ALIGN if rows >= ROW_ALIGN else max(rows, 1)), cols


def _fit(t: Tensor, rows: int, cols: int, first: int | None = None) -> Tensor:
    """`t` (B, L) padded with PAD_ID to (rows, cols); the added rows start with `first` if given."""
    out = torch.full((rows, cols), PAD_ID, dtype=t.dtype)
    out[: t.size(0), : t.size(1)] = t
    if first is not None:
        out[t.size(0) :, 0] = first
    return out


def collate(split: EncodedSplit, indices: np.ndarray, bucket_tokens: int = 0) -> Batch:
    """Build the batch of the given pair indices; with `bucket_tokens` (the token budget), padded to its
    bucket's shape (`bucket_shape`), added rows holding a source of EOS alone and no target."""
    src = [split.src_ids[split.src_offsets[i] : split.src_offsets[i + 1]] for i in indices]
    tgt = [split.tgt_ids[split.tgt_offsets[i] : split.tgt_offsets[i + 1]] for i in indices]
    src_lens = torch.tensor([len(s) + 1 for s in src])
    n_tokens = sum(len(t) + 1 for t in tgt)
    batch = Batch(pad(src, after=EOS_ID), src_lens, pad(tgt, before=BOS_ID), pad(tgt, after=EOS_ID), n_tokens)
    if not bucket_tokens:
        return batch
    rows, cols = bucket_shape(max(batch.src_ids.size(1), batch.tgt_in.size(1)), bucket_tokens)
    if len(indices) > rows:
        raise ValueError(f"{len(indices)} pairs do not fit a bucketed batch of {rows} rows")
    lens = torch.ones(rows, dtype=src_lens.dtype)
    lens[: len(indices)] = src_lens
    tgt_in, tgt_out = (_fit(t, rows, cols) for t in batch[2:4])
    return Batch(_fit(batch.src_ids, rows, cols, EOS_ID), lens, tgt_in, tgt_out, n_tokens)


def make_batches(
    src_lens: np.ndarray,
    tgt_lens: np.ndarray,
    max_tokens: int,
    rng: np.random.Generator | None = None,
    bucketed: bool = False,
) -> list[np.ndarray]:
    """Length-bucketed batches of indices with at most `max_tokens` padded tokens on either side.

    Pairs are sorted by target then source length (random tie-break when `rng` is given) and cut
    into consecutive runs, so each batch holds similar lengths; `rng` also shuffles batch order.
    `bucketed`: sorted by width bucket first, each bucket cut into batches of `bucket_shape` rows
    (collate with `bucket_tokens=max_tokens` pads them to that shape).
    """
    n = len(src_lens)
    tie = rng.random(n) if rng is not None else np.arange(n)
    if bucketed:
        return _bucketed(src_lens, tgt_lens, max_tokens, tie, rng)
    order = np.lexsort((tie, src_lens, tgt_lens))
    width = np.maximum(src_lens, tgt_lens)[order] + 1  # + EOS / BOS
    batches, start, widest = [], 0, 0
    for i in range(n):
        widest_i = max(widest, int(width[i]))
        if i > start and widest_i * (i - start + 1) > max_tokens:
            batches.append(order[start:i])
            start, widest_i = i, int(width[i])
        widest = widest_i
    if n:
        batches.append(order[start:])
    if rng is not None:
        rng.shuffle(batches)
    return batches


def _bucketed(
    src_lens: np.ndarray, tgt_lens: np.ndarray, max_tokens: int, tie: np.ndarray, rng: np.random.Generator | None
) -> list[np.ndarray]:
    """`make_batches` with shape buckets: each bucket's pairs, sorted as there, in runs of its rows."""
    buckets = bucket_width(np.maximum(src_lens, tgt_lens) + 1)
    order = np.lexsort((tie, src_lens, tgt_lens, buckets))
    batches = []
    for cols in np.unique(buckets):
        members = order[buckets[order] == cols]
        rows = bucket_shape(int(cols), max_tokens)[0]
        batches += [members[i : i + rows] for i in range(0, len(members), rows)]
    if rng is not None:
        rng.shuffle(batches)
    return batches
