"""A preparation is never lost to a failure, and bad settings are one line: the manifest written whole
(a full disk leaves none, never an empty one) and an unreadable one named; the work folder beside a
linked --out's target; an install that fails leaves the old preparation loadable; a val or test split
named like the training split, and SentencePiece settings it refuses, are refused; a moved or copied
project resumes on its identical corpus; work folders of killed runs are removed."""

from __future__ import annotations

import builtins
import errno
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from corpora import write_corpus
from test_refusals import TINY, _corpus_args, _hashes, _refused

import seq2seq.preprocess
from seq2seq.cli import main
from seq2seq.config import ConfigError, DataConfig
from seq2seq.prepared import MANIFEST, Prepared


@pytest.fixture
def prepared(tmp_path: Path, capsys: pytest.CaptureFixture) -> tuple[Path, Path]:
    """A corpus and a run folder prepared from it (--vocab-size 60)."""
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    assert main(["preprocess", *_corpus_args(corpus, run), "--vocab-size", "60"]) == 0
    capsys.readouterr()
    return corpus, run


def _preprocess(corpus: Path, run: Path, *flags: str) -> list[str]:
    return ["preprocess", *_corpus_args(corpus, run), *flags]


# --- 1. the manifest: written whole, and an unreadable one is one line ---


class _FullDisk(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_leaves_no_empty_manifest(prepared, monkeypatch, capsys) -> None:
    corpus, run = prepared
    real_open = builtins.open

    def full_at_the_manifest(file, mode="r", *args, **kwargs):  # the disk fills up at the manifest's write
        handle = real_open(file, mode, *args, **kwargs)  # created (emptied), then nothing fits
        if "w" in mode and MANIFEST in os.path.basename(str(file)):
            handle.close()
            return _FullDisk()
        return handle

    monkeypatch.setattr(builtins, "open", full_at_the_manifest)
    monkeypatch.setattr(io, "open", full_at_the_manifest)
    assert main(_preprocess(corpus, run, "--vocab-size", "28")) == 1
    monkeypatch.undo()
    assert "No space left on device" in capsys.readouterr().err
    assert not [p.name for p in run.iterdir() if MANIFEST in p.name]  # no empty preprocess.json, no temporary file
    with pytest.raises(Exception, match="is not a prepared run folder"):
        Prepared.load(run)


@pytest.mark.parametrize("text", ["", '{"data": {"vocab_size": 60', "[]", '{"data": {"vocab_size": "many"}}'])
def test_an_unreadable_manifest_is_one_line_naming_it(prepared, capsys, text: str) -> None:
    corpus, run = prepared
    (run / MANIFEST).write_text(text)
    line = _refused(["train", *_corpus_args(corpus, run), *TINY, "--max-steps", "2"], capsys)
    assert f"{run / MANIFEST} cannot be read (" in line
    assert line.endswith(f"prepare {run} again with `seq2seq preprocess --overwrite`")
    assert main(_preprocess(corpus, run, "--vocab-size", "60", "--overwrite")) == 0  # the way out works
    assert Prepared.load(run).cfg.vocab_size == 60


# --- 2. a linked --out, and an install that fails ---


def test_a_linked_out_gets_its_work_folder_beside_its_target(tmp_path: Path, monkeypatch) -> None:
    corpus, target = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "elsewhere" / "run"
    target.mkdir(parents=True)
    (tmp_path / "link").symlink_to(target)
    works, install = [], seq2seq.preprocess.install
    monkeypatch.setattr(seq2seq.preprocess, "install", lambda work, *rest: works.append(work) or install(work, *rest))
    assert main(_preprocess(corpus, tmp_path / "link", "--vocab-size", "60")) == 0
    assert [w.parent for w in works] == [target.parent]  # the same file system as the folder written into
    assert Prepared.load(tmp_path / "link").cfg.vocab_size == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "elsewhere", "link"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["run"]  # work folder removed


def test_an_install_that_fails_leaves_the_old_preparation_loadable(prepared, monkeypatch, capsys) -> None:
    corpus, run = prepared
    before = _hashes(run)

    real = os.replace

    def cross_device(src, dst, *args, **kwargs):  # every rename into the run folder
        if run not in Path(dst).parents:
            return real(src, dst, *args, **kwargs)
        raise OSError(errno.EXDEV, "Invalid cross-device link", str(src), None, str(dst))

    def full_disk(src, dst, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", cross_device)  # the rename fails, and the copy instead too
    monkeypatch.setattr(shutil, "copyfile", full_disk)
    assert main(_preprocess(corpus, run, "--vocab-size", "28")) == 1
    monkeypatch.undo()
    assert "No space left on device" in capsys.readouterr().err
    assert _hashes(run) == before  # nothing of the old preparation touched, nothing left behind
    assert Prepared.load(run).cfg.vocab_size == 60
    assert not list(run.parent.glob(".run.preprocess-*"))


def test_an_out_on_another_file_system_than_its_parent_gets_a_copy(prepared, monkeypatch) -> None:
    """An --out that is a mount point: the cache cannot be renamed in from the work folder beside it."""
    corpus, run = prepared
    old_key, real = Prepared.load(run).manifest["tokenizer"], os.replace

    def across(src, dst, *args, **kwargs):
        if ".run.preprocess-" in str(src) and run in Path(dst).parents:
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(src), None, str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", across)
    assert main(_preprocess(corpus, run, "--vocab-size", "28")) == 0
    monkeypatch.undo()
    loaded = Prepared.load(run)
    assert loaded.vocab == (28, 28) and loaded.manifest["tokenizer"] != old_key and len(loaded.split("train")) == 120
    assert sorted(p.name for p in (run / "cache").iterdir()) == [loaded.manifest["tokenizer"]]
    assert not [p for p in run.iterdir() if p.name.startswith(".install")]


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


# --- 5. a moved or copied project ---


def test_a_copied_project_resumes_on_its_identical_corpus(prepared, tmp_path: Path, capsys, caplog) -> None:
    corpus, run = prepared
    steps = ["--max-steps", "2", "--valid-every", "2", "--valid-bleu-sentences", "0"]
    assert main(["train", *_corpus_args(corpus, run), *TINY, *steps]) == 0
    corpus2, run2 = tmp_path / "copy" / "corpus", tmp_path / "copy" / "run"
    shutil.copytree(corpus, corpus2)  # as `cp -a` (copy2): the same bytes, each file hashed all the same
    shutil.copytree(run, run2)

    def resume(data: Path, *flags: str) -> list[str]:
        return ["train", *_corpus_args(data, run2), "--resume", "--threads", "1", *flags]

    # other languages on the identical corpus are refused
    swapped = ["train", "--data", str(corpus2), "--src", "yy", "--tgt", "xx", "--out", str(run2), "--resume"]
    assert f"{corpus.resolve()} xx->yy, not {corpus2.resolve()} yy->xx" in _refused(swapped, capsys)
    with caplog.at_level(logging.INFO, logger="seq2seq"):
        assert main(resume(corpus2, "--max-steps", "4")) == 0
    moved = f"{run2} was prepared from {corpus.resolve()}: {corpus2.resolve()} holds the same corpus files"
    assert moved in caplog.text
    # a copy that differs is refused: other bytes of the same size, the recorded modification time kept
    recorded = json.loads((run2 / MANIFEST).read_text())["corpus_files"]["val.yy"]["mtime_ns"]
    path = corpus2 / "val.yy"
    path.write_text(path.read_text().replace("RED", "OLD", 1))
    os.utime(path, ns=(recorded, recorded))
    before = _hashes(run2)
    line = _refused(resume(corpus2, "--max-steps", "6"), capsys)
    assert f"{run2} was prepared from {corpus.resolve()} xx->yy, not {corpus2.resolve()} xx->yy" in line
    assert line.endswith("or start the run again with --overwrite instead of --resume")
    assert _hashes(run2) == before


# --- 6. work folders of killed runs ---


def test_work_folders_of_runs_that_no_longer_run_are_removed(prepared, tmp_path: Path) -> None:
    corpus, run = prepared
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, live_pid = int(dead.stdout), os.getppid()
    gone = [tmp_path / f".run.preprocess-{dead_pid}", run / f".install-{dead_pid}"]
    kept = [
        tmp_path / f".run.preprocess-{live_pid}",
        tmp_path / f".run.preprocess-{dead_pid}-x",  # alive; other names
        tmp_path / ".run.preprocess-abc",
        tmp_path / f".other.preprocess-{dead_pid}",
        run / f".installs-{dead_pid}",
    ]
    for folder in gone + kept:
        folder.mkdir()
        (folder / "spm.src.model").write_text("left behind")
    assert main(_preprocess(corpus, run, "--vocab-size", "60", "--overwrite")) == 0
    assert [f for f in gone if f.exists()] == []
    assert [f for f in kept if not f.exists()] == []


def test_a_missing_cache_or_tokenizer_is_one_line_and_preparing_again_restores_it(
    prepared: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    corpus, run = prepared
    key = Prepared.load(run).manifest["tokenizer"]
    shutil.rmtree(run / "cache")  # e.g. deleted to save disk space
    with pytest.raises(seq2seq.preprocess.CorpusError, match=rf"cache/{key}\) are missing: .*preprocess --overwrite"):
        Prepared.load(run)
    assert main(_preprocess(corpus, run, "--vocab-size", "60", "--overwrite")) == 0
    assert Prepared.load(run).manifest["tokenizer"] == key  # the same tokenizer again: a trained run resumes
    (run / "spm.tgt.model").unlink()
    with pytest.raises(seq2seq.preprocess.CorpusError, match="spm.tgt.model missing"):
        Prepared.load(run)
    capsys.readouterr()


# --- a folder of other files is not prepared or trained in (its files would be replaced or deleted) ---


@pytest.mark.parametrize("command", ["preprocess", "train"])
def test_a_folder_of_other_files_is_refused_and_left_as_it_was(tmp_path: Path, capsys, command: str) -> None:
    corpus, out = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "project"
    (out / "tensorboard" / "x").mkdir(parents=True)  # a fresh run's clear() deleted these, preprocess the cache
    (out / "tensorboard" / "x" / "events").write_text("mine")
    (out / "cache").mkdir()
    (out / "cache" / "w.bin").write_text("mine")
    (out / "config.toml").write_text("[my]\n")
    before = _hashes(out)
    flags = ["--vocab-size", "60"] + (TINY + ["--max-steps", "1"] if command == "train" else [])
    line = _refused([command, *_corpus_args(corpus, out), *flags], capsys)
    assert f"{out} is not a run folder (no preprocess.json) and holds cache, config.toml, tensorboard" in line
    after = {name: digest for name, digest in _hashes(out).items() if name != ".lock"}  # the run lock's file
    assert after == before and not (out / MANIFEST).exists()


def test_an_empty_folder_or_a_cut_short_preparation_is_prepared(tmp_path: Path, capsys) -> None:
    corpus, out = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "empty"
    out.mkdir()
    assert main(_preprocess(corpus, out, "--vocab-size", "60")) == 0
    (out / MANIFEST).unlink()  # killed before the manifest: its own files, prepared again
    assert main(_preprocess(corpus, out, "--vocab-size", "60")) == 0 and (out / MANIFEST).is_file()


def _set_offset(path: Path, i: int, value: int) -> None:
    """One offset inside the array changed (the first and last kept): read as a pair of 10^9 pieces, the
    training said to raise --max-tokens for it."""
    import numpy as np

    offsets = np.load(path)
    offsets[i] = value
    np.save(path, offsets)


def _damaged_cache(run: Path) -> Path:
    return next(p for p in (run / "cache").iterdir() if p.is_dir())


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda c: os.truncate(c / "train.src_ids.npy", 100), "train.src_ids.npy: a damaged prepared split"),
        (lambda c: os.truncate(c / "train.tgt_ids.npy", 200), "train.tgt_ids.npy: a damaged prepared split"),
        (lambda c: (c / "val.tgt_offsets.npy").unlink(), "val.tgt_offsets.npy: a damaged prepared split"),
        (lambda c: (c / "val.tgt.txt").write_text(""), "val.tgt.txt: 0 lines where the prepared split has"),
        (lambda c: _set_offset(c / "train.tgt_offsets.npy", 5, 10**9), "train.tgt_offsets.npy: a damaged prepared"),
    ],
)
def test_a_damaged_prepared_cache_is_one_line_naming_the_file(prepared, capsys, damage, says) -> None:
    """Each was a traceback at exit 1 (EOF reading an array header, mmap longer than the file, a missing
    file, "30 hypotheses but 0 references" at the first validation)."""
    corpus, run = prepared
    damage(_damaged_cache(run))
    line = _refused(["train", *_corpus_args(corpus, run), *TINY, "--max-steps", "1"], capsys)
    assert says in line and "preprocess --overwrite" in line


def test_training_text_of_only_overlong_lines_is_one_line(tmp_path: Path, capsys) -> None:
    """Each file one 20 kB line: SentencePiece skips lines over 4,192 bytes and failed with "INTERNAL:
    trainer_interface.cc [!sentences_.empty()]" (a traceback, exit 1)."""
    corpus = write_corpus(tmp_path / "corpus", n_train=1200)
    for lang in ("xx", "yy"):
        path = corpus / f"train.{lang}"
        path.write_bytes(path.read_bytes().rstrip(b"\n").replace(b"\n", b" ") + b"\n")
    line = _refused(_preprocess(corpus, tmp_path / "run", "--vocab-size", "60"), capsys)
    assert "no line of the source training text is under SentencePiece's 4,192-byte limit" in line


@pytest.mark.parametrize("split", ["train", "val"])
def test_cr_only_line_endings_are_refused_naming_file_and_line(tmp_path: Path, split: str, capsys) -> None:
    """clean() turned the CRs of a CR-only file into spaces: the file became one sentence pair, silently
    (a val split of one pair; a train split refused only by SentencePiece's length limit, if at all)."""
    corpus = write_corpus(tmp_path / "corpus", n_train=200)
    for lang in ("xx", "yy"):
        path = corpus / f"{split}.{lang}"
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r"))
    line = _refused(_preprocess(corpus, tmp_path / "run", "--vocab-size", "60"), capsys)
    assert f"{corpus / f'{split}.xx'}:1: carriage return inside a line: CR-only line endings?" in line


def test_a_stray_carriage_return_past_the_first_line_is_whitespace(tmp_path: Path) -> None:
    """Web-crawled corpora hold a stray CR here and there: one inside line 3 of millions must not refuse them.
    The prepared text is looked at too: a CR dropped (two words run together) instead of read as whitespace
    passed when only the exit status was checked."""
    corpus = write_corpus(tmp_path / "corpus", n_train=200)
    spaced = {}
    for lang in ("xx", "yy"):
        lines = (corpus / f"train.{lang}").read_text().splitlines()
        spaced[lang] = lines[2]
        lines[2] = lines[2].replace(" ", "\r", 1)
        (corpus / f"train.{lang}").write_text("\n".join(lines) + "\n")
    assert main(_preprocess(corpus, tmp_path / "run", "--vocab-size", "60")) == 0
    src, tgt = Prepared.load(tmp_path / "run").text("train")
    assert (len(src), src[2], tgt[2]) == (200, spaced["xx"], spaced["yy"])  # the words separated, as before the CR


def test_lines_ending_in_two_carriage_returns_read_as_before(tmp_path: Path) -> None:
    """\\r\\r\\n (a CRLF file converted to CRLF again by a Windows tool) left a CR on line 1, read as a CR-only file.
    Line 3's CR inside the line is whitespace (not checked before: CRs dropped past line 1 passed)."""
    from seq2seq.text import clean, read_lines

    (tmp_path / "rrn.de").write_bytes(b"Hallo Welt\r\r\nZweite Zeile\r\r\nDritte\rZeile\r\r\n")
    assert [clean(line) for line in read_lines(tmp_path / "rrn.de")] == ["Hallo Welt", "Zweite Zeile", "Dritte Zeile"]


def test_a_decomposed_accent_is_prepared_as_the_precomposed_one(tmp_path: Path) -> None:
    """Unicode NFC in the cleaning: "e" + U+0301 (combining acute) and U+00E9 come out as the same one-character é
    in the prepared text (validation BLEU's references, the duplicate filter's hashes), on either side. The
    piece ids would match anyway (SentencePiece normalises to NFKC itself): the text is where a lost NFC shows."""
    from seq2seq.corpus import clean_split
    from seq2seq.text import clean

    assert clean("cafe\u0301  noir") == clean("caf\u00e9 noir") == "caf\u00e9 noir"
    (tmp_path / "train.fr").write_text("cafe\u0301 noir\ncaf\u00e9 noir\n", encoding="utf-8")
    (tmp_path / "train.de").write_text("Kaffee cre\u0300me\nKaffee cr\u00e8me\n", encoding="utf-8")
    assert clean_split(tmp_path, "train", "fr", "de", tmp_path / "clean") == (2, 0)
    assert (tmp_path / "clean.src.txt").read_text(encoding="utf-8") == "caf\u00e9 noir\n" * 2
    assert (tmp_path / "clean.tgt.txt").read_text(encoding="utf-8") == "Kaffee cr\u00e8me\n" * 2
