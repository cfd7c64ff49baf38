"""Paths the system refuses as named are bad input: one line naming the path, exit status 2, like a missing
file; the machine failing (a full disk, an I/O error) stays exit status 1 (errors.os_exit_status)."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import pytest

from seq2seq.cli import main
from seq2seq.errors import os_exit_status

if TYPE_CHECKING:
    from pathlib import Path

LONG = "a" * 300  # over the 255 bytes a file name may have: ENAMETOOLONG


@pytest.mark.parametrize(
    "argv",
    [
        ["translate", "--checkpoint", "RUN/best.pt", "--input", "TMP/LONG"],
        ["translate", "--checkpoint", "RUN/best.pt", "--input", "TMP/in.txt", "--output", "TMP/LONG"],
        ["train", "--data", "RUN/../data", "--src", "LONG", "--tgt", "yy", "--out", "TMP/run"],
        ["train", "--data", "RUN/../data", "--src", "xx", "--tgt", "yy", "--out", "TMP/LONG"],
        ["preprocess", "--data", "RUN/../data", "--src", "xx", "--tgt", "yy", "--out", "TMP/LONG"],
        ["export", "--checkpoint", "RUN/best.pt", "--out", "TMP/LONG"],
        ["plot", "--run", "TMP/LONG"],
        ["gradflow", "--cell", "lstm", "--length", "5", "--out", "TMP/LONG"],
        ["serve", "--checkpoint", "TMP/LONG", "--port", "0"],
        ["evaluate", "--hyp", "TMP/LONG", "--ref", "TMP/in.txt"],
    ],
    ids=lambda argv: f"{argv[0]}-{next(a for a in argv if 'LONG' in a).split('/')[0]}",
)
def test_a_file_name_too_long_is_one_line_naming_it_exit_2(
    argv: list[str], run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "in.txt").write_text("red cat\n", encoding="utf-8")
    argv = [a.replace("RUN", str(run_dir)).replace("TMP", str(tmp_path)).replace("LONG", LONG) for a in argv]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and LONG in err[0] and err[0].endswith("File name too long"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]  # nothing written


def test_the_machine_failing_stays_exit_1() -> None:
    """A full disk, an I/O error, a port in use (no file name) are not the user's input."""
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
        assert os_exit_status(OSError(code, "failed", "out.txt")) == 1
    assert os_exit_status(OSError(errno.EADDRINUSE, "cannot listen on 127.0.0.1:8000")) == 1
    assert os_exit_status(OSError(errno.ENAMETOOLONG, "File name too long", "a" * 300)) == 2
    assert os_exit_status(OSError(errno.EROFS, "Read-only file system", "/ro/out.txt")) == 2
