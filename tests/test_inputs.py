"""Small bad inputs through the real command: one line, exit status 2."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sentencepiece as spm
from corpora import write_corpus

from seq2seq.checkpoint import load_checkpoint, save_checkpoint
from seq2seq.cli import main
from seq2seq.config import DataConfig, DecodeConfig
from seq2seq.prepared import Prepared, preprocess
from seq2seq.translate import Translator


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
                 ["export", "--checkpoint", tmp_path / "bad.pt", "--out", tmp_path / "m.npz"]):  # fmt: skip
        code, err = run(argv, capsys)
        assert code == 2 and err.count("\n") == 1
        assert "its source SentencePiece model has 20 pieces but encoder.embed.weight has" in err
    assert not (tmp_path / "m.npz").exists()


def test_held_out_pairs_longer_than_max_len_are_cut_for_the_loss_and_kept_as_text(tmp_path: Path) -> None:
    """The length policy for held-out data: encoded sides are cut to max_len pieces (bounded validation
    memory), counted in preprocess.json; the cleaned text (BLEU references) stays whole."""
    data = write_corpus(tmp_path / "data", n_val=6)
    long_src, long_tgt = " ".join(["red cat"] * 200), " ".join(["CAT RED"] * 200)
    with open(data / "val.xx", "a", encoding="utf-8") as f:
        f.write(long_src + "\n")
    with open(data / "val.yy", "a", encoding="utf-8") as f:
        f.write(long_tgt + "\n")
    manifest = preprocess(data, "xx", "yy", tmp_path / "run", DataConfig(vocab_size=40, max_len=50))
    assert manifest["held_out_cut_to_max_len"] == {"val": 1, "test": 0}
    prepared = Prepared.load(tmp_path / "run")
    val = prepared.split("val")
    assert len(val) == 7 and val.src_lens.max() == 50 and val.tgt_lens.max() == 50
    src_text, tgt_text = prepared.text("val")
    assert src_text[-1] == long_src and tgt_text[-1] == long_tgt


def test_translation_inputs_longer_than_max_src_len_are_truncated_with_a_warning(
    run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    translator = Translator.from_checkpoint(run_dir / "best.pt")
    sentences = ["red cat", " ".join(["red cat dog"] * 100), "green"]
    cfg = DecodeConfig(beam_size=1, max_src_len=20)
    with caplog.at_level(logging.WARNING, logger="seq2seq"):
        out = translator.translate(sentences, cfg)
    assert len(out) == 3
    assert "1 of 3 sentences are longer than max_src_len=20 pieces: translated truncated (first: sentence 2)" in (
        caplog.text
    )
    # truncated means: the same output as the first 20 pieces given on their own
    pieces = translator.src_tok.encode([sentences[1]])[0][:20]
    assert out[1] == translator.tgt_tok.decode([h[0].ids for h in translator.search([pieces], cfg)])[0]
