"""What the commands refuse, in one line and before anything is written: preparing a trained run's
folder again, resuming on a tokenizer or data settings the checkpoint was not trained with, training
without a usable validation split, and a training corpus with no sentence pairs."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest
from corpora import write_corpus

from seq2seq.cli import main

if TYPE_CHECKING:
    from pathlib import Path

TINY = ["--emb-size", "16", "--enc-hidden", "16", "--dec-hidden", "32", "--max-tokens", "120", "--threads", "1"]


def _corpus_args(corpus: Path, run: Path) -> list[str]:
    return ["--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(run)]


def _hashes(folder: Path) -> dict[str, str]:
    """Every file under `folder` by relative path, with the hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _refused(args: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run the command, expect exit 2 with one line on stderr; return that line."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"seq2seq {args[0]}: error: "), err
    return err[0]


@pytest.fixture
def trained(tmp_path: Path, capsys: pytest.CaptureFixture) -> tuple[Path, Path]:
    """A corpus and a run folder prepared by `preprocess` and trained for 2 updates by `train`."""
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    assert main(["preprocess", *_corpus_args(corpus, run), "--vocab-size", "60"]) == 0
    train = ["train", *_corpus_args(corpus, run), *TINY, "--max-steps", "2", "--valid-every", "2"]
    assert main([*train, "--valid-bleu-sentences", "0"]) == 0
    assert (run / "last.pt").is_file()
    capsys.readouterr()
    return corpus, run


def test_preprocess_refuses_a_trained_run_folder_without_overwrite(trained, capsys) -> None:
    corpus, run = trained
    before = _hashes(run)
    line = _refused(["preprocess", *_corpus_args(corpus, run), "--vocab-size", "28"], capsys)
    assert f"{run} already holds a trained model" in line and "--overwrite" in line
    assert _hashes(run) == before
    assert not list(run.parent.glob(".run.preprocess-*"))  # no work folder left either
    assert main(["preprocess", *_corpus_args(corpus, run), "--vocab-size", "28", "--overwrite"]) == 0
    assert (run / "last.pt").is_file()  # the checkpoints stay; a resume is checked against them
    assert _hashes(run)["spm.src.model"] != before["spm.src.model"]


def _resume(corpus: Path, run: Path) -> list[str]:
    return ["train", *_corpus_args(corpus, run), "--resume", "--max-steps", "4", "--threads", "1"]


def test_resume_refuses_other_sentencepiece_models(trained, capsys) -> None:
    """Another piece count (the weights would not even load) and the same piece count but other pieces
    (the weights would load and silently read remapped ids) are both refused, naming the run folder."""
    corpus, run = trained
    assert main(["preprocess", *_corpus_args(corpus, run), "--vocab-size", "28", "--overwrite"]) == 0
    before = _hashes(run)
    line = _refused(_resume(corpus, run), capsys)
    assert (
        f"{run}/last.pt and the run's other checkpoints were trained with other SentencePiece models than "
        f"{run}/spm.*.model now holds (source: 34 pieces then, 28 now; target: 34 pieces then, 28 now)" in line
    )
    assert "vocab_size 60 then, 28 now" in line and "--overwrite" in line
    assert _hashes(run) == before

    # Same data settings and piece count, other pieces: the corpus was rewritten, then prepared again.
    write_corpus(corpus, n_train=120, seed=1)
    assert main(["preprocess", *_corpus_args(corpus, run), "--vocab-size", "60", "--overwrite"]) == 0
    before = _hashes(run)
    line = _refused(_resume(corpus, run), capsys)
    assert "(source: 34 pieces then, 34 now; target: 34 pieces then, 34 now): " in line
    assert "other settings" not in line
    assert _hashes(run) == before


def test_resume_refuses_other_data_settings(trained, capsys) -> None:
    """The same SentencePiece models but other training pairs (another length filter) are refused too."""
    corpus, run = trained
    spm_before = (run / "spm.src.model").read_bytes()
    assert main(["preprocess", *_corpus_args(corpus, run), "--vocab-size", "60", "--max-len", "6", "--overwrite"]) == 0
    assert (run / "spm.src.model").read_bytes() == spm_before  # the tokenizer alone would not tell
    before = _hashes(run)
    line = _refused(_resume(corpus, run), capsys)
    assert f"other settings than {run}/preprocess.json records (max_len 250 then, 6 now)" in line
    assert _hashes(run) == before
    # Prepared again as it was, the run continues.
    assert main(["preprocess", *_corpus_args(corpus, run), "--vocab-size", "60", "--overwrite"]) == 0
    assert main(_resume(corpus, run)) == 0
    assert "trained 4 updates" in capsys.readouterr().out


def test_training_without_a_validation_split_stops_before_the_first_update(tmp_path, capsys) -> None:
    """preprocess refuses a corpus without its val split (tests/test_ux.py: the line), and so does train,
    which prepares first: no checkpoint, no metrics.jsonl, no config.json."""
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    for name in ("val.xx", "val.yy"):
        (corpus / name).unlink()
    line = _refused(["preprocess", *_corpus_args(corpus, run), "--vocab-size", "60"], capsys)
    assert f"no validation split: {corpus}/val.xx and {corpus}/val.yy not found" in line
    assert "--val-split NAME" in line
    train = ["train", *_corpus_args(corpus, run), *TINY, "--max-steps", "600", "--valid-every", "500"]
    assert _refused(train, capsys) == line.replace("seq2seq preprocess:", "seq2seq train:")
    assert not {"preprocess.json", "last.pt", "metrics.jsonl", "config.json"} & set(_hashes(run))


def test_an_empty_validation_split_is_refused_even_without_bleu(tmp_path, capsys) -> None:
    """With --valid-bleu-sentences 0 an empty val split would give val loss 0.0: every validation 'best'."""
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    (corpus / "val.xx").write_text("\n  \n\n")
    (corpus / "val.yy").write_text("A\n\n \n")
    line = _refused(["preprocess", *_corpus_args(corpus, run), "--vocab-size", "60"], capsys)
    assert f"validation split 'val' of {corpus} (val.xx/val.yy) has no non-empty sentence pairs" in line
    train = ["train", *_corpus_args(corpus, run), *TINY, "--max-steps", "2", "--valid-bleu-sentences", "0"]
    assert "(val.xx/val.yy) has no non-empty sentence pairs" in _refused(train, capsys)
    assert not {"preprocess.json", "last.pt", "metrics.jsonl", "config.json"} & set(_hashes(run))


def test_a_training_corpus_of_blank_lines_is_one_line(tmp_path, capsys) -> None:
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    (corpus / "train.xx").write_text("\n \n\t\n" * 40)
    line = _refused(["preprocess", *_corpus_args(corpus, run), "--vocab-size", "60"], capsys)
    assert f"{corpus}/train.xx/train.yy: no non-empty sentence pairs after cleaning (120 pairs" in line
    assert "sentences_" not in line
    assert not run.exists()  # nothing written
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]  # and no work folder left
