"""The stopping bound of beam search (search._bound) with a length penalty > 0, on a hand-written case
that only the right bound gets right.

With a penalty p > 0 a live hypothesis's log-probability can only fall, but its divisor n ** p
grows: the best it can still score is its log-probability over the *length limit* ** p. Over
the current length instead the bound is too low, and the search stops with a worse result.
(LONG_WINS in test_search.py does not tell the two apart: its live "A" stays above the empty
output even over the current length.)
"""

from __future__ import annotations

import math

import pytest
from test_search import A, ScriptedModel, run_beam

from seq2seq.tokenizer import EOS_ID

# Step 1: EOS .7 ends the empty output: 1 token, lp = log .7 = -0.357 (its score for any p).
# The live "A" has lp = log .3 = -1.204. Over the current length (1 or 2) that is at most -0.602,
# below -0.357, so a bound over the current length stops here and returns the empty output.
# But after A the model is sure: "A A A A" + EOS has lp = log .3 + 4 log .95 = -1.204 - 0.205
# = -1.409 over 5 tokens: -0.282 with p = 1, which beats -0.357.
# With the limit of 10 the bound at step 1 is -1.204 / 10 = -0.120 > -0.357: the search goes on.
# At step 5 "A A A A" ends (-0.282); the live "A A A A A" (lp -1.409 + log .05 = -4.40) is bounded
# by -4.40 / 10 = -0.440 < -0.282: the search stops after 5 steps with "A A A A".
LATE_WINNER = {
    (): {EOS_ID: 0.7, A: 0.3},
    (A,): {A: 0.95, EOS_ID: 0.05},
    (A, A): {A: 0.95, EOS_ID: 0.05},
    (A, A, A): {A: 0.95, EOS_ID: 0.05},
    (A, A, A, A): {EOS_ID: 0.95, A: 0.05},
}


@pytest.mark.parametrize("beam", [2, 3])
def test_the_bound_uses_the_length_limit_so_a_late_long_hypothesis_wins(beam: int) -> None:
    model = ScriptedModel(LATE_WINNER)
    [[best]] = run_beam(model, beam, length_penalty=1.0, max_len=10)
    assert best.ids == [A, A, A, A]
    assert best.log_prob == pytest.approx(math.log(0.3) + 4 * math.log(0.95))
    assert best.score == pytest.approx((math.log(0.3) + 4 * math.log(0.95)) / 5)
    assert best.score > math.log(0.7)  # it does beat the empty output
    assert model.calls == 5  # and the right bound still stops as soon as nothing can beat it


def test_without_a_length_penalty_the_empty_output_wins_at_once() -> None:
    # p = 0: scores are log-probabilities, -0.357 > -1.204 >= anything after A; one step decides it.
    model = ScriptedModel(LATE_WINNER)
    [[best]] = run_beam(model, 2, length_penalty=0.0, max_len=10)
    assert (best.ids, model.calls) == ([], 1)
    assert best.score == pytest.approx(math.log(0.7))


def test_beam_stopping_returns_the_empty_output_after_two_endings() -> None:
    # stopping="beam", beam 2: step 1 ends the empty output, step 2 ends "A" (.3 * .05): two finished, stop.
    model = ScriptedModel(LATE_WINNER)
    [[early]] = run_beam(model, 2, length_penalty=1.0, max_len=10, stopping="beam")
    assert (early.ids, model.calls) == ([], 2)
