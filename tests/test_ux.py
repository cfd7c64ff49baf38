"""What a new user stumbled on (issue 29: 5): the training clock and the progress bar's ETA."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from corpora import write_corpus

from seq2seq.cli import main
from seq2seq.config import DataConfig, ModelConfig, TrainConfig
from seq2seq.progress import bar_total
from seq2seq.runfiles import read_metrics
from seq2seq.train import RunOptions, RunSpec, train

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

TINY_MODEL = ModelConfig(emb_size=16, enc_hidden=16, dec_hidden=32)
TINY_DATA = DataConfig(vocab_size=60)


def _corpus_args(corpus: Path, run: Path) -> list[str]:
    return ["--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(run), "--vocab-size", "60"]


def _one_error_line(args: list[str], capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"seq2seq {args[0]}: error: "), err
    return err[0]


# --- the training clock and the progress bar -----------------------------------------------------


class _Bar:
    """A stand-in for tqdm that records every total it is given."""

    def __init__(self, total: int | None = None, initial: int = 0, **kwargs: Any) -> None:
        self.n, self.totals = initial, [total]
        _Bar.last = self

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "total":
            self.totals.append(value)
        object.__setattr__(self, name, value)

    def update(self, k: int) -> None:
        self.n += k

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def test_bar_total_is_the_update_the_budget_ends_at() -> None:
    assert bar_total(TrainConfig(), 10, 5.0) is None  # no budget: no total, no ETA
    assert bar_total(TrainConfig(max_steps=300), 0, 0.0) == 300
    assert bar_total(TrainConfig(max_minutes=1.0), 0, 0.0) is None  # no pace yet
    assert bar_total(TrainConfig(max_minutes=1.0), 10, 6.0) == 100  # 10 updates in 6 s: 100 in 60 s
    assert bar_total(TrainConfig(max_minutes=1.0, max_steps=50), 10, 6.0) == 50  # the steps end first
    assert bar_total(TrainConfig(max_minutes=1.0, max_steps=500), 10, 6.0) == 100  # the clock ends first
    assert bar_total(TrainConfig(max_minutes=0.05), 10, 6.0) == 10  # over time: never below the updates done


def test_max_minutes_counts_training_not_preprocessing_and_the_bar_has_a_total(tmp_path, monkeypatch) -> None:
    """A preparation that takes 1.5 s is not on the clock; with --max-minutes the bar gets a total (an ETA)."""
    import seq2seq.train as train_module

    slow_prepare = train_module.ensure_prepared

    def prepare(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.5)
        return slow_prepare(*args, **kwargs)

    monkeypatch.setattr(train_module, "ensure_prepared", prepare)
    monkeypatch.setattr(train_module, "tqdm", _Bar)
    corpus = write_corpus(tmp_path / "corpus", n_train=60)
    cfg = TrainConfig(max_tokens=120, max_minutes=10.0, max_epochs=1, valid_every=1000, valid_bleu_sentences=0,
                      log_every=1, threads=1)  # fmt: skip
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), TINY_DATA, TINY_MODEL, cfg, RunOptions())
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")["train"]
    assert records[0]["elapsed_s"] < 1.5  # the clock started after the 1.5 s preparation
    bar = _Bar.last
    assert bar.totals[0] is None and all(isinstance(t, int) for t in bar.totals[1:]) and len(bar.totals) > 1
    assert bar.totals[-1] >= bar.n == len(records)

    monkeypatch.setattr(train_module, "ensure_prepared", slow_prepare)
    steps = TrainConfig(max_tokens=120, max_steps=3, valid_every=3, valid_bleu_sentences=0, threads=1)
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), TINY_DATA, TINY_MODEL, steps, RunOptions(overwrite=True))
    assert _Bar.last.totals == [3]  # --max-steps alone: its total from the start
