"""The guard rails run with the tests: ruff's rules from pyproject.toml (style, complexity, argument counts),
and closed code blocks in the Markdown pages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    beside = Path(sys.executable).with_name("ruff")  # the dev extra installs it into the venv
    found = str(beside) if beside.is_file() else shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: pip install -e '.[dev]' (scripts/test.sh does)")
    return [found]


def test_ruff_check_passes() -> None:
    done = subprocess.run([*_ruff(), "check", "seq2seq", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def test_ruff_format_is_applied() -> None:
    done = subprocess.run([*_ruff(), "format", "--check", "seq2seq", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def test_every_code_block_in_the_docs_is_closed() -> None:
    """An unclosed ``` turns the rest of a page into code (docs/results.md had one for days): every
    Markdown file of the repository opens and closes its fenced blocks in pairs."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    odd = [p.name for p in pages if sum(line.lstrip().startswith("```") for line in p.read_text().splitlines()) % 2]
    assert len(pages) > 5 and not odd, odd
