"""Training learns: a tiny run on the toy reversal task of corpora.py lowers the validation loss
and reaches a validation BLEU far above chance, for every cell and with truncated BPTT.

Every other training test compares runs with each other (resumed vs uninterrupted, two ranks vs
one, chunks vs full BPTT), so a trainer that climbs the loss passes them all; this one does not.
The thresholds are loose (measured at b55f506 on a 2-core CPU: final val BLEU 72-94, the loss
falling 3-5x between the first and last validation, with torch's N(0, 1) embeddings, which this tiny model keeps:
emb_init_std=1), not numbers copied from a run.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest
from corpora import write_corpus

from seq2seq.config import DataConfig, ModelConfig, TrainConfig
from seq2seq.train import RunOptions, RunSpec, train

if TYPE_CHECKING:
    from pathlib import Path

STEPS, EVERY = 40, 10
VOCAB = 40  # SentencePiece pieces per side: the uniform guess costs log(40) = 3.7 nats per token
MIN_BLEU = 50.0
CASES = {
    "lstm": ("lstm", 0),
    "lstm tbptt 3": ("lstm", 3),  # chunks of 3 target steps (targets here are up to 6 pieces + EOS)
    "gru": ("gru", 0),
    "rnn": ("rnn", 0),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("learning") / "data")


@pytest.mark.parametrize("case", CASES)
def test_training_lowers_the_validation_loss_and_reaches_a_bleu_threshold(
    corpus: Path, tmp_path: Path, case: str
) -> None:
    cell, tbptt = CASES[case]
    result = train(
        RunSpec(corpus, "xx", "yy", tmp_path / "run"),
        DataConfig(vocab_size=VOCAB),
        ModelConfig(cell=cell, emb_size=32, enc_hidden=32, dec_hidden=32, dropout=0.0, emb_init_std=1.0),
        TrainConfig(
            max_steps=STEPS, valid_every=EVERY, valid_bleu_sentences=20, max_tokens=600, lr=0.01, tbptt=tbptt, threads=1
        ),
        RunOptions(progress=False),
    )
    assert result.steps == STEPS
    losses = [r["val_loss"] for r in result.history]
    assert len(losses) == STEPS // EVERY
    # the loss falls: to well under the uniform guess, and to under 60% of the first validation's
    assert losses[-1] < 0.25 * math.log(VOCAB), losses
    assert losses[-1] < 0.6 * losses[0], losses
    # and the model translates: greedy val BLEU of the last validation
    bleu = result.history[-1]["val_bleu"]
    assert bleu >= MIN_BLEU, [r["val_bleu"] for r in result.history]
