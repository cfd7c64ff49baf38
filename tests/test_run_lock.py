"""One run folder, one writer: `train` and `preprocess` lock RUN/.lock (fcntl.flock); a second
process into the same folder is refused in one line naming the holder's PID (exit 2), and a lock
left behind by a killed process (kill -9) does not block the next run."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from corpora import write_corpus

from seq2seq.cli import main
from seq2seq.errors import OutputError, RunFolderError
from seq2seq.runlock import LOCK, RunLock

TINY = ["--vocab-size", "60", "--emb-size", "16", "--enc-hidden", "16", "--dec-hidden", "32", "--max-tokens", "120",
        "--threads", "1", "--valid-bleu-sentences", "0"]  # fmt: skip
HOLDER = "import sys, time; from seq2seq.runlock import RunLock; RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)"  # noqa: E501


def _args(command: str, corpus: Path, run: Path, *flags: str) -> list[str]:
    return [command, "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(run), *flags]


def _seq2seq(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "seq2seq", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip


def _wait_for(check, proc: subprocess.Popen, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if proc.poll() is not None:
            pytest.fail(f"the first run ended (exit {proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")
        assert time.monotonic() < deadline, f"no {what} after {seconds} s"
        time.sleep(0.05)


def _first_record(run: Path) -> dict:
    with open(run / "metrics.jsonl", encoding="utf-8") as f:
        return json.loads(f.readline())


def test_a_second_train_into_a_folder_in_use_is_refused_and_a_killed_holder_blocks_nothing(tmp_path, capsys) -> None:
    corpus, run = write_corpus(tmp_path / "c", n_train=120), tmp_path / "run"
    first = _seq2seq(*_args("train", corpus, run, *TINY, "--max-steps", "1000000", "--valid-every", "1", "-q"))
    try:
        # the first run has trained and saved (last.pt), so a second run with --overwrite would delete its files
        _wait_for(lambda: (run / "last.pt").is_file(), first, "checkpoint")
        first.send_signal(signal.SIGSTOP)  # paused (its CPU is the second run's), it holds the lock all the same
        assert (run / LOCK).read_text().strip() == str(first.pid)
        # the second `train` process: this one (the real command, in-process: no second torch start-up)
        assert main(_args("train", corpus, run, *TINY, "--max-steps", "2", "--overwrite", "-q")) == 2
        assert capsys.readouterr().err == (f"seq2seq train: error: {run} is in use by another seq2seq process "
                                           f"(pid {first.pid}); wait for it or choose another --out\n")  # fmt: skip
        # refused before --overwrite deleted anything: the first run's log still starts with its first record
        assert _first_record(run)["type"] == "hardware" and _first_record(run)["step"] == 0
        # and so is preprocess
        assert main(_args("preprocess", corpus, run, "--vocab-size", "60", "--overwrite")) == 2
        assert f"{run} is in use by another seq2seq process (pid {first.pid})" in capsys.readouterr().err
        assert first.poll() is None  # the first run is still there, undisturbed
    finally:
        first.kill()  # kill -9: the kernel releases its flock; the lock file stays, with its PID
        first.communicate()
    assert first.returncode == -signal.SIGKILL
    assert (run / LOCK).read_text().strip() == str(first.pid)
    assert main(_args("train", corpus, run, *TINY, "--max-steps", "2", "--overwrite", "-q")) == 0
    assert _first_record(run)["step"] == 0  # the new run's log, from the start
    assert (run / LOCK).read_text() == ""  # released: no PID in a lock nobody holds


def test_a_lock_left_by_a_killed_process_is_free(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderError, match=rf"in use by another seq2seq process \(pid {holder.pid}\)"):
            RunLock(run).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / LOCK).read_text().strip() == str(holder.pid)  # the stale file is still there ...
    with RunLock(run):  # ... and blocks nothing
        assert (run / LOCK).read_text().strip() == str(os.getpid())


def test_the_lock_is_reentrant_in_one_process_and_leaves_no_folder_it_made_for_nothing(tmp_path: Path) -> None:
    run = tmp_path / "deep" / "run"
    with RunLock(run):  # train() holds it, and its preprocess() takes it again
        with RunLock(run):
            pass
        assert (run / LOCK).read_text().strip() == str(os.getpid())  # still held by the outer one
    assert not run.exists()  # made by the lock, and nothing written in it: removed again
    run.mkdir()
    with RunLock(run):
        (run / "kept").write_text("x")
    assert sorted(p.name for p in run.iterdir()) == [LOCK, "kept"]


def test_a_run_folder_that_cannot_be_written_is_one_line_before_any_work(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=40)
    (tmp_path / "a_file").write_text("x")
    base = ["train", "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out"]
    for out in (tmp_path / "a_file", tmp_path / "a_file" / "run"):  # a file; a folder inside a file
        assert main([*base, str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"cannot write in the run folder {out}" in err, err

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main([*base, str(tmp_path / "ro")]) == 2
    assert "Read-only file system" in capsys.readouterr().err
    with pytest.raises(OutputError):
        RunLock(tmp_path / "ro").acquire()
