"""A preparation is never lost to a failure, and bad settings are one line: the manifest written whole
(a full disk leaves none, never an empty one) and an unreadable one named; the work folder beside a
linked --out's target; an install that fails leaves the old preparation loadable; a val or test split
named like the training split, and SentencePiece settings it refuses, are refused; a moved or copied
project resumes on its identical corpus; work folders of killed runs are removed."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest
from corpora import write_corpus
from test_refusals import _corpus_args, _refused

from seq2seq.cli import main
from seq2seq.config import ConfigError, DataConfig

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def prepared(tmp_path: Path, capsys: pytest.CaptureFixture) -> tuple[Path, Path]:
    """A corpus and a run folder prepared from it (--vocab-size 60)."""
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    assert main(["preprocess", *_corpus_args(corpus, run), "--vocab-size", "60"]) == 0
    capsys.readouterr()
    return corpus, run


def _preprocess(corpus: Path, run: Path, *flags: str) -> list[str]:
    return ["preprocess", *_corpus_args(corpus, run), *flags]


# --- 3. a held-out split named like the training split ---


@pytest.mark.parametrize(
    "flags", [["--test-split", "train"], ["--val-split", "train"], ["--train-split", "big", "--val-split", "big"],
              ["--train-split", "big", "--test-split", "train"]]
)  # fmt: skip
def test_a_held_out_split_named_like_the_training_split_is_refused(tmp_path: Path, capsys, flags) -> None:
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    for side in ("xx", "yy"):
        shutil.copy(corpus / f"train.{side}", corpus / f"big.{side}")
    line = _refused(_preprocess(corpus, run, "--vocab-size", "60", *flags), capsys)
    name = "val_split" if "--val-split" in flags else "test_split"
    assert f"{name} '{flags[-1]}' would overwrite the prepared training split" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # nothing written


# --- 4. SentencePiece settings it refuses ---


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--spm-input-sentence-size", "1", "spm_input_sentence_size must be >= 101"),
        ("--spm-input-sentence-size", "100", "spm_input_sentence_size must be >= 101"),
        ("--spm-input-sentence-size", "-1", "spm_input_sentence_size must be >= 101"),
        ("--spm-seed", "-1", "spm_seed must be in [0, 4294967295]"),
        ("--spm-seed", "99999999999", "spm_seed must be in [0, 4294967295]"),
    ],
)
def test_sentencepiece_settings_it_refuses_are_one_line(tmp_path: Path, capsys, flag, value, message) -> None:
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    line = _refused(_preprocess(corpus, run, "--vocab-size", "60", flag, value), capsys)
    assert message in line and line.endswith(f"got {value}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_the_sentencepiece_bounds_are_the_last_values_that_work(tmp_path: Path) -> None:
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    edge = ["--spm-input-sentence-size", "101", "--spm-seed", str(2**32 - 1)]
    assert main(_preprocess(corpus, run, "--vocab-size", "60", *edge)) == 0
    with pytest.raises(ConfigError, match="got 100"):
        DataConfig(spm_input_sentence_size=100)
