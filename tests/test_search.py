"""Greedy and beam search over the engine protocol (search.py), driven by a scripted fake model.

The fake model's distributions are written by hand (probabilities per prefix), so every
expected sequence and score below is worked out in the comments, not copied from a run.
"""

from __future__ import annotations

import math

import pytest
import torch

from seq2seq.config import DecodeConfig
from seq2seq.search import beam_search, greedy_search, search
from seq2seq.tokenizer import BOS_ID, EOS_ID

A, B, C, D = 4, 5, 6, 7  # ordinary tokens; 0-3 are PAD, UNK, BOS, EOS
VOCAB = 8


class PrefixState:
    """The tokens produced so far by each row (BOS excluded)."""

    def __init__(self, prefixes: list[tuple[int, ...]]) -> None:
        self.prefixes = prefixes

    def select(self, idx: torch.Tensor) -> PrefixState:
        return PrefixState([self.prefixes[i] for i in idx.tolist()])


class FakeMemory:
    """Which scripted sentence each row belongs to, and a (B, S) source mask."""

    def __init__(self, sentence: torch.Tensor, src_len: int = 3) -> None:
        self.sentence = sentence
        self.mask = torch.ones(sentence.size(0), src_len, dtype=torch.bool)

    def select(self, idx: torch.Tensor) -> FakeMemory:
        out = FakeMemory(self.sentence.index_select(0, idx), self.mask.size(1))
        out.mask = self.mask.index_select(0, idx)
        return out


class ScriptedModel:
    """`scripts[sentence][prefix]` maps next tokens to probabilities.

    Tokens not listed are impossible (log-prob -inf); a prefix not listed ends for sure (EOS 1.0).
    """

    def __init__(self, *scripts: dict[tuple[int, ...], dict[int, float]]) -> None:
        self.scripts = scripts
        self.calls = 0

    def start(self, sentences: list[int] | None = None) -> tuple[FakeMemory, PrefixState]:
        sentences = sentences if sentences is not None else list(range(len(self.scripts)))
        return FakeMemory(torch.tensor(sentences)), PrefixState([() for _ in sentences])

    def select(self, obj: PrefixState | FakeMemory, rows) -> PrefixState | FakeMemory:
        return obj.select(torch.as_tensor(rows))

    def step(self, prev_ids, state: PrefixState, memory: FakeMemory):
        self.calls += 1
        prefixes = [p if t == BOS_ID else p + (t,) for p, t in zip(state.prefixes, prev_ids.tolist())]
        log_probs = torch.full((len(prefixes), VOCAB), -math.inf)
        for row, (prefix, sent) in enumerate(zip(prefixes, memory.sentence.tolist())):
            for tok, p in self.scripts[sent].get(prefix, {EOS_ID: 1.0}).items():
                log_probs[row, tok] = math.log(p)
        attention = memory.mask.float() / memory.mask.size(1)
        return log_probs, PrefixState(prefixes), attention

    def all_hypotheses(self, sentence: int = 0, prefix: tuple[int, ...] = ()) -> dict[tuple[int, ...], float]:
        """Every complete output of a sentence with its log-probability (brute force)."""
        out = {}
        for tok, p in self.scripts[sentence].get(prefix, {EOS_ID: 1.0}).items():
            if tok == EOS_ID:
                out[prefix] = math.log(p)
            else:
                for ids, lp in self.all_hypotheses(sentence, prefix + (tok,)).items():
                    out[ids] = math.log(p) + lp
        return out


def run_beam(model: ScriptedModel, beam: int, length_penalty: float, n_best: int = 1, max_len: int = 10, **kw):
    memory, state = model.start(kw.pop("sentences", None))
    max_lens = torch.full((memory.sentence.size(0),), max_len)
    return beam_search(model, memory, state, max_lens, beam, length_penalty, n_best, **kw)


def run_greedy(model: ScriptedModel, length_penalty: float = 0.0, max_len: int = 10):
    memory, state = model.start()
    return greedy_search(model, memory, state, torch.full((memory.sentence.size(0),), max_len), length_penalty)


# Greedy takes A (0.6) then ends (0.4): "A" with p = 0.6 * 0.4 = 0.24.
# The best output is "B" then EOS: p = 0.4 * 0.9 = 0.36; greedy never looks at it.
# Beam 2 at step 2 sees  A EOS .24, A C .18, A D .18, B EOS .36, B C .04  and keeps both endings;
# the best live prefix (A C, .18) can only get less probable, so "B" (.36) is final.
GREEDY_TRAP = {
    (): {A: 0.6, B: 0.4},
    (A,): {EOS_ID: 0.4, C: 0.3, D: 0.3},
    (B,): {EOS_ID: 0.9, C: 0.1},
}


def test_greedy_takes_the_locally_best_path() -> None:
    [hyp] = run_greedy(ScriptedModel(GREEDY_TRAP))
    assert hyp.ids == [A]
    assert hyp.log_prob == pytest.approx(math.log(0.24))


def test_greedy_divides_its_score_by_the_length_penalty() -> None:
    """Greedy search was only checked with length_penalty 0 or against other searches' ids: scores left
    undivided passed. "A" then EOS is 2 tokens (EOS counts): score log(0.24) / 2**1."""
    [hyp] = run_greedy(ScriptedModel(GREEDY_TRAP), length_penalty=1.0)
    assert hyp.ids == [A]  # the penalty does not change greedy's path
    assert hyp.log_prob == pytest.approx(math.log(0.24))
    assert hyp.score == pytest.approx(math.log(0.24) / 2)
    [hyp] = run_greedy(ScriptedModel(GREEDY_TRAP), length_penalty=0.5)
    assert hyp.score == pytest.approx(math.log(0.24) / math.sqrt(2))


@pytest.mark.parametrize("beam", [2, 3, 5])
def test_beam_finds_the_more_probable_sequence_greedy_misses(beam: int) -> None:
    [[hyp]] = run_beam(ScriptedModel(GREEDY_TRAP), beam, length_penalty=0.0)
    assert hyp.ids == [B]
    assert hyp.log_prob == pytest.approx(math.log(0.36))
    assert hyp.score == pytest.approx(math.log(0.36))
    # with length_penalty=1 both candidates have 2 tokens (EOS included): same winner, score halved
    [[hyp]] = run_beam(ScriptedModel(GREEDY_TRAP), beam, length_penalty=1.0)
    assert hyp.ids == [B]
    assert hyp.score == pytest.approx(math.log(0.36) / 2)


# A wider tree for n-best and beam-1 checks (each row sums to 1).
TREE = {
    (): {A: 0.5, B: 0.3, C: 0.2},
    (A,): {EOS_ID: 0.3, A: 0.4, B: 0.3},
    (A, A): {EOS_ID: 0.6, C: 0.4},
    (A, B): {EOS_ID: 0.7, D: 0.3},
    (B,): {EOS_ID: 0.7, D: 0.3},
    (C,): {EOS_ID: 0.1, A: 0.9},
    (C, A): {EOS_ID: 0.95, B: 0.05},
}


@pytest.mark.parametrize("script", [GREEDY_TRAP, TREE])
def test_beam_one_without_length_penalty_equals_greedy_on_scripted_model(script) -> None:
    [greedy] = run_greedy(ScriptedModel(script))
    [[beam]] = run_beam(ScriptedModel(script), 1, length_penalty=0.0)
    assert beam.ids == greedy.ids
    assert beam.log_prob == pytest.approx(greedy.log_prob, abs=1e-6)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_n_best_are_the_best_distinct_hypotheses_sorted_by_score(length_penalty: float) -> None:
    model = ScriptedModel(TREE)
    every = model.all_hypotheses()  # 10 complete outputs, brute force, no two equally likely
    assert len(every) == 10
    expected = sorted(every, key=lambda ids: -every[ids] / (len(ids) + 1) ** length_penalty)
    for beam, n in [(3, 3), (4, 2), (10, 10)]:
        hyps = run_beam(ScriptedModel(TREE), beam, length_penalty, n_best=n)[0]
        assert len(hyps) == n
        assert len({tuple(h.ids) for h in hyps}) == n  # distinct
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        for h in hyps:  # scores and log-probs agree with the scripted probabilities
            assert h.log_prob == pytest.approx(every[tuple(h.ids)])
            assert h.score == pytest.approx(h.log_prob / (len(h.ids) + 1) ** length_penalty)
        if beam >= 10:  # a beam as wide as the tree is exhaustive
            assert [tuple(h.ids) for h in hyps] == expected[:n]
        else:
            assert tuple(hyps[0].ids) == expected[0]


# Step 1: EOS .45 (the empty output, 1 token: lp = log .45 = -0.799) or A .55.
# After A, A, A the model is confident: A .9, A .9, EOS .9, so "A A A" has
# lp = log .55 + 3 log .9 = -0.598 - 0.316 = -0.914 over 4 tokens (EOS included).
#   length_penalty 0: -0.799 > -0.914            -> the empty output wins
#   length_penalty 1: -0.799 / 1 < -0.914 / 4 = -0.229  -> "A A A" wins, although it ends
#   three steps after the empty output ended at the top of the beam.
LONG_WINS = {
    (): {EOS_ID: 0.45, A: 0.55},
    (A,): {A: 0.9, EOS_ID: 0.1},
    (A, A): {A: 0.9, EOS_ID: 0.1},
    (A, A, A): {EOS_ID: 0.9, A: 0.1},
}


@pytest.mark.parametrize("beam", [2, 4])
def test_length_penalty_prefers_a_longer_hypothesis_that_ends_later(beam: int) -> None:
    [[short]] = run_beam(ScriptedModel(LONG_WINS), beam, length_penalty=0.0)
    assert short.ids == []
    assert short.log_prob == pytest.approx(math.log(0.45))

    [[long]] = run_beam(ScriptedModel(LONG_WINS), beam, length_penalty=1.0)
    assert long.ids == [A, A, A]
    assert long.log_prob == pytest.approx(math.log(0.55) + 3 * math.log(0.9))
    assert long.score == pytest.approx(long.log_prob / 4)


def test_beam_stopping_ends_a_sentence_once_beam_size_hypotheses_have_finished() -> None:
    # LONG_WINS, beam 2, length penalty 1. Step 1 finishes the empty output (-0.799 / 1) and keeps A;
    # step 2 finishes "A" (p .55 * .1 = .055: -2.90 / 2 = -1.45) next to the live "A A": two finished.
    # "beam" stops there and returns the empty output; "bound" goes on and finds "A A A" (-0.229).
    fast, exact = ScriptedModel(LONG_WINS), ScriptedModel(LONG_WINS)
    [[early]] = run_beam(fast, 2, length_penalty=1.0, stopping="beam")
    [[best]] = run_beam(exact, 2, length_penalty=1.0, stopping="bound")
    assert (early.ids, fast.calls) == ([], 2)
    assert early.score == pytest.approx(math.log(0.45))
    assert best.ids == [A, A, A] and exact.calls > 2
    with pytest.raises(ValueError, match="stopping"):
        run_beam(ScriptedModel(LONG_WINS), 2, length_penalty=1.0, stopping="first")


def test_search_stops_early_when_no_live_hypothesis_can_win() -> None:
    # GREEDY_TRAP is decided after 2 steps (see above); the limit of 50 is never approached.
    model = ScriptedModel(GREEDY_TRAP)
    run_beam(model, 2, length_penalty=0.0, max_len=50)
    assert model.calls == 2


class NeverEnds(ScriptedModel):
    """A .4, B .3, C .2, D .1 at every step; EOS (log-prob -30) is never among the best candidates."""

    def __init__(self) -> None:
        super().__init__({})

    def step(self, prev_ids, state, memory):
        self.calls += 1
        prefixes = [p if t == BOS_ID else p + (t,) for p, t in zip(state.prefixes, prev_ids.tolist())]
        log_probs = torch.full((len(prefixes), VOCAB), -math.inf)
        for tok, p in {A: 0.4, B: 0.3, C: 0.2, D: 0.1}.items():
            log_probs[:, tok] = math.log(p)
        log_probs[:, EOS_ID] = -30.0
        return log_probs, PrefixState(prefixes), memory.mask.float() / memory.mask.size(1)


@pytest.mark.parametrize("max_len", [1, 2, 7])
def test_eos_is_forced_at_the_length_limit(max_len: int) -> None:
    # max_len counts EOS, so the outputs have max_len - 1 real tokens
    [greedy] = run_greedy(NeverEnds(), max_len=max_len)
    assert greedy.ids == [A] * (max_len - 1)
    assert greedy.log_prob == pytest.approx((max_len - 1) * math.log(0.4) - 30.0)
    for length_penalty in (0.0, 1.0):
        n_best = min(3, 4 ** (max_len - 1))
        hyps = run_beam(NeverEnds(), 3, length_penalty, n_best=n_best, max_len=max_len)[0]
        assert len(hyps) == n_best
        assert all(len(h.ids) == max_len - 1 for h in hyps)
        assert hyps[0].ids == [A] * (max_len - 1)


def test_each_sentence_gets_its_own_length_limit() -> None:
    model = NeverEnds()
    memory, state = model.start([0, 0, 0])
    max_lens = torch.tensor([5, 2, 8])
    hyps = beam_search(model, memory, state, max_lens, 2, 1.0, 1)
    assert [len(h[0].ids) for h in hyps] == [4, 1, 7]
    greedy = greedy_search(model, *model.start([0, 0, 0]), max_lens)
    assert [len(h.ids) for h in greedy] == [4, 1, 7]


def test_scripted_batch_gives_each_sentence_its_own_result() -> None:
    # three sentences with different scripts searched together, in both orders
    scripts = (GREEDY_TRAP, TREE, LONG_WINS)
    alone = [run_beam(ScriptedModel(s), 3, 1.0, n_best=2)[0] for s in scripts]
    for order in ([0, 1, 2], [2, 0, 1], [1, 1, 0]):
        together = run_beam(ScriptedModel(*scripts), 3, 1.0, n_best=2, sentences=order)
        for sent, hyps in zip(order, together):
            assert [(h.ids, round(h.score, 6)) for h in hyps] == [(h.ids, round(h.score, 6)) for h in alone[sent]]


class EndsEveryStep(NeverEnds):
    """A .5, EOS .3, B .2 at every step, over a source of 200 positions: a hypothesis finishes at every step."""

    def start(self, sentences: list[int] | None = None) -> tuple[FakeMemory, PrefixState]:
        return FakeMemory(torch.tensor(sentences or [0]), src_len=200), PrefixState([()] * len(sentences or [0]))

    def step(self, prev_ids, state, memory):
        self.calls += 1
        prefixes = [p if t == BOS_ID else p + (t,) for p, t in zip(state.prefixes, prev_ids.tolist())]
        log_probs = torch.full((len(prefixes), VOCAB), -math.inf)
        for tok, p in {A: 0.5, EOS_ID: 0.3, B: 0.2}.items():
            log_probs[:, tok] = math.log(p)
        return log_probs, PrefixState(prefixes), memory.mask.float() / memory.mask.size(1)


def test_finished_hypotheses_beyond_n_best_are_dropped_as_the_search_goes() -> None:
    """Every finished hypothesis was kept, with a copy of its attention, until the end: at length penalty 10 the
    search runs to the limit and 300 steps kept ~300 x (t, 200) float32 arrays (~36 MB), none of them counted
    by the memory check. Only n_best can be returned, so only n_best (+ one step's) are kept."""
    import tracemalloc

    tracemalloc.start()
    [hyps] = run_beam(EndsEveryStep(), 4, length_penalty=10.0, n_best=2, max_len=300, keep_attention=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(hyps) == 2 and hyps[0].ids == [A] * 299 and hyps[0].score >= hyps[1].score  # the longest wins
    assert peak < 8e6, peak


def test_keep_attention_has_one_row_per_output_step() -> None:
    [[hyp]] = run_beam(ScriptedModel(LONG_WINS), 2, 1.0, keep_attention=True)
    assert hyp.attention.shape == (len(hyp.ids) + 1, 3)
    [g] = greedy_search(ScriptedModel(LONG_WINS), *ScriptedModel(LONG_WINS).start(), torch.tensor([10]), 0.0, True)
    assert g.attention.shape == (len(g.ids) + 1, 3)


# --- batch size: the same texts, scores to float32 rounding (search.search's guarantee) -----------

# Two first pieces within 1e-6 in log-probability (float32 resolves 6e-8 at log 0.4): A wins in
# one script, B in the other; the decision must not depend on which sentences share the batch.
NEAR_A = {(): {A: 0.4, B: 0.4 * (1 - 1e-6), C: 0.2}, (A,): {EOS_ID: 0.5, D: 0.5}, (B,): {EOS_ID: 0.5, D: 0.5}}
NEAR_B = {(): {A: 0.4 * (1 - 1e-6), B: 0.4, C: 0.2}, (A,): {EOS_ID: 0.5, D: 0.5}, (B,): {EOS_ID: 0.5, D: 0.5}}


class ScriptedEngine(ScriptedModel):
    """The scripted model behind `search`: a source's first id minus 4 picks its script."""

    def encode(self, src_ids):
        return self.start([ids[0] - 4 for ids in src_ids])


@pytest.mark.parametrize(("beam", "n_best", "length_penalty"), [(1, 1, 0.0), (3, 2, 1.0), (4, 1, 0.6)])
def test_near_ties_do_not_flip_with_the_batch_size(beam: int, n_best: int, length_penalty: float) -> None:
    engine = ScriptedEngine(NEAR_A, NEAR_B, GREEDY_TRAP, TREE, LONG_WINS)
    g = torch.Generator().manual_seed(5)
    sources = [[4 + int(torch.randint(5, (1,), generator=g))] + [9] * int(torch.randint(6, (1,), generator=g))
               for _ in range(14)] + [[4], [5]]  # fmt: skip
    runs = {
        size: search(
            engine, sources, DecodeConfig(beam_size=beam, n_best=n_best, length_penalty=length_penalty, batch_size=size)
        )
        for size in (1, 3, 64)
    }
    for size in (3, 64):
        for alone, batched in zip(runs[1], runs[size]):
            assert [h.ids for h in batched] == [h.ids for h in alone]
            assert [h.score for h in batched] == pytest.approx([h.score for h in alone], abs=1e-5)
    # the near-tie went to the (slightly) more probable piece, in every batch
    for src, hyps in zip(sources, runs[64]):
        if src[0] in (4, 5):
            assert hyps[0].ids[0] == (A if src[0] == 4 else B)
