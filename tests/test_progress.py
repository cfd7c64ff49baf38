"""The learning-rate schedules and the training clock (max_minutes over resumed sessions)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from corpora import write_corpus

from seq2seq.checkpoint import load_checkpoint
from seq2seq.config import ConfigError, DataConfig, ModelConfig, TrainConfig
from seq2seq.progress import TrainState, after_validation, budget_progress, early_stop, learning_rate
from seq2seq.train import RunOptions, RunSpec, train

if TYPE_CHECKING:
    from pathlib import Path

MODEL = ModelConfig(emb_size=16, enc_hidden=16, dec_hidden=32)
DATA = DataConfig(vocab_size=60)


def test_budget_progress_is_whichever_budget_ends_first() -> None:
    assert budget_progress(TrainConfig(max_steps=200), 50, 1e6) == 0.25
    assert budget_progress(TrainConfig(max_minutes=2.0), 10**6, 30.0) == 0.25
    both = TrainConfig(max_steps=100, max_minutes=1.0)
    assert budget_progress(both, 10, 30.0) == 0.5 and budget_progress(both, 80, 30.0) == 0.8
    assert budget_progress(both, 500, 0.0) == 1.0  # capped
    assert budget_progress(TrainConfig(), 10**6, 1e6) == 0.0  # no budget


def test_anneal_is_constant_then_linear_to_min_lr() -> None:
    cfg = TrainConfig(lr=1.0, min_lr=0.0, lr_schedule="anneal", anneal_fraction=0.4, max_steps=100)
    step, scale = 10, 0.125  # plateau decays do not apply to "anneal"
    assert [learning_rate(cfg, step, scale, p) for p in (0.0, 0.6)] == [1.0, 1.0]
    assert learning_rate(cfg, step, scale, 0.8) == pytest.approx(0.5)
    assert learning_rate(cfg, step, scale, 0.9) == pytest.approx(0.25)
    assert learning_rate(cfg, step, scale, 1.0) == 0.0
    floor = TrainConfig(lr=1.0, min_lr=0.1, lr_schedule="anneal", anneal_fraction=1.0, max_steps=10)
    assert learning_rate(floor, step, scale, 0.5) == pytest.approx(0.55)
    assert learning_rate(floor, step, scale, 1.0) == pytest.approx(0.1)
    warm = TrainConfig(lr=1.0, min_lr=0.0, lr_schedule="anneal", warmup_steps=4, max_steps=100)
    assert learning_rate(warm, 1, 1.0, 0.0) == 0.5  # (step + 1) / warmup


def test_plateau_schedule_uses_the_decays() -> None:
    """The warm-up was checked on "anneal" only: a plateau rate without it passed."""
    cfg = TrainConfig(lr=1.0, min_lr=0.1)
    assert learning_rate(cfg, 0, 0.5, 0.99) == 0.5
    assert learning_rate(cfg, 0, 0.01, 0.0) == 0.1
    warm = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=4)
    assert [learning_rate(warm, s, 1.0, 0.0) for s in (0, 1, 3, 10)] == [0.25, 0.5, 1.0, 1.0]  # (step + 1) / warmup
    assert learning_rate(warm, 1, 0.5, 0.0) == 0.25  # the decays and the warm-up multiply


def test_validations_without_improvement_decay_the_lr_and_count_toward_early_stopping() -> None:
    """The schedule above was only fed lr_scale by hand: a validation loop that never decayed it, nor
    counted the validations that stop a run early, passed."""
    cfg = TrainConfig(lr=1.0, min_lr=0.1, lr_decay=0.5, lr_patience=2, patience=3, best_metric="loss")
    st = TrainState()
    seen = []
    for loss in (2.0, 1.0, 1.5, 1.2, 3.0):  # first, better, then three worse than 1.0
        improved = after_validation(cfg, st, {"val_loss": loss})
        seen.append((improved, st.best, st.bad_validations, st.plateau, st.lr_scale, early_stop(cfg, st)))
    stop = "early stopping (no improvement in 3 validations)"
    assert seen == [
        (True, -2.0, 0, 0, 1.0, None),
        (True, -1.0, 0, 0, 1.0, None),
        (False, -1.0, 1, 1, 1.0, None),
        (False, -1.0, 2, 0, 0.5, None),  # lr_patience=2 worse ones: one decay, the plateau count restarts
        (False, -1.0, 3, 1, 0.5, stop),
    ]
    assert learning_rate(cfg, 100, st.lr_scale, 0.0) == 0.5
    assert after_validation(cfg, st, {"val_loss": 0.5}) and (st.bad_validations, st.plateau) == (0, 0)
    assert st.lr_scale == 0.5  # an improvement ends the counts, not the decays
    anneal = TrainConfig(lr_schedule="anneal", max_steps=10, lr_patience=1, best_metric="loss")
    st = TrainState()
    for loss in (1.0, 2.0, 2.0):
        after_validation(anneal, st, {"val_loss": loss})
    assert (st.lr_scale, st.bad_validations) == (1.0, 2)  # "anneal" has no plateau decays


def test_anneal_needs_a_budget() -> None:
    with pytest.raises(ConfigError, match="max_steps and/or max_minutes"):
        TrainConfig(lr_schedule="anneal")


def test_annealed_run_ends_at_min_lr_and_logs_the_schedule(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=60)
    cfg = TrainConfig(max_tokens=120, max_steps=10, valid_every=5, valid_bleu_sentences=0, log_every=1,
                      lr=0.01, min_lr=0.001, lr_schedule="anneal", anneal_fraction=0.5)  # fmt: skip
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    lrs = [r["lr"] for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
           if r["type"] == "train"]  # fmt: skip
    # update k runs at progress (k - 1) / 10: constant up to 0.5, then linear toward 0.001 at 1.0
    assert lrs == pytest.approx([0.01] * 6 + [0.001 + 0.009 * (10 - k) / 5 for k in range(6, 10)])


@pytest.mark.parametrize(("bleu_sentences", "picks"), [(100, "bleu"), (0, "loss")])
def test_best_metric_bleu_without_validation_bleu_selects_by_the_loss(bleu_sentences: int, picks: str) -> None:
    cfg, st = TrainConfig(best_metric="bleu", valid_bleu_sentences=bleu_sentences), TrainState()
    assert after_validation(cfg, st, {"val_loss": 2.0, "val_bleu": 10.0})
    better_bleu_worse_loss = {"val_loss": 3.0, "val_bleu": 20.0}
    assert after_validation(cfg, st, better_bleu_worse_loss) == (picks == "bleu")


def test_max_minutes_counts_over_resumed_sessions(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=60)
    cfg = TrainConfig(max_tokens=120, max_steps=4, valid_every=4, valid_bleu_sentences=0)
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert next(r for r in records if r["type"] == "selection")["best_metric"] == "loss"  # no validation BLEU
    spent = load_checkpoint(tmp_path / "run" / "last.pt")["train_state"]["train_seconds"]
    assert spent > 0  # preprocessing is not counted (tests/test_ux.py), training is
    budget = TrainConfig(**{**cfg.__dict__, "max_steps": 100, "max_minutes": spent / 60})  # already spent
    more = train(
        RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, budget, RunOptions(resume=True, progress=False)
    )
    assert more.steps == 4 and more.stop_reason.startswith("max_minutes")


def test_tbptt_as_long_as_every_target_is_refused_before_training(tmp_path: Path) -> None:
    """Chunks at least as long as the longest target are full BPTT: the flag would change nothing."""
    corpus = write_corpus(tmp_path / "corpus", n_train=60)
    cfg = TrainConfig(max_tokens=120, max_steps=2, valid_bleu_sentences=0, tbptt=1000)
    with pytest.raises(ConfigError, match=r"^tbptt 1000 would be ignored: the longest training target has \d+ steps"):
        train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    assert not (tmp_path / "run" / "last.pt").exists()
    short = TrainConfig(max_tokens=120, max_steps=2, valid_bleu_sentences=0, tbptt=2)  # cuts: trains
    assert (
        train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, short, RunOptions(progress=False)).steps == 2
    )


def test_max_tokens_below_the_widest_training_pair_is_refused_before_training(tmp_path: Path) -> None:
    """Such a pair made a batch alone, over the budget: --max-tokens 8 trained on at exit 0."""
    corpus = write_corpus(tmp_path / "corpus", n_train=60)
    cfg = TrainConfig(max_tokens=3, max_steps=2, valid_bleu_sentences=0)
    with pytest.raises(ConfigError, match=r"^max_tokens 3 is below the widest training pair \(\d+ pieces with EOS\)"):
        train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    assert not (tmp_path / "run" / "last.pt").exists()
