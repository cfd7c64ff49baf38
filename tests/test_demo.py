"""`seq2seq demo`: never over another run's folder, and an interrupted demo stops (exit 130)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from corpora import write_corpus

from seq2seq.cli import main
from seq2seq.config import DataConfig
from seq2seq.preprocess import preprocess
from seq2seq.tools import demo
from seq2seq.trainer import TrainResult


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_demo_refuses_a_trained_run_folder_before_writing_anything(run_dir: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = _listing(run)
    assert main(["demo", "--out", str(run), "--max-minutes", "0.01"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"seq2seq demo: error: {run} holds files of something other than an earlier demo (a run "
                   "folder?); the demo would replace them: give it another --out"]  # fmt: skip
    assert _listing(run) == before  # not a file added, changed or removed (it replaced best.pt and last.pt)
    (tmp_path / "notes.txt").write_text("mine\n")
    assert main(["demo", "--out", str(tmp_path / "notes.txt")]) == 2


def test_an_earlier_demo_folder_new_or_empty_folders_are_taken(tmp_path: Path) -> None:
    demo._check_out(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    demo._check_out(tmp_path / "empty")
    earlier = tmp_path / "earlier"
    write_corpus(earlier / "corpus", n_train=60)
    demo._check_out(earlier)  # killed before preprocessing
    preprocess(earlier / "corpus", "xx", "yy", earlier, DataConfig(vocab_size=40))
    demo._check_out(earlier)  # prepared from its own corpus/


def test_an_interrupted_demo_stops_with_exit_130_without_translating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(demo, "generate_corpus", lambda folder, seed: {"train": 0})
    monkeypatch.setattr(demo, "train", lambda *a, **k: TrainResult(tmp_path, 112, None, "interrupted by SIGINT", []))
    assert main(["demo", "--out", str(tmp_path / "d"), "--quiet"]) == 130
    assert capsys.readouterr().err.splitlines() == ["seq2seq demo: interrupted"]  # not "best.pt: no such file"


def test_a_demo_without_a_time_budget_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    """`demo --max-minutes 0` trained forever: the demo has no step cap, and 0 meant no time limit."""
    for minutes in ("0", "-1", "nan"):
        assert main(["demo", "--out", str(tmp_path / "d"), "--max-minutes", minutes]) == 2
        err = capsys.readouterr().err.splitlines()
        assert err == [f"seq2seq demo: error: --max-minutes must be > 0 for the demo (its only stop), got {minutes}"]
    assert not (tmp_path / "d").exists()


def test_a_demo_seed_out_of_range_names_the_seed_flag_and_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """It said `spm_seed must be in [0, 4294967295]` (the demo has no --spm-seed: its --seed seeds the tokenizer
    too), or, below 0, TrainConfig's `seed must be in [0, 9,223,372,036,854,775,807]`."""
    for seed in ("4294967296", "-1"):
        assert main(["demo", "--out", str(tmp_path / "d"), "--seed", seed]) == 2
        err = capsys.readouterr().err.splitlines()
        assert err == [f"seq2seq demo: error: --seed must be in [0, 4294967295] for the demo (it seeds SentencePiece "
                       f"too, whose seed is unsigned 32-bit), got {seed}"]  # fmt: skip
    assert not (tmp_path / "d").exists()
    monkeypatch.setattr(demo, "generate_corpus", lambda folder, seed: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["demo", "--out", str(tmp_path / "d"), "--seed", "4294967295", "--quiet"]) == 130  # the bound: taken


def test_a_demo_folder_on_a_read_only_file_system_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Exit 1 (`Read-only file system`, an OSError once the corpus was written) where train, export, push and
    the others refuse theirs up front, exit 2. The read-only file system is simulated (as root, chmod is no
    test): access(2) refuses writing, statvfs says read-only, mkdir is EROFS; the corpus is never written."""
    ro = tmp_path / "ro"
    ro.mkdir()
    access, statvfs, mkdir = os.access, os.statvfs, Path.mkdir

    def under(path: object) -> bool:
        return Path(path) == ro or ro in Path(path).parents

    def read_only_mkdir(self: Path, *args, **kwargs) -> None:
        if under(self):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        mkdir(self, *args, **kwargs)

    monkeypatch.setattr(os, "access", lambda p, mode, **k: not (under(p) and mode & os.W_OK) and access(p, mode, **k))
    monkeypatch.setattr(os, "statvfs", lambda p: SimpleNamespace(f_flag=os.ST_RDONLY) if under(p) else statvfs(p))
    monkeypatch.setattr(Path, "mkdir", read_only_mkdir)
    monkeypatch.setattr(demo, "generate_corpus", lambda folder, seed: pytest.fail(f"wrote {folder}"))
    for out in (ro / "demo", ro):  # a new folder in it; the folder itself
        assert main(["demo", "--out", str(out), "--quiet"]) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"seq2seq demo: error: cannot write the demo into {out}: folder {ro}/ is on a read-only file system"
        ]


def test_an_interrupted_demos_warning_says_what_continues_it(tmp_path: Path, monkeypatch, caplog) -> None:
    """It said 'continue with the same command plus --resume', and the demo has no --resume: the demo's options
    (seen by a stand-in for train) run a tiny real training, interrupted after update 2, whose warning is read."""
    import logging
    import os
    import signal

    from seq2seq import trainer
    from seq2seq.config import ModelConfig, TrainConfig
    from seq2seq.train import RunSpec, train

    seen = []
    monkeypatch.setattr(demo, "generate_corpus", lambda folder, seed: {"train": 0})
    monkeypatch.setattr(demo, "train", lambda *a: (seen.append(a[-1]), TrainResult(tmp_path, 1, None, "x", []))[1])
    monkeypatch.setattr(demo.Translator, "from_checkpoint", lambda path: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["demo", "--out", str(tmp_path / "d"), "--quiet"]) == 130
    corpus, real = write_corpus(tmp_path / "corpus", n_train=60), trainer.after_update

    def ctrl_c_after_update_2(st, applied, tokens):
        real(st, applied, tokens)
        if st.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(trainer, "after_update", ctrl_c_after_update_2)
    cfg = TrainConfig(max_tokens=120, max_steps=6, valid_every=100, valid_bleu_sentences=0)
    model = ModelConfig(emb_size=8, enc_hidden=8, dec_hidden=8)
    with caplog.at_level(logging.WARNING, logger="seq2seq"):
        result = train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DataConfig(vocab_size=40), model, cfg, seen[0])
    assert result.interrupted
    (warning,) = [r.getMessage() for r in caplog.records if "; continue with " in r.getMessage()]
    assert warning.endswith("continue with `seq2seq demo` again, which starts over (the demo has no --resume)")
