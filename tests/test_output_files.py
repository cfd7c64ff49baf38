"""No command destroys its input or leaves half a file: output paths are checked before any work
(the input itself, also through a symbolic or hard link; a missing folder; a folder), every output
file is written to a temporary file and renamed into place (`seq2seq.atomic`), and Ctrl-C ends a
command with one line and exit status 130, the old output file kept."""

from __future__ import annotations

import io
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from corpora import WORDS

from seq2seq.atomic import OutputError, atomic_write, check_output, write_text_atomic
from seq2seq.cli import main

OLD = "the old translations\n"


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, list[str]]:
    """Exit status and stderr lines of `seq2seq argv...` run in this process (--quiet)."""
    code = main([str(a) for a in argv] + ["--quiet"])
    return code, capsys.readouterr().err.splitlines()


def _no_temporary_files(folder: Path) -> bool:
    return not list(folder.glob(".*.tmp"))


@pytest.fixture
def text(tmp_path: Path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text("red cat\nsmall dog bird\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_translate_refuses_an_output_that_is_its_input(run_dir, text, link, capsys) -> None:
    output = {"same": text, "symlink": text.with_name("sym.txt"), "hardlink": text.with_name("hard.txt")}[link]
    if link == "symlink":
        output.symlink_to(text.name)
    elif link == "hardlink":
        os.link(text, output)
    before = text.read_bytes()
    code, err = _run(capsys, "translate", "--checkpoint", run_dir / "best.pt", "--input", text, "--output", output)
    assert code == 2
    assert err == [f"seq2seq translate: error: cannot write {output}: it is the input {text}; "
                   "writing it would destroy the input"]  # fmt: skip
    assert text.read_bytes() == before


def test_translate_refuses_an_output_that_is_its_model_file(run_dir, text, tmp_path, capsys) -> None:
    """`translate --checkpoint M --output M` (a copy of best.pt; also an ensemble member) would replace
    the model with its own translations."""
    model = tmp_path / "model.pt"
    model.write_bytes((run_dir / "best.pt").read_bytes())
    before = model.read_bytes()
    for checkpoints in ([model], [run_dir / "best.pt", model]):
        code, err = _run(capsys, "translate", "--checkpoint", *checkpoints, "--input", text, "--output", model)
        assert code == 2
        assert err == [f"seq2seq translate: error: cannot write {model}: it is the input {model}; "
                       "writing it would destroy the input"]  # fmt: skip
    assert model.read_bytes() == before


def test_translate_refuses_an_output_that_is_its_config_file(run_dir, text, tmp_path, capsys) -> None:
    """`translate --config c.toml --output c.toml` replaced the settings with translations."""
    config = tmp_path / "c.toml"
    config.write_text("[decode]\nbeam_size = 2\n", encoding="utf-8")
    before = config.read_bytes()
    code, err = _run(capsys, "translate", "--checkpoint", run_dir / "best.pt", "--input", text, "--config", config,
                     "--output", config)  # fmt: skip
    assert code == 2
    assert err == [f"seq2seq translate: error: cannot write {config}: it is the input {config}; "
                   "writing it would destroy the input"]  # fmt: skip
    assert config.read_bytes() == before


def test_translate_refuses_an_output_that_is_its_standard_input(run_dir, text) -> None:
    """`translate --output F < F`: the same file as fd 0 (a subprocess, for a real standard input)."""
    before = text.read_bytes()
    cmd = [sys.executable, "-m", "seq2seq", "translate", "--checkpoint", str(run_dir / "best.pt"),
           "--output", str(text), "--quiet"]  # fmt: skip
    with open(text, "rb") as stdin:
        done = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"seq2seq translate: error: cannot write {text}: it is the input "
                                        "standard input; writing it would destroy the input"]  # fmt: skip
    assert text.read_bytes() == before


def test_average_refuses_to_overwrite_one_of_its_checkpoints(run_dir, tmp_path, capsys) -> None:
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    first.write_bytes((run_dir / "best.pt").read_bytes())
    second.write_bytes((run_dir / "last.pt").read_bytes())
    os.link(second, tmp_path / "b-link.pt")
    for out in (first, tmp_path / "b-link.pt"):
        before = (first.read_bytes(), second.read_bytes())
        code, err = _run(capsys, "average", "--checkpoints", first, second, "--out", out)
        assert code == 2
        assert len(err) == 1 and f"cannot write {out}: it is the input" in err[0], err
        assert (first.read_bytes(), second.read_bytes()) == before
    code, err = _run(capsys, "average", "--checkpoints", first, second, "--out", tmp_path / "avg.pt")
    assert code == 0 and (tmp_path / "avg.pt").is_file() and _no_temporary_files(tmp_path)


def test_average_refuses_to_write_over_a_runs_own_checkpoints(run_dir, tmp_path, capsys) -> None:
    """Averaged weights written as RUN/last.pt lost the run's resume state (--resume: "holds no training state")."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    first.write_bytes((run / "best.pt").read_bytes())
    second.write_bytes((run / "last.pt").read_bytes())
    before = {name: (run / name).read_bytes() for name in ("best.pt", "last.pt")}
    for name in ("last.pt", "best.pt", "step0000060.pt"):
        code, err = _run(capsys, "average", "--checkpoints", first, second, "--out", run / name)
        assert code == 2 and len(err) == 1 and f"is a checkpoint of the run in {run}" in err[0], err
    assert {name: (run / name).read_bytes() for name in before} == before and not (run / "step0000060.pt").exists()
    code, err = _run(capsys, "average", "--checkpoints", first, second, "--out", run / "average.pt")
    assert code == 0 and (run / "average.pt").is_file()


def test_translate_refuses_to_write_its_output_over_a_runs_checkpoints(run_dir, tmp_path, capsys) -> None:
    """`translate --output OTHER_RUN/last.pt` wrote text over another run's resume state (exit 0; its --resume
    then failed: "not a checkpoint file"); export and average refused it, translate did not."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (tmp_path / "in.txt").write_text("a b c\n")
    before = {name: (run / name).read_bytes() for name in ("best.pt", "last.pt")}
    for name in ("last.pt", "best.pt", "step0000060.pt"):
        code, err = _run(capsys, "translate", "--checkpoint", run_dir / "best.pt", "--input", tmp_path / "in.txt",
                         "--output", run / name)  # fmt: skip
        assert code == 2 and len(err) == 1 and f"--output {run / name} is a checkpoint of the run in {run}" in err[0]
    assert {name: (run / name).read_bytes() for name in before} == before and not (run / "step0000060.pt").exists()
    code, err = _run(capsys, "translate", "--checkpoint", run_dir / "best.pt", "--input", tmp_path / "in.txt",
                     "--output", run / "test.hyp.txt")  # fmt: skip
    assert code == 0 and (run / "test.hyp.txt").read_text().count("\n") == 1


def test_export_refuses_to_overwrite_its_checkpoint(run_dir, tmp_path, capsys) -> None:
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes((run_dir / "best.pt").read_bytes())
    os.link(checkpoint, tmp_path / "model.onnx.zip")  # a model file's name for the very checkpoint file
    before = checkpoint.read_bytes()
    code, err = _run(capsys, "export", "--checkpoint", checkpoint, "--out", tmp_path / "model.onnx.zip")
    assert code == 2
    assert err == [f"seq2seq export: error: cannot write {tmp_path / 'model.onnx.zip'}: it is the input {checkpoint}; "
                   "writing it would destroy the input"]  # fmt: skip
    assert checkpoint.read_bytes() == before


def test_export_replaces_a_links_target_and_keeps_the_files_permissions(run_dir, tmp_path, capsys) -> None:
    """Written through atomic_write like every output: the link stays a link, a private model stays private."""
    (tmp_path / "models").mkdir()
    real, link = tmp_path / "models" / "real.onnx.zip", tmp_path / "current.onnx.zip"
    real.write_bytes(b"an older model")
    real.chmod(0o600)
    link.symlink_to(real)
    code, err = _run(capsys, "export", "--checkpoint", run_dir / "best.pt", "--out", link)
    assert code == 0, err
    assert link.is_symlink() and zipfile.is_zipfile(real) and (real.stat().st_mode & 0o777) == 0o600
    assert _no_temporary_files(tmp_path) and _no_temporary_files(tmp_path / "models")


def _bad_output_commands(run_dir: Path, text: Path, out: Path) -> dict[str, list[object]]:
    best = run_dir / "best.pt"
    return {
        "translate": ["translate", "--checkpoint", best, "--input", text, "--output", out],
        "average": ["average", "--checkpoints", best, run_dir / "last.pt", "--out", out],
        "export": ["export", "--checkpoint", best, "--out", out],
        "attention": ["attention", "--checkpoint", best, "--sentence", "red cat", "--out", out],
    }


@pytest.mark.parametrize("command", ["translate", "average", "export", "attention"])
def test_an_output_path_that_is_a_folder_is_exit_2_naming_it(run_dir, text, tmp_path, command, capsys) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    code, err = _run(capsys, *_bad_output_commands(run_dir, text, folder)[command])
    assert code == 2
    assert err == [f"seq2seq {command}: error: cannot write {folder}: it is a folder"]


@pytest.mark.parametrize("command", ["translate", "average"])
def test_an_output_in_a_missing_folder_is_exit_2_naming_it(run_dir, text, tmp_path, command, capsys) -> None:
    out = tmp_path / "missing" / "out.txt"
    code, err = _run(capsys, *_bad_output_commands(run_dir, text, out)[command])
    assert code == 2
    assert err == [f"seq2seq {command}: error: cannot write {out}: folder {out.parent}/ does not exist"]
    assert not out.parent.exists()


def test_the_output_path_is_checked_before_the_model_is_loaded(text, tmp_path, capsys) -> None:
    """Up front: with a checkpoint that does not exist either, the output path is what is refused."""
    out = tmp_path / "missing" / "out.txt"
    code, err = _run(capsys, "translate", "--checkpoint", tmp_path / "nope.pt", "--input", text, "--output", out)
    assert code == 2 and err == [f"seq2seq translate: error: cannot write {out}: folder {out.parent}/ does not exist"]


def test_a_line_refused_mid_stream_leaves_the_lines_before_it_in_the_output_file(run_dir, tmp_path, monkeypatch,
                                                                                capsys) -> None:  # fmt: skip
    """Streaming from stdin, 20 lines are translated before a bad line stops the run (exit 2): the output file holds
    their translations, and the error says so (the file was left as it was: the work done was lost). A bad first
    line leaves the old file."""
    out = tmp_path / "out.txt"
    for stdin, kept in ((b"red cat\n" * 20 + b"bad \xff byte\n", 20), (b"bad \xff byte\nred cat\n", 0)):
        out.write_text(OLD, encoding="utf-8")
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code, err = _run(capsys, "translate", "--checkpoint", run_dir / "best.pt", "--output", out)
        where = f"; {out} holds the translations of lines 1-20" if kept else ""
        assert code == 2 and err == [f"seq2seq translate: error: <stdin>:{kept + 1}: invalid UTF-8 (byte 0xff){where}"]
        text = out.read_text(encoding="utf-8")
        assert text == OLD if not kept else (len(text.splitlines()) == kept and OLD not in text)
        assert _no_temporary_files(tmp_path)


def test_translate_output_replaces_the_file_a_symlink_points_to(run_dir, text, tmp_path, capsys) -> None:
    target = tmp_path / "real.txt"
    target.write_text(OLD, encoding="utf-8")
    (tmp_path / "link.txt").symlink_to(target.name)
    code, _ = _run(capsys, "translate", "--checkpoint", run_dir / "best.pt", "--input", text,
                   "--output", tmp_path / "link.txt")  # fmt: skip
    assert code == 0
    assert (tmp_path / "link.txt").is_symlink()  # the link is kept, its target holds the translations
    assert len(target.read_text(encoding="utf-8").splitlines()) == 2
    assert _no_temporary_files(tmp_path)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_devices_are_written_into_and_a_full_disk_is_exit_1_naming_the_file(run_dir, text, capsys) -> None:
    """/dev/null and /dev/full are written straight into, never replaced by a renamed file; a write
    that fails mid-run (/dev/full: no space left) is exit 1, a failure of the system, not of the input."""
    checkpoint = ["--checkpoint", run_dir / "best.pt", "--input", text]
    assert _run(capsys, "translate", *checkpoint, "--output", "/dev/null") == (0, [])
    code, err = _run(capsys, "translate", *checkpoint, "--output", "/dev/full")
    assert code == 1 and err == ["seq2seq translate: error: /dev/full: No space left on device"]
    assert Path("/dev/null").is_char_device() and Path("/dev/full").is_char_device()


def test_atomic_write_writes_into_a_named_pipe_without_replacing_it(tmp_path) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()))
    reader.start()
    check_output(pipe)
    with atomic_write(pipe) as f:
        f.write("through the pipe\n")
    reader.join(timeout=30)
    assert got == [b"through the pipe\n"]
    assert stat.S_ISFIFO(pipe.stat().st_mode) and _no_temporary_files(tmp_path)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path, error) -> None:
    path = tmp_path / "out.txt"
    path.write_text(OLD, encoding="utf-8")
    with pytest.raises(error), atomic_write(path) as f:
        f.write("half of the new")
        raise error()
    assert path.read_text(encoding="utf-8") == OLD
    assert _no_temporary_files(tmp_path)
    with pytest.raises(error), atomic_write(tmp_path / "new.bin", "wb") as f:
        f.write(b"half")
        raise error()
    assert not (tmp_path / "new.bin").exists() and _no_temporary_files(tmp_path)


def test_atomic_write_replaces_whole_and_keeps_permissions(tmp_path) -> None:
    path = tmp_path / "out.txt"
    path.write_text(OLD, encoding="utf-8")
    path.chmod(0o640)
    write_text_atomic(path, "new\n")
    assert path.read_text(encoding="utf-8") == "new\n"
    assert path.stat().st_mode & 0o777 == 0o640
    assert _no_temporary_files(tmp_path)


def test_check_output(tmp_path) -> None:
    check_output(tmp_path / "new.txt")  # a new file in an existing folder
    check_output(tmp_path / "a" / "b" / "new.txt", make_folder=True)
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"file is not a folder"):
        check_output(tmp_path / "file" / "new.txt")
    check_output(tmp_path / "file", inputs=[None, tmp_path / "missing.txt", tmp_path / "new.txt"])  # not its input


def test_an_unwritable_folder_is_named_with_why_read_only_file_system_or_permissions(tmp_path, monkeypatch) -> None:
    """Every command's output check (and the demo's, which shares it) tells a read-only file system from a folder
    this user may not write in. Simulated (as root, chmod is no test): access(2) refuses writing under both
    folders, and statvfs says read-only for one."""
    ro, locked = tmp_path / "ro", tmp_path / "locked"
    ro.mkdir(), locked.mkdir()
    access, statvfs = os.access, os.statvfs
    monkeypatch.setattr(os, "access", lambda p, mode, **k: Path(p) not in (ro, locked) and access(p, mode, **k))
    monkeypatch.setattr(
        os, "statvfs", lambda p: type("V", (), {"f_flag": os.ST_RDONLY})() if Path(p) == ro else statvfs(p)
    )
    with pytest.raises(OutputError) as err:
        check_output(ro / "out.txt")
    assert str(err.value) == f"cannot write {ro / 'out.txt'}: folder {ro}/ is on a read-only file system"
    with pytest.raises(OutputError) as err:
        check_output(locked / "new" / "out.txt", make_folder=True, later=True)  # a folder it would create in locked/
    assert str(err.value) == f"cannot write {locked / 'new' / 'out.txt'}: folder {locked}/ is not writable"
    with pytest.raises(OutputError) as err:
        check_output(tmp_path / "missing" / "out.txt")
    assert (
        str(err.value)
        == f"cannot write {tmp_path / 'missing' / 'out.txt'}: folder {tmp_path / 'missing'}/ does not exist"
    )


def test_ctrl_c_in_translate_is_one_line_exit_130_and_keeps_the_old_output(run_dir, tmp_path) -> None:
    """A real SIGINT to a real `seq2seq translate --output` while it translates (its temporary output
    file exists): exit status 130, one line on stderr, no traceback; the output file holds its old
    content, the input is intact, and no temporary file is left. (A new output file is not created:
    test_atomic_write_keeps_the_old_file_when_the_writer_fails, KeyboardInterrupt.)"""
    rng = random.Random(0)
    source = tmp_path / "big.txt"  # minutes of work for the tiny model: still running when interrupted
    source.write_text("".join(" ".join(rng.choice(WORDS) for _ in range(5)) + "\n" for _ in range(20000)))
    before = source.read_bytes()
    out = tmp_path / "out.txt"
    out.write_text(OLD, encoding="utf-8")
    cmd = [sys.executable, "-m", "seq2seq", "translate", "--checkpoint", str(run_dir / "best.pt"),
           "--input", str(source), "--output", str(out), "--beam-size", "5", "--quiet"]  # fmt: skip
    # Python turns SIGINT into KeyboardInterrupt unless it starts with SIGINT ignored (as background
    # jobs of a non-interactive shell do): start it with the default disposition, as a terminal does
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while _no_temporary_files(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # the temporary output file appears once the model is loaded and translating starts
        assert proc.poll() is None, proc.communicate()[1]
        assert not _no_temporary_files(tmp_path), "translation did not start in time"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.splitlines() == ["seq2seq translate: interrupted"] and stdout == ""
    assert out.read_text(encoding="utf-8") == OLD
    assert source.read_bytes() == before
    assert _no_temporary_files(tmp_path)
