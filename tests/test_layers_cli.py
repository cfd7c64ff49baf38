"""The error types in one module (errors.py), the command line's list of them taken from there, and
`import seq2seq.cli` loading none of the applications around the core (issue 28: 5)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import seq2seq.cli.parser
from seq2seq import errors
from seq2seq.cli import main

ROOT = Path(__file__).resolve().parents[1]
APPLICATIONS = ("seq2seq.lab", "seq2seq.tools", "seq2seq.science", "seq2seq.devtools")
# The exit status of each error the command line reports in one line, as it was before errors.py held them all.
EXPECTED_STATUS = {
    "ConfigError": 2,
    "ConfigKeyError": 2,
    "HardwareError": 2,
    "CorpusError": 2,
    "CheckpointError": 2,
    "RunFolderError": 2,
    "OutputError": 2,
    "PlotError": 2,
    "DivergedError": 3,
}


def _loaded_after(code: str) -> list[str]:
    """The seq2seq modules in sys.modules after running `code` in a fresh interpreter."""
    show = "; import sys; print('\\n'.join(sorted(m for m in sys.modules if m.startswith('seq2seq'))))"
    proc = subprocess.run([sys.executable, "-c", code + show], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_importing_the_cli_loads_nothing_of_the_applications() -> None:
    loaded = _loaded_after("import seq2seq.cli")
    assert "seq2seq.cli" in loaded
    assert [m for m in loaded if m in APPLICATIONS or m.startswith(tuple(f"{a}." for a in APPLICATIONS))] == []
    assert "seq2seq.errors" in loaded


def test_errors_module_imports_nothing_of_seq2seq_and_no_torch() -> None:
    tree = ast.parse((ROOT / "seq2seq" / "errors.py").read_text(encoding="utf-8"))
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    modules = [node.module if isinstance(node, ast.ImportFrom) else node.names[0].name for node in imports]
    assert modules[0] == "__future__" and all(m in sys.stdlib_module_names for m in modules[1:]), modules
    _loaded_after("import seq2seq.errors, sys; assert 'torch' not in sys.modules, 'torch imported'")


def test_every_error_type_is_defined_in_errors_and_the_old_names_are_the_same_types() -> None:
    from seq2seq import atomic, config
    from seq2seq.machine import hardware

    for old_home, name in [(config, "ConfigError"), (config, "ConfigKeyError"), (hardware, "HardwareError"),
                           (atomic, "OutputError")]:  # fmt: skip
        assert getattr(old_home, name) is getattr(errors, name)
        assert getattr(errors, name).__module__ == "seq2seq.errors"
    for name in EXPECTED_STATUS:
        assert getattr(errors, name).__module__ == "seq2seq.errors"
    assert set(errors.USER_ERRORS) == set(errors.EXIT_STATUS)
    assert errors.EXIT_INTERRUPTED == 130


def test_no_error_type_is_defined_outside_errors() -> None:
    """Exception classes the CLI turns into an exit status live in errors.py, and nowhere else
    (RequestError, ClientGone and SearchStopped are the server's and the search's own, never reach it)."""
    internal = {"RequestError", "ClientGone", "SearchStopped"}
    defined = []
    for path in sorted((ROOT / "seq2seq").rglob("*.py")):
        if path.name == "errors.py" and path.parent.name == "seq2seq":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error") and node.name not in internal:
                defined.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert defined == []


@pytest.mark.parametrize("name", sorted(EXPECTED_STATUS))
def test_the_cli_turns_each_error_into_one_line_and_its_exit_status(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(_args: object) -> None:
        raise getattr(errors, name)("the file, line or field named here")

    monkeypatch.setattr(seq2seq.cli.parser, "cmd_hardware", fail)  # the body build_parser binds
    assert main(["hardware"]) == EXPECTED_STATUS[name]
    assert capsys.readouterr().err == "seq2seq hardware: error: the file, line or field named here\n"
