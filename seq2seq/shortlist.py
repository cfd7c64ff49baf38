"""A lexical shortlist for decoding: score only the target pieces a sentence can plausibly use.

The output layer (E x V) is the largest matmul of a search step. As Marian does on CPU, each
sentence gets a candidate set: for every source piece, the target pieces that co-occur with it
most strongly in the training pairs (Dice coefficient of sentence co-occurrence), plus the most
frequent target pieces and the special ids. A batch scores the union of its sentences' sets in
one smaller matmul, and each sentence's softmax runs over its own set only (the others are
masked), so a translation does not depend on which sentences share its batch.

The table is built from the training split when training starts and travels in the checkpoint
(`lexicon`). `DecodeConfig.shortlist = k` turns it on with the k best pieces per source piece;
the README reports its speed and BLEU against the full output layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from .prepared import EncodedSplit

N_SPECIAL = 4  # pad, unk, bos, eos: always candidates, and first, so their ids keep their meaning


class Lexicon(NamedTuple):
    """Per source piece, target pieces by decreasing association; target pieces by frequency."""

    table: Tensor  # (src_vocab, per_source) int64
    frequent: Tensor  # (n_frequent,) int64

    def to_payload(self) -> dict[str, Tensor]:
        return {"table": self.table, "frequent": self.frequent}

    @classmethod
    def from_payload(cls, payload: dict[str, Tensor]) -> Lexicon:
        return cls(payload["table"].long(), payload["frequent"].long())


def build_lexicon(
    split: EncodedSplit,
    src_vocab: int,
    tgt_vocab: int,
    per_source: int = 100,
    n_frequent: int = 1000,
    max_pairs: int = 200_000,
    seed: int = 1234,
) -> Lexicon:
    """Count sentence co-occurrences over (a sample of at most `max_pairs`) training pairs."""
    n = len(split)
    rows = np.arange(n) if n <= max_pairs else np.sort(np.random.default_rng(seed).choice(n, max_pairs, replace=False))
    counts = np.zeros(src_vocab * tgt_vocab, dtype=np.int32)
    src_df, tgt_df = np.zeros(src_vocab, dtype=np.int64), np.zeros(tgt_vocab, dtype=np.int64)
    tgt_tf = np.zeros(tgt_vocab, dtype=np.int64)
    for i in rows:
        s = np.unique(split.src_ids[split.src_offsets[i] : split.src_offsets[i + 1]])
        t_all = split.tgt_ids[split.tgt_offsets[i] : split.tgt_offsets[i + 1]]
        t = np.unique(t_all)
        src_df[s] += 1
        tgt_df[t] += 1
        np.add.at(tgt_tf, t_all, 1)
        counts[(s[:, None] * tgt_vocab + t[None, :]).ravel()] += 1
    joint, k = counts.reshape(src_vocab, tgt_vocab), min(per_source, tgt_vocab)
    best = np.empty((src_vocab, k), dtype=np.int64)
    for r in range(0, src_vocab, 256):  # in row blocks: a few MB at a time, not V x V floats
        dice = 2 * joint[r : r + 256] / np.maximum(src_df[r : r + 256, None] + tgt_df[None, :], 1)
        best[r : r + 256] = np.argsort(-dice, axis=1, kind="stable")[:, :k]
    frequent = np.argsort(-tgt_tf, kind="stable")[: min(n_frequent, tgt_vocab)]
    return Lexicon(torch.from_numpy(best), torch.from_numpy(frequent.astype(np.int64)))


class Shortlist(NamedTuple):
    """The candidate pieces of one batch and the output layer restricted to them."""

    ids: Tensor  # (V',) sorted global target ids; ids[:4] are the special ids 0..3
    weight: Tensor  # (V', E) rows of the output layer
    bias: Tensor | None  # (V',)


def make_shortlist(
    lexicon: Lexicon, src_ids: Tensor, src_mask: Tensor, k: int, n_frequent: int, output: torch.nn.Linear
) -> tuple[Shortlist, Tensor]:
    """The shortlist of a padded source batch (B, S) and which of its pieces each sentence may use
    (B, V'): the top `k` pieces of each real source piece and the `n_frequent` most frequent."""
    batch, vocab = src_ids.size(0), output.weight.size(0)
    cand = lexicon.table.to(src_ids.device)[src_ids, :k]  # (B, S, k)
    cand = cand.masked_fill(~src_mask[:, :, None], 0).view(batch, -1)  # padding adds only id 0
    allowed = torch.zeros(batch, vocab, dtype=torch.bool, device=src_ids.device)
    allowed.scatter_(1, cand, True)
    allowed[:, lexicon.frequent[:n_frequent].to(src_ids.device)] = True
    allowed[:, :N_SPECIAL] = True
    ids = allowed.any(dim=0).nonzero().flatten()
    bias = None if output.bias is None else output.bias[ids]
    return Shortlist(ids, output.weight[ids], bias), allowed[:, ids]
