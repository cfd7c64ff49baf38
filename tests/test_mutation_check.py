"""The mutation check's driver (devtools/mutation_check.py) without running any mutation: every mutation's text
occurs exactly once in the source it breaks, and one that no longer does is reported as not caught."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seq2seq.devtools.mutation_check import MUTATIONS, ROOT, Mutation, mutate, table

if TYPE_CHECKING:
    from pathlib import Path


def test_every_mutation_breaks_text_that_occurs_once_and_names_existing_tests() -> None:
    for m in MUTATIONS:
        assert (ROOT / m.path).read_text(encoding="utf-8").count(m.old) == 1, m.name
        assert all((ROOT / t.split("::")[0]).is_file() for t in m.tests), m.name


def test_a_stale_mutation_is_reported_not_caught(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text("x = 1\n", encoding="utf-8")
    outcome = mutate(tmp_path, Mutation("gone", "mod.py", "y = 2", "y = 3", ("tests/test_x.py",)), timeout=1)
    assert not outcome.caught and outcome.ran == {}
    assert table([outcome]).splitlines()[-1] == (
        "| gone | `mod.py` | none | **no** stale: the text to break occurs 0 times in mod.py |"
    )
    assert (tmp_path / "mod.py").read_text(encoding="utf-8") == "x = 1\n"  # untouched
