"""Small bad inputs through the real command: one line, exit status 2."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sentencepiece as spm

from seq2seq.checkpoint import load_checkpoint, save_checkpoint
from seq2seq.cli import main

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_evaluate_on_empty_files_says_there_is_nothing_to_score(tmp_path: Path, capsys) -> None:
    (tmp_path / "hyp.txt").write_bytes(b"")
    (tmp_path / "ref.txt").write_bytes(b"")
    code, err = run(["evaluate", "--hyp", tmp_path / "hyp.txt", "--ref", tmp_path / "ref.txt"], capsys)
    assert code == 2 and err.count("\n") == 1 and "are empty: nothing to score" in err


def test_a_folder_given_as_input_is_named_as_a_folder(run_dir: Path, tmp_path: Path, capsys) -> None:
    code, err = run(["translate", "--checkpoint", run_dir / "best.pt", "--input", tmp_path], capsys)
    assert code == 2 and err.count("\n") == 1 and f"{tmp_path}: is a folder, not a text file" in err
    code, err = run(["evaluate", "--hyp", tmp_path, "--ref", tmp_path], capsys)
    assert code == 2 and "is a folder" in err


def test_a_checkpoint_whose_vocabulary_does_not_fit_its_weights_is_one_line(
    run_dir: Path, tmp_path: Path, capsys
) -> None:
    """Translation and export both refuse it, naming the side and both sizes (not a state_dict dump)."""
    ckpt = load_checkpoint(run_dir / "best.pt")
    small = tmp_path / "small.model"
    words = [f"w{i} x{i % 7} y{i % 5}" for i in range(200)]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(words), model_prefix=str(small.with_suffix("")),
                                   vocab_size=20, pad_id=0, unk_id=1, bos_id=2, eos_id=3)  # fmt: skip
    ckpt["src_spm"] = small.read_bytes()
    save_checkpoint(tmp_path / "bad.pt", {k: v for k, v in ckpt.items() if k not in ("format", "version")})
    for argv in (["translate", "--checkpoint", tmp_path / "bad.pt", "--input", tmp_path / "bad.pt"],
                 ["export", "--checkpoint", tmp_path / "bad.pt", "--out", tmp_path / "m.onnx.zip"]):  # fmt: skip
        code, err = run(argv, capsys)
        assert code == 2 and err.count("\n") == 1
        assert "its source SentencePiece model has 20 pieces but encoder.embed.weight has" in err
    assert not (tmp_path / "m.onnx.zip").exists()
