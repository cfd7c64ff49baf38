"""Rows of the README's "Bad input" table that no other test feeds through the real command: each goes
through `seq2seq.cli.main` (or `python -m seq2seq`) and checks the message, the exit status and that
nothing was written; beside the length filters' row, a unit check of the filter it reports."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
import torch
from corpora import write_corpus

from seq2seq.checkpoint import CheckpointError, load_checkpoint
from seq2seq.cli import main
from seq2seq.config import ConfigError, DataConfig, DecodeConfig
from seq2seq.corpus import TrainFilter
from seq2seq.errors import CorpusError
from seq2seq.prepared import Prepared
from seq2seq.translation.torch_engine import Translator

if TYPE_CHECKING:
    from pathlib import Path


def _refused(args: list, capsys: pytest.CaptureFixture) -> str:
    """Run the command, expect exit 2 with exactly one line on stderr; return that line."""
    capsys.readouterr()
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"seq2seq {args[0]}: error: "), err
    return err[0]


def _real(args: list) -> str:
    """The same through `python -m seq2seq`, where log lines reach stderr too (pytest captures them
    under `main`): exit 2 and exactly one stderr line; return it."""
    done = subprocess.run(
        [sys.executable, "-m", "seq2seq", *map(str, args)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr[-2000:]
    return done.stderr.strip()


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _preprocess(corpus: Path, run: Path, *flags: str) -> list:
    return ["preprocess", "--data", corpus, "--src", "xx", "--tgt", "yy", "--out", run, *flags]


# --- corpus files --------------------------------------------------------------------------------


def test_line_count_mismatch_names_both_files_and_counts(tmp_path: Path, capsys) -> None:
    corpus, run = write_corpus(tmp_path / "c", n_train=120), tmp_path / "run"
    (corpus / "val.yy").write_text("".join(line + "\n" for line in (corpus / "val.yy").read_text().splitlines()[:17]))
    line = _refused(_preprocess(corpus, run, "--vocab-size", "60"), capsys)
    assert line.endswith(f"misaligned corpus: {corpus}/val.xx has 20 lines but {corpus}/val.yy has 17")
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no run folder, no work folder
    line = _refused(["evaluate", "--hyp", corpus / "val.xx", "--ref", corpus / "val.yy"], capsys)
    assert line.endswith(f"{corpus}/val.xx has 20 lines but {corpus}/val.yy has 17")


def test_empty_and_missing_training_files_are_one_line(tmp_path: Path, capsys) -> None:
    corpus, run = write_corpus(tmp_path / "c", n_train=120), tmp_path / "run"
    for name in ("train.xx", "train.yy"):
        (corpus / name).write_text("")
    assert "are empty" in _refused(_preprocess(corpus, run, "--vocab-size", "60"), capsys)
    assert "nowhere/train.xx: no such file" in _refused(_preprocess(tmp_path / "nowhere", run), capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"red cat\n\xff\xfe dog\n", "train.xx:2: invalid UTF-8 (byte 0xff)"),
     (b"red cat\nblue\x00dog\n", "train.xx:2: NUL byte (is this a binary file?)")],
)  # fmt: skip
def test_invalid_utf8_and_nul_bytes_name_file_and_line(tmp_path: Path, capsys, content: bytes, message: str) -> None:
    corpus, run = write_corpus(tmp_path / "c", n_train=120), tmp_path / "run"
    (corpus / "train.xx").write_bytes(content + b"red\n" * 118)
    assert _refused(_preprocess(corpus, run, "--vocab-size", "60"), capsys).endswith(f"{corpus}/{message}")
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


# --- settings ------------------------------------------------------------------------------------


def test_config_errors_name_the_closest_key_in_one_line(tmp_path: Path, capsys) -> None:
    corpus = write_corpus(tmp_path / "c", n_train=120)
    base = ["train", "--data", corpus, "--src", "xx", "--tgt", "yy", "--out", tmp_path / "r"]
    cases = [
        ("[model]\nhiden_size = 3\n", "did you mean"),
        ('[train]\nlr = "fast"\n', "TrainConfig.lr must be float"),
        ("[modle]\n", "did you mean [model]?"),
    ]
    for text, message in cases:
        (tmp_path / "bad.toml").write_text(text)
        assert message in _refused([*base, "--config", tmp_path / "bad.toml"], capsys)
    assert "[model]" in _refused(_preprocess(corpus, tmp_path / "r", "--config", tmp_path / "bad.toml"), capsys)
    assert "dropout must be in [0, 1)" in _refused([*base, "--dropout", "-0.1"], capsys)
    assert "beam_size must be >= 1" in _refused(["translate", "--checkpoint", "x.pt", "--beam-size", "0"], capsys)
    assert not (tmp_path / "r").exists()


def test_a_settings_scores_or_peers_file_too_large_to_be_one_is_refused_unread(tmp_path: Path, capsys) -> None:
    """`--config /dev/zero` (serve: 6.2 GB in 6 s), an 8 GB file as --config, --bleu-file or --peers: read whole,
    a MemoryError traceback. Now at most the cap + 1 bytes are read: one line naming the file."""
    from seq2seq.devtools.peers import read_peers
    from seq2seq.sources.card import read_scores

    big = tmp_path / "big.toml"
    big.write_text("# a comment line of a valid TOML file\n" * 30_000)  # 1.1 MB: parsed whole before
    line = _refused(["translate", "--checkpoint", "x.pt", "--config", big], capsys)
    assert line.endswith(f"{big}: larger than 1,024 KiB: not a settings file")
    zero = tmp_path / "zero.toml"
    zero.symlink_to("/dev/zero")
    assert _refused(["translate", "--checkpoint", "x.pt", "--config", zero], capsys).endswith("not a settings file")
    scores = tmp_path / "scores.txt"
    scores.write_bytes(b"BLEU = 1.0 (nrefs:1)\n" * 60_000)
    with pytest.raises(CorpusError, match=f"--bleu-file {scores}: larger than 1,024 KiB: not a scores file"):
        read_scores([str(scores)])
    peers = tmp_path / "peers.json"
    with peers.open("wb") as f:
        f.truncate(17 << 20)  # NUL bytes: "not JSON" only after reading them all
    with pytest.raises(ConfigError, match=f"--peers {peers}: larger than 16,384 KiB: not a peers file"):
        read_peers(peers)


# --- the tokenizer and the length filters --------------------------------------------------------


def test_a_vocab_size_below_the_characters_of_the_text_is_one_line(tmp_path: Path, capsys) -> None:
    """The corpus's source side has 17 letters and the word boundary: 18 pieces + 4 special ones = 22."""
    corpus, run = write_corpus(tmp_path / "c", n_train=120), tmp_path / "run"
    for size in ("20", "21"):
        line = _refused(_preprocess(corpus, run, "--vocab-size", size), capsys)
        assert f"error: --vocab-size {size} is smaller than the source training text needs" in line
        assert "use at least --vocab-size 22, or a lower --character-coverage (down to 0.98)" in line
        assert [p.name for p in tmp_path.iterdir()] == ["c"]  # nothing written, no work folder left
    assert "use at least --vocab-size 22" in _real(_preprocess(corpus, run, "--vocab-size", "20"))
    joint = _refused(_preprocess(corpus, run, "--vocab-size", "20", "--joint-vocab"), capsys)
    assert "than the joint (source and target) training text needs" in joint
    assert main([str(a) for a in _preprocess(corpus, run, "--vocab-size", "22")]) == 0  # the least that works
    before = _hashes(run)
    _refused(_preprocess(corpus, run, "--vocab-size", "20"), capsys)
    assert _hashes(run) == before  # a prepared folder is left as it was


def test_a_character_coverage_sentencepiece_refuses_is_one_line(tmp_path: Path, capsys) -> None:
    corpus, run = write_corpus(tmp_path / "c", n_train=120), tmp_path / "run"
    line = _refused(_preprocess(corpus, run, "--character-coverage", "0.5"), capsys)
    assert line.endswith("character_coverage must be in [0.98, 1] (SentencePiece's range), got 0.5")
    assert not run.exists()


@pytest.mark.parametrize(
    ("flags", "counts"),
    [
        (["--max-len", "1"], "(too_short 0 with --min-len 1, too_long 120 with --max-len 1, length_ratio 0"),
        (["--min-len", "8"], "(too_short 120 with --min-len 8, too_long 0 with --max-len 250, length_ratio 0"),
    ],
)
def test_a_training_split_the_length_filters_empty_is_refused(tmp_path: Path, capsys, flags, counts) -> None:
    corpus, run = write_corpus(tmp_path / "c", n_train=120), tmp_path / "run"
    line = _refused(_preprocess(corpus, run, "--vocab-size", "60", *flags), capsys)
    assert f"error: {corpus}/train.xx/train.yy: the length filters removed all 120 non-empty sentence pairs " in line
    assert counts in line and line.endswith("nothing to train on: loosen the filters")
    assert _real(_preprocess(corpus, run, "--vocab-size", "60", *flags)) == line
    assert [p.name for p in tmp_path.iterdir()] == ["c"]
    assert main([str(a) for a in _preprocess(corpus, run, "--vocab-size", "60")]) == 0
    before = _hashes(run)
    _refused(_preprocess(corpus, run, "--vocab-size", "60", *flags), capsys)
    assert _hashes(run) == before


def test_the_train_filter_removes_a_pair_by_length_ratio_and_keeps_one_just_within() -> None:
    """The table's rows empty the split by length alone, so a filter whose ratio branch never fired passed:
    a unit check of `TrainFilter` with piece lists by hand (ratio = longer side over shorter side)."""
    filt = TrainFilter(DataConfig(vocab_size=60, max_len_ratio=2.0, max_len=6))
    src = [[5, 6], [5, 6], [5, 6, 7, 8, 9], [5] * 7, [5, 6, 7]]
    tgt = [[5, 6, 7, 8], [5, 6, 7, 8, 9], [5, 6], [5] * 7, [5, 6, 7]]
    text = [f"line {i}" for i in range(len(src))]
    # 4/2 = 2.0 is within; 5/2 = 2.5 over (either side longer); 7 pieces over max_len first; 3/3 kept
    assert filt.keep(src, tgt, text, text) == [0, 4]
    assert filt.removed == {"too_short": 0, "too_long": 1, "length_ratio": 2, "duplicate": 0}


def test_held_out_pairs_longer_than_max_len_are_cut_and_counted(tmp_path: Path, capsys, caplog) -> None:
    caplog.set_level(logging.INFO, logger="seq2seq")
    corpus, run = write_corpus(tmp_path / "c", n_train=120), tmp_path / "run"
    long_src, long_tgt = " ".join(["red cat"] * 200), " ".join(["CAT RED"] * 200)
    for name, line in (("val.xx", long_src), ("val.yy", long_tgt)):
        with open(corpus / name, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    assert main([str(a) for a in _preprocess(corpus, run, "--vocab-size", "40", "--max-len", "50")]) == 0
    assert "val: 1 pairs longer than max_len=50 pieces are cut to it for the validation loss (the text stays)" in (
        caplog.text
    )
    manifest = json.loads((run / "preprocess.json").read_text())
    assert manifest["held_out_cut_to_max_len"] == {"val": 1, "test": 0} and manifest["splits"]["val"] == 21
    # the encoded sides are cut to max_len pieces (bounded validation memory); the text (BLEU references) stays
    prepared = Prepared.load(run)
    val = prepared.split("val")
    assert len(val) == 21 and val.src_lens.max() == 50 and val.tgt_lens.max() == 50
    src_text, tgt_text = prepared.text("val")
    assert src_text[-1] == long_src and tgt_text[-1] == long_tgt


# --- translation input ---------------------------------------------------------------------------


def test_translation_input_longer_than_max_src_len_is_truncated_with_a_warning(
    run_dir: Path, tmp_path: Path, capsys, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="seq2seq")
    (tmp_path / "in.txt").write_text("red cat\n" + "red cat dog " * 100 + "\ngreen\n", encoding="utf-8")
    args = ["translate", "--checkpoint", run_dir / "best.pt", "--input", tmp_path / "in.txt"]
    assert main([str(a) for a in [*args, "--output", tmp_path / "out.txt", "--max-src-len", "20"]]) == 0
    assert "1 of 3 sentences are longer than max_src_len=20 pieces: translated truncated (first: sentence 2)" in (
        caplog.text
    )
    out = (tmp_path / "out.txt").read_text(encoding="utf-8").splitlines()
    assert len(out) == 3
    # truncated means: the same output as the first 20 pieces given on their own
    translator, cfg = Translator.from_checkpoint(run_dir / "best.pt"), DecodeConfig(max_src_len=20)
    pieces = translator.src_tok.encode(["red cat dog " * 100])[0][:20]
    assert out[1] == translator.tgt_tok.decode([h[0].ids for h in translator.search([pieces], cfg)])[0]


# --- checkpoints -----------------------------------------------------------------------------------


class _WritesMarker:
    """Unpickling this calls open(marker, 'w'): arbitrary code a checkpoint must not run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path, capsys, writer: str) -> None:
    marker, evil = tmp_path / "pwned", tmp_path / "evil.pt"
    payload = {"format": "seq2seq-checkpoint", "version": 1, "model": _WritesMarker(marker)}
    with open(evil, "wb") as f:
        if writer == "torch.save":  # the zip format torch.save writes
            torch.save(payload, f)
        else:  # a bare pickle stream
            pickle.dump(payload, f, protocol=2)
    with pytest.raises(CheckpointError, match="refused"):  # the library, then the commands
        load_checkpoint(evil)
    with pytest.raises(CheckpointError):
        Translator.from_checkpoint(evil)
    (tmp_path / "in.txt").write_text("red cat\n", encoding="utf-8")
    for args in (["translate", "--checkpoint", evil, "--input", tmp_path / "in.txt", "--output", tmp_path / "o.txt"],
                 ["export", "--checkpoint", evil, "--out", tmp_path / "m.onnx.zip"]):  # fmt: skip
        line = _refused(args, capsys)
        assert f"{evil}: refused to load: it holds objects other than tensors and plain values, so loading it " in line
        assert "could run code" in line
    assert not marker.exists()  # the code never ran
    assert not (tmp_path / "o.txt").exists() and not (tmp_path / "m.onnx.zip").exists()
    # the payload is live: an unsafe load really would have run it
    if writer == "torch.save":
        torch.load(evil, weights_only=False)
    else:
        with open(evil, "rb") as f:
            pickle.load(f)
    assert marker.exists()


def _bad_checkpoint(tmp_path: Path, kind: str) -> Path:
    """A file (or folder) that is not a checkpoint this seq2seq can read."""
    path = tmp_path / f"{kind}.pt"
    if kind == "text":
        path.write_text("not a checkpoint\n")
    elif kind == "truncated":
        torch.save({"format": "seq2seq-checkpoint", "version": 1, "w": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "newer":
        torch.save({"format": "seq2seq-checkpoint", "version": 99}, path)
    elif kind == "other":
        torch.save({"weights": torch.zeros(2)}, path)  # a torch file, but not ours
    elif kind == "folder":
        path.mkdir()
    elif kind == "device":  # read to the end by zipfile's "is it ONNX?" test before: gigabytes, a MemoryError
        path.symlink_to("/dev/zero")
    return path  # "missing": nothing there


@pytest.mark.parametrize(
    ("kind", "message"),
    [("text", ": not a checkpoint file"), ("truncated", ": truncated or corrupt checkpoint ("),
     ("newer", ": checkpoint format version 99 is newer than this seq2seq reads (1); upgrade seq2seq"),
     ("other", ": not a seq2seq checkpoint"), ("missing", ": no such checkpoint file"),
     ("folder", ": is a folder, not a checkpoint file: name the file in it (e.g. "),
     ("device", ": not a regular file (a device or a pipe)")],
)  # fmt: skip
def test_bad_checkpoint_files_are_one_line(tmp_path: Path, capsys, kind: str, message: str) -> None:
    """The library raises CheckpointError naming the file; the command prints it as one line, exit 2."""
    path = _bad_checkpoint(tmp_path, kind)
    with pytest.raises(CheckpointError, match=f"{path.name}{message[:40]}".replace("(", r"\(")):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        Translator.from_checkpoint(path)
    line = _refused(["translate", "--checkpoint", path], capsys)
    assert f"error: {path}{message}" in line


# --- devices -------------------------------------------------------------------------------------


def test_device_cuda_without_a_gpu_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """For real: CUDA_VISIBLE_DEVICES= hides any GPU from torch, so this holds on a GPU machine too."""
    corpus, run = write_corpus(tmp_path / "c", n_train=40), tmp_path / "run"
    args = ["train", "--data", corpus, "--src", "xx", "--tgt", "yy", "--out", run, "--device", "cuda"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    command = [sys.executable, "-m", "seq2seq", *map(str, [*args, "--max-steps", "1"])]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1
    assert "seq2seq train: error: --device cuda: no CUDA GPU is available here (" in done.stderr
    assert done.stderr.rstrip().endswith("; use --device cpu")
    assert not run.exists()
