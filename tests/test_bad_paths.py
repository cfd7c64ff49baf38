"""Paths the system refuses as named are bad input: one line naming the path, exit status 2, like a missing
file; the machine failing (a full disk, an I/O error) stays exit status 1 (errors.os_exit_status). An empty path
or name is refused too, naming its flag (flags.refuse_empty), not taken as the flag left out."""

from __future__ import annotations

import argparse
import errno
import io
import sys
from typing import TYPE_CHECKING

import pytest

from seq2seq.cli import build_parser, main
from seq2seq.cli.flags import EMPTY_TAKEN, refuse_empty
from seq2seq.errors import ConfigError, os_exit_status

if TYPE_CHECKING:
    from pathlib import Path

LONG = "a" * 300  # over the 255 bytes a file name may have: ENAMETOOLONG


@pytest.mark.parametrize(
    "argv",
    [
        ["translate", "--checkpoint", "RUN/best.pt", "--input", "TMP/LONG"],
        ["translate", "--checkpoint", "RUN/best.pt", "--input", "TMP/in.txt", "--output", "TMP/LONG"],
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


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["translate", "--checkpoint", "RUN/best.pt", "--input", ""], "--input"),  # read standard input
        (["translate", "--checkpoint", "RUN/best.pt", "--input", "TMP/in.txt", "--output", ""], "--output"),  # stdout
        (["translate", "--checkpoint", "RUN/best.pt", "--input", "TMP/in.txt", "--config", ""], "--config"),  # ignored
        (["serve", "--checkpoint", "RUN/best.pt", "--port", "0", "--config", ""], "--config"),  # ignored
        (["evaluate", "--hyp", "TMP/in.txt", "--ref", "TMP/in.txt", "--paired-bs", ""], "--paired-bs"),  # no test, 0
        (["evaluate", "--hyp", "", "--ref", "TMP/in.txt"], "--hyp"),  # `.: is a folder`
        (["evaluate", "--hyp", "TMP/in.txt", "--ref", "TMP/in.txt", ""], "--ref"),  # one of several
        (["memory-span", "--quick", "--out", ""], "--out"),  # the current folder
        (["download", "--dataset", "TMP/data", "--src", "xx", "--tgt", "yy", "--out", ""], "--out"),  # likewise
        (
            ["download", "--dataset", "TMP/data", "--src", "xx", "--tgt", "yy", "--out", "TMP/dl", "--src-column", ""],
            "--src-column",
        ),  # ignored
        (["push", "--checkpoint", "RUN/best.pt", "--repo", "me/m", "--dry-run", "--license", ""], "--license"),
        (["train", "--data", "TMP/data", "--src", "xx", "--tgt", "yy", "--out", "="], "--out"),  # `--out=`
    ],
    ids=lambda x: x if isinstance(x, str) else x[0],
)
def test_an_empty_path_or_name_is_refused_naming_its_flag(
    argv: list[str], flag: str, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """'' meant the flag left out (stdin, stdout, no --config, the current folder, the default column, licence
    'other' and the paired test skipped) or the path `.`: refused before any work, one line, exit 2."""
    (tmp_path / "in.txt").write_text("red cat\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"red cat\n"), encoding="utf-8"))
    from seq2seq.science import memory_span
    from seq2seq.serve import server

    for module, work in ((server, "serve"), (memory_span, "run_memory_span")):  # would run on (the server: forever)
        monkeypatch.setattr(module, work, lambda *a, work=work, **k: pytest.fail(f"{work} ran"))
    argv = [a.replace("RUN", str(run_dir)).replace("TMP", str(tmp_path)) for a in argv]
    argv = argv[:-2] + [f"{argv[-2]}="] if argv[-1] == "=" else argv
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"seq2seq {argv[0]}: error: {flag} is empty (''): give a value"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]  # nothing written, in the current folder either


def test_every_flag_of_a_path_or_a_name_refuses_empty_and_the_others_keep_it() -> None:
    """Each subcommand's string flags (not choices, numbers or switches), one at a time; --retry-lrs '' (no retry)
    is taken, --host '' is serve's own refusal (it names every interface)."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    checked, taken = 0, set()
    for name, command in commands.items():
        for action in command._actions:
            if not action.option_strings or action.nargs == 0 or action.choices or action.type not in (None, str):
                continue
            flag = max(action.option_strings, key=len)
            for empty in ("", ["x", ""]):
                args = argparse.Namespace(command=name, **{action.dest: empty})
                if flag in EMPTY_TAKEN:
                    refuse_empty(parser, args)
                    taken.add(flag)
                    continue
                with pytest.raises(ConfigError, match=f"^{flag} is empty"):
                    refuse_empty(parser, args)
                checked += 1
    assert taken == EMPTY_TAKEN and checked > 100
    refuse_empty(parser, parser.parse_args(["translate", "--checkpoint", "-", "--input", "-", "--output", "-"]))
