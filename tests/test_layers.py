"""Imports point one way: every module's imports (module-level, in-function, TYPE_CHECKING) go to its
own layer or a lower one of seq2seq/layers.py, no import cycle exists, and docs/architecture.md shows
the same table."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from seq2seq.layers import LAYERS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "seq2seq"


def _modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted names below seq2seq ('' for the package itself) and their files."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The seq2seq modules `name` imports anywhere in its file, with the line of the first import."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "seq2seq":
                base = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:  # `from . import x` may name a module
                full = ".".join([*base, alias.name])
                targets.append(full if full in modules else ".".join(base))
        elif isinstance(node, ast.Import):
            targets = [
                a.name.split(".", 1)[1] if "." in a.name else ""
                for a in node.names
                if a.name.split(".")[0] == "seq2seq"
            ]
        for target in targets:
            if target != name and target in modules:
                found.setdefault(target, node.lineno)
    return found


def _layer(name: str) -> int:
    """The index in LAYERS of a module: the layer naming it or a package above it."""
    for index, (_, members, _) in enumerate(LAYERS):
        for member in members:
            if name == member or (member and name.startswith(member + ".")):
                return index
    raise AssertionError(f"seq2seq.{name} is in no layer of seq2seq/layers.py: add it")


def _graph(package: Path = PACKAGE) -> tuple[dict[str, Path], dict[str, dict[str, int]]]:
    modules = _modules(package)
    return modules, {name: _imports(name, path, modules) for name, path in modules.items()}


def upward_imports(package: Path = PACKAGE) -> list[str]:
    modules, graph = _graph(package)
    bad = []
    for name, targets in graph.items():
        for target, line in targets.items():
            if _layer(target) > _layer(name):
                bad.append(f"seq2seq/{modules[name].relative_to(package)}:{line} imports seq2seq.{target} "
                           f"({LAYERS[_layer(target)][0]} is above {LAYERS[_layer(name)][0]})")  # fmt: skip
    return bad


def _reach(graph: dict[str, dict[str, int]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        v = todo.pop()
        if v not in seen:
            seen.add(v)
            todo.extend(graph[v])
    return seen


def cycles(package: Path = PACKAGE) -> list[list[str]]:
    """The import cycles: groups of modules that each reach the others through imports."""
    _, graph = _graph(package)
    reach = {v: _reach(graph, v) for v in graph}
    groups = {frozenset(w for w in reach[v] if v in reach[w]) for v in graph if v in reach[v]}
    return sorted(sorted(group) for group in groups)


def test_every_module_is_in_a_layer_and_imports_point_down() -> None:
    assert upward_imports() == []


def test_no_import_cycles() -> None:
    assert cycles() == []


def test_the_checks_see_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    """The same checks on a copy of the package with one upward import added to a core module."""
    copy = tmp_path / "seq2seq"
    subprocess.run(["cp", "-r", str(PACKAGE), str(copy)], check=True)
    search = copy / "search.py"
    search.write_text(search.read_text() + "\n\ndef _up():\n    from .translation import loading  # noqa\n")
    assert any(line.startswith("seq2seq/search.py:") and "seq2seq.translation.loading" in line
               for line in upward_imports(copy))  # fmt: skip
    assert any("search" in c and "translation.loading" in c for c in cycles(copy))


def test_docs_architecture_shows_the_layers_table() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| (\w+) \| ([^|]+) \|", page, re.M)
    documented = [(int(i), name, tuple(m.strip().strip("`") for m in members.split(","))) for i, name, members in rows]
    expected = [(i, name, tuple(m or "seq2seq" for m in members)) for i, (name, members, _) in enumerate(LAYERS, 1)]
    assert documented == expected


def test_importing_the_network_loads_no_data_preparation_nor_sentencepiece() -> None:
    """Type-only imports stay under TYPE_CHECKING (ruff's TC rules): the network is the network."""
    code = "import sys, seq2seq.model, seq2seq.search; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert not {"seq2seq.prepared", "seq2seq.tokenizer", "seq2seq.corpus", "sentencepiece"} & set(loaded)


def test_the_core_stays_within_its_pinned_size() -> None:
    from seq2seq.layers import CORE_LINES

    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.glob("*.py"))
    assert lines <= CORE_LINES, f"the core (seq2seq/*.py) has {lines} lines, over its pin of {CORE_LINES}"
