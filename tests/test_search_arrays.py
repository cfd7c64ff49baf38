"""The one search (search.py) over whatever arrays an engine hands it: NumPy log-probs (the ONNX
engine) and torch tensors (the torch engine) give identical hypotheses and scores, driven by one
random log-prob table through both; and its top-k is exact on wide rows with ties and infinities.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch

from seq2seq import search
from seq2seq.tokenizer import BOS_ID, EOS_ID
from seq2seq.translation.base import equal_groups

# --- the one search, whatever arrays the engine hands it -----------------------------------------


class Rows(NamedTuple):
    """Memory and state of the table engines: the sentence each row belongs to."""

    sent: np.ndarray

    def select(self, idx) -> Rows:  # a NumPy array or a torch tensor
        return Rows(self.sent[np.asarray(idx)])


class TableNet:
    """A next-piece distribution per (sentence, step, previous piece), handed over as NumPy arrays
    (as the ONNX engine does).

    With the step in the key, different outputs have different scores (no exact ties, whose
    order two top-k implementations may break differently).
    """

    def __init__(self, table: np.ndarray) -> None:
        self.table, self.t = table, 0  # (sentences, steps, V, V) normalised float32 log-probs

    def next(self, sent: np.ndarray, prev: np.ndarray) -> np.ndarray:
        self.t += 1
        return self.table[sent, self.t - 1, prev]

    def select(self, obj: Rows, rows: np.ndarray) -> Rows:
        return obj.select(rows)

    def step(self, prev: np.ndarray, state: Rows, memory: Rows):
        return self.next(memory.sent, prev), state, np.zeros((len(prev), 1), np.float32)


class TableStepper(TableNet):
    """The same table handed over as torch tensors (as a torch model's step returns them)."""

    def step(self, prev_ids: np.ndarray, state: Rows, memory: Rows):
        return torch.from_numpy(self.next(memory.sent, prev_ids)), state, torch.zeros(len(prev_ids), 1)


def _table(seed: int, sentences: int, steps: int, vocab: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((sentences, steps, vocab, vocab)) * 2
    logits[..., EOS_ID] -= 1.5  # long enough outputs that the length limits matter too
    logits[..., : BOS_ID + 1] = -np.inf  # never PAD, UNK or BOS
    return (logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))).astype(np.float32)


def _searched(engine, rows: Rows, max_lens, beam: int, penalty: float, n_best: int, stopping: str) -> list:
    """(ids, score, log_prob) of each sentence's hypotheses: greedy for beam 1, else beam search."""
    if beam == 1:
        found = [[h] for h in search.greedy_search(engine, rows, rows, max_lens, penalty)]
    else:
        found = search.beam_search(engine, rows, rows, max_lens, beam, penalty, n_best, stopping=stopping)
    return [[(h.ids, h.score, h.log_prob) for h in hyps] for hyps in found]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "beam,penalty,n_best,stopping",
    [(1, 0.0, 1, "bound"), (1, 1.0, 1, "bound"), (3, 1.0, 2, "bound"), (4, 0.6, 4, "beam"), (5, 0.0, 1, "bound"),
     (3, -0.5, 1, "bound"), (2, 1.0, 1, "beam")],
)  # fmt: skip
def test_one_search_gives_the_same_hypotheses_from_numpy_and_torch_arrays(
    seed: int, beam: int, penalty: float, n_best: int, stopping: str
) -> None:
    n, vocab = 5, 12
    max_lens, rows = np.array([3, 9, 5, 14, 1]), Rows(np.arange(n))
    table, limits = _table(seed, n, max_lens.max(), vocab), torch.from_numpy(max_lens)
    expect = _searched(TableStepper(table), rows, limits, beam, penalty, n_best, stopping)
    got = _searched(TableNet(table), rows, max_lens, beam, penalty, n_best, stopping)
    assert got == expect
    assert all(len(ids) < m for hyps, m in zip(got, max_lens) for ids, _, _ in hyps)  # EOS counts toward the limit


def test_topk_is_exact_on_wide_rows_with_ties_and_infinities() -> None:
    rng = np.random.default_rng(0)
    for trial in range(100):
        n, k = int(rng.integers(1, 9)), int(rng.integers(1, 11))
        x = rng.standard_normal((n, 16 * int(rng.integers(40, 200)))).astype(np.float32)
        x[rng.random(x.shape) < 0.3] = -np.inf
        if trial % 3 == 0:
            x = np.round(x)  # many ties
        if trial % 4 == 0:
            x[0] = -np.inf
            x[0, :2] = 1.0  # fewer finite values than k
        vals, idx = search.topk(x, k)
        assert np.array_equal(vals, -np.sort(-x, axis=1)[:, :k])
        assert np.array_equal(np.take_along_axis(x, idx, axis=1), vals)
        assert all(len(set(row)) == k for row in idx.tolist())


class TableCandidates(TableNet):
    """The same table handing the search each row's k best pieces (as the ONNX graph's TopK does)."""

    supports_candidates = True

    def __init__(self, table: np.ndarray) -> None:
        super().__init__(table)
        self.vocab = table.shape[-1]

    def candidates(self, prev: np.ndarray, state: Rows, memory: Rows, k: int):
        log_probs = self.next(memory.sent, prev)
        ids = np.argsort(-log_probs, axis=1, kind="stable")[:, :k]  # best first, ties to the lower id
        values = np.take_along_axis(log_probs, ids, axis=1)
        return values, ids, log_probs[:, EOS_ID].copy(), state, np.zeros((len(prev), 1), np.float32)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("beam,penalty,n_best,stopping", [(1, 0.0, 1, "bound"), (1, 1.0, 1, "bound"),
    (3, 1.0, 3, "bound"), (4, 0.6, 4, "beam"), (5, 0.0, 5, "bound"), (7, -0.5, 2, "bound")])  # fmt: skip
def test_searching_each_rows_best_candidates_is_searching_all_log_probs(
    seed: int, beam: int, penalty: float, n_best: int, stopping: str
) -> None:
    """Each row's 2K best pieces hold every continuation a beam of K can keep (greedy: the best one),
    at the length limits too (only EOS) and with 2K over the vocabulary (beam 7, 12 pieces)."""
    n, vocab = 5, 12
    max_lens, rows = np.array([3, 9, 5, 14, 1]), Rows(np.arange(n))
    table = _table(seed, n, max_lens.max(), vocab)
    expect = _searched(TableNet(table), rows, max_lens, beam, penalty, n_best, stopping)
    assert _searched(TableCandidates(table), rows, max_lens, beam, penalty, n_best, stopping) == expect


def test_a_row_whose_best_piece_is_eos_still_hands_the_search_k_live_candidates() -> None:
    """At the first step only beam 0 is live; with EOS its best piece, a row's K best would leave K - 1
    live continuations: the 2K best keep all K."""
    n, vocab, beam = 4, 12, 4
    table = _table(0, n, 8, vocab)
    table[:, 0, :, EOS_ID] = table[:, 0, :, :].max(axis=-1) + 1.0  # EOS first at step 0 (no longer normalised)
    for s in range(n):  # the K-th best other piece, then EOS for sure: its hypothesis is among the best
        kth = [p for p in np.argsort(-table[s, 0, BOS_ID], kind="stable") if p != EOS_ID][beam - 1]
        table[s, 1, kth] = -30.0
        table[s, 1, kth, EOS_ID] = 0.0
    max_lens, rows = np.array([8, 8, 6, 7]), Rows(np.arange(n))
    expect = search.beam_search(TableNet(table), rows, rows, max_lens, beam, 1.0, beam)
    got = search.beam_search(TableCandidates(table), rows, rows, max_lens, beam, 1.0, beam)
    assert [[(h.ids, h.score) for h in hyps] for hyps in got] == [[(h.ids, h.score) for h in hyps] for hyps in expect]
    assert all(len(hyps) == beam for hyps in got)


@pytest.mark.parametrize(
    ("rows", "group", "expect"),
    [
        ([0, 0, 1, 1, 2, 2], 1, ([0, 1, 2], 2)),  # beams made from a batch
        ([0, 1, 2, 6, 7, 8], 3, ([0, 2], 3)),  # whole sentences 0 and 2 kept, 3 rows each
        ([2, 0, 1, 4, 3, 5], 3, ([0, 1], 3)),  # rows reordered within their sentences
        ([0, 1], 1, ([0, 1], 1)),  # greedy
        ([0, 0, 0, 1], 1, None),  # unequal groups
        ([0, 1, 0, 1], 1, ([0, 1, 0, 1], 1)),  # a sentence in two places: a memory row each
        ([0, 0, 1, 1, 0, 0], 1, ([0, 1, 0], 2)),  # ... also in groups
    ],
)
def test_memory_rows_stay_per_sentence_only_for_whole_equal_groups(
    rows: list, group: int, expect: tuple | None
) -> None:
    found = equal_groups(np.asarray(rows) // group)
    if expect is None:
        assert found is None
    else:
        assert found is not None and found[0].tolist() == expect[0] and found[1] == expect[1]
