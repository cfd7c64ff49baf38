"""Mutation check: break each guarded behaviour on purpose, in a scratch copy of the repository, and
show that the tests guarding it fail. Run by `scripts/mutation_check.sh`; not part of the suite.

Each `Mutation` replaces one piece of source text (which must occur exactly once) and names the
tests that guard the behaviour. The repository is copied to a temporary folder per worker (never
touched in place), the guarding tests first run there unbroken (they must pass), then once per
mutation with the source broken. The result is a Markdown table: mutation -> tests that failed ->
caught. docs/development.md holds the table of the last run.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(".git", ".venv", "checkpoints", "data", "__pycache__", "*.egg-info", ".*_cache")


@dataclass(frozen=True)
class Mutation:
    """One behaviour broken: `old` becomes `new` in `path`; `tests` (pytest ids) must then fail."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation(
        "training climbs the loss (loss scale negated in Updater.step)",
        "seq2seq/updater.py",
        "scale: float | torch.Tensor = self.dist.world / tokens",
        "scale: float | torch.Tensor = -self.dist.world / tokens",
        ("tests/test_learning.py",),
    ),
    Mutation(
        "beam bound over the current length, not the length limit (search._bound)",
        "seq2seq/search.py",
        "final_len = max_lens.astype(np.float64) if",
        "final_len = np.full(len(best_live), float(length)) if",
        (
            "tests/test_beam_bound.py",
            "tests/test_search.py",
            "tests/test_search_arrays.py",
            "tests/test_search_torch.py",
            "tests/test_ensemble.py",
        ),
    ),
    Mutation(
        "ONNX engine keeps every sentence's memory after the search dropped finished ones",
        "seq2seq/translation/onnx_engine.py",
        "return OnnxMemory(obj.states[keep], obj.keys[keep], obj.mask[keep], size)",
        "return obj._replace(group=size)",
        ("tests/test_onnx.py",),
    ),
    Mutation(
        "ONNX engine leaves the input-feeding vector unselected when beams are reordered",
        "seq2seq/translation/onnx_engine.py",
        "tuple(a[rows] if i == last else a[:, rows] for i, a in enumerate(obj.arrays))",
        "tuple(a if i == last else a[:, rows] for i, a in enumerate(obj.arrays))",
        ("tests/test_onnx.py",),
    ),
    Mutation(
        "TBPTT drops the last chunk when it starts at the last target step",
        "seq2seq/objective.py",
        "for t0 in range(0, steps, size)] if size > 0",
        "for t0 in range(0, steps - 1, size)] if size > 0",
        ("tests/test_tbptt.py", "tests/test_learning.py"),
    ),
    Mutation(
        "TBPTT never back-propagates the chunks' gradients through the encoder",
        "seq2seq/objective.py",
        "    torch.autograd.backward(roots, grads)",
        "    del roots, grads",
        ("tests/test_tbptt.py", "tests/test_learning.py"),
    ),
    Mutation(
        "training ignores label_smoothing (full BPTT)",
        "seq2seq/objective.py",
        "return _loss(self.model, att, batch.tgt_out, self.label_smoothing, self.pad_rows, grad_scale)",
        "return _loss(self.model, att, batch.tgt_out, 0.0, self.pad_rows, grad_scale)",
        ("tests/test_tbptt.py", "tests/test_objective.py"),
    ),
    Mutation(
        "label smoothing loses its uniform part (OutputLoss forward)",
        "seq2seq/objective.py",
        "total -= eps / vocab * z.sum()",
        "total -= 0 * z.sum()",
        ("tests/test_objective.py", "tests/test_tbptt.py"),
    ),
    Mutation(
        "an update is never clipped (the factor folded into Adam's pass is dropped)",
        "seq2seq/updater.py",
        "self.scaler.step(self.opt, grad_scale=clip)",
        "self.scaler.step(self.opt, grad_scale=1.0)",
        ("tests/test_training_pieces.py",),
    ),
    Mutation(
        "resume does not restore the RNG state",
        "seq2seq/trainer.py",
        "        distributed.set_rng_state(states[dist.rank], device)\n        return",
        "        return",
        (
            "tests/test_resume.py::test_stop_and_resume_is_bitwise_identical",
            "tests/test_resume.py::test_soak_kill_and_resume_matches_uninterrupted",
        ),
    ),
    Mutation(
        "checkpoint key table swaps src_spm and tgt_spm",
        "seq2seq/checkpoint.py",
        '"src_spm": ("src_spm", bytes),\n    "tgt_spm": ("tgt_spm", bytes),',
        '"src_spm": ("tgt_spm", bytes),\n    "tgt_spm": ("src_spm", bytes),',
        (
            "tests/test_checkpoint_format.py::test_model_file_and_resume_state_round_trip",
            "tests/test_onnx.py",
            "tests/test_translate.py",
        ),
    ),
    Mutation(
        "length penalty leaves EOS out of the length (beam search)",
        "seq2seq/search.py",
        "Hypothesis(beams.tokens[row, 1:t].tolist(), lp / t**length_penalty, lp, att)",
        "Hypothesis(beams.tokens[row, 1:t].tolist(), lp / max(t - 1, 1)**length_penalty, lp, att)",
        ("tests/test_search.py", "tests/test_beam_bound.py"),
    ),
    Mutation(
        "torch engine keeps every sentence's memory after the search dropped finished ones",
        "seq2seq/translation/torch_engine.py",
        "return GroupedMemory(obj.memory.select(self._index(keep)), size)",
        "return obj._replace(group=size)",
        ("tests/test_search_torch.py", "tests/test_translate.py"),
    ),
    Mutation(
        "attention ignores the source mask (torch model)",
        "seq2seq/model.py",
        'scores = scores.masked_fill(~memory.mask[:, None, :], float("-inf"))',
        "scores = scores",
        ("tests/test_model.py",),
    ),
    Mutation(
        "int8 export scales activations by the batch's range (ONNX Runtime's dynamic quantization)",
        "seq2seq/translation/quantize.py",
        "    fixed_scale(proto, bounds)\n    fuse_matmuls(proto)",
        "    fuse_matmuls(proto)",
        ("tests/test_quantize.py",),
    ),
    Mutation(
        "int8 decoder LSTM quantizes embedding rows as if they lay in [-1, 1]",
        "seq2seq/translation/quantize.py",
        '        if bound > 1.0:\n            bounds[names["x"]] = bound',
        "        pass",
        ("tests/test_quantize.py",),
    ),
    Mutation(
        "fused int8 matmul drops the layer's bias",
        "seq2seq/translation/quantize.py",
        "+ ([chain[3].input[1]] if bias else [])",
        "+ []",
        ("tests/test_quantize.py", "tests/test_onnx.py"),
    ),
    Mutation(
        "an ONNX model whose tensors are in another file (external data) is loaded",
        "seq2seq/translation/onnx_model.py",
        "if found.external is not None:",
        "if False:",
        ("tests/test_onnx.py",),
    ),
    Mutation(
        "two differing copies of a tied weight load (the later one wins)",
        "seq2seq/checkpoint.py",
        "    for names in _shared(expected):",
        "    for names in []:",
        ("tests/test_checkpoint_integrity.py",),
    ),
    Mutation(
        "the engine's decoding batch is never halved to fit the memory budget",
        "seq2seq/search_budget.py",
        "while need + results > budget and batch > 1 and not cfg.batch_size:",
        "while False:",
        ("tests/test_decode_bounds.py",),
    ),
    Mutation(
        "ONNX engine attends over padding (every source as long as the batch's longest)",
        "seq2seq/translation/onnx_engine.py",
        "lens = np.array([len(s) for s in src_ids], dtype=np.int64)",
        "lens = np.full(len(src_ids), max(map(len, src_ids)), dtype=np.int64)",
        ("tests/test_onnx.py",),
    ),
    Mutation(
        "a shape-bucketed batch's empty rows get a target (padding trained on)",
        "seq2seq/batches.py",
        "    tgt_in, tgt_out = (_fit(t, rows, cols) for t in batch[2:4])",
        "    tgt_in, tgt_out = (_fit(t, rows, cols, EOS_ID) for t in batch[2:4])",
        ("tests/test_shape_buckets.py",),
    ),
    Mutation(
        "the output layer's padding rows get a gradient",
        "seq2seq/objective.py",
        "            grad[n:] = 0",
        "            grad[n:] = 1",
        ("tests/test_shape_buckets.py",),
    ),
    Mutation(
        "training does not give the loss its grad_scale (the backward scales a rounded gradient)",
        "seq2seq/objective.py",
        "return _loss(self.model, att, batch.tgt_out, self.label_smoothing, self.pad_rows, grad_scale)",
        "return _loss(self.model, att, batch.tgt_out, self.label_smoothing, self.pad_rows)",
        ("tests/test_objective.py", "tests/test_tbptt.py"),
    ),
    Mutation(
        "greedy search's score not divided by the length penalty",
        "seq2seq/search.py",
        "out[sent[row]] = Hypothesis(tokens[row, 1:t].tolist(), lp / t**length_penalty, lp, att)",
        "out[sent[row]] = Hypothesis(tokens[row, 1:t].tolist(), lp, lp, att)",
        ("tests/test_search.py",),
    ),
    Mutation(
        "the plateau schedule never decays the learning rate",
        "seq2seq/progress.py",
        "            st.lr_scale *= cfg.lr_decay",
        "            st.lr_scale *= 1.0",
        ("tests/test_progress.py",),
    ),
    Mutation(
        "scheduled sampling feeds the reference at 1 - the teacher-forcing ratio",
        "seq2seq/objective.py",
        "use_ref = torch.rand(inp.shape, device=inp.device) < teacher_forcing",
        "use_ref = torch.rand(inp.shape, device=inp.device) >= teacher_forcing",
        ("tests/test_tbptt.py",),
    ),
    Mutation(
        "validation loss measured with dropout on (train mode)",
        "seq2seq/objective.py",
        'a bounded set of shapes)."""\n    model.eval()',
        'a bounded set of shapes)."""\n    model.train()',
        ("tests/test_objective.py",),
    ),
)


@dataclass
class Outcome:
    mutation: Mutation
    returncode: int
    failed: list[str]  # file::test[params]
    ran: dict[str, int] = field(default_factory=dict)  # tests run per file
    note: str = ""

    @property
    def caught(self) -> bool:
        return self.returncode != 0 and bool(self.failed)


def scratch_copy(dest: Path, rev: str) -> Path:
    """The files of commit `rev` (`git archive`), or with rev "worktree" the working tree as it is
    (without .git, .venv, data, checkpoints, caches), copied to `dest`."""
    if rev == "worktree":
        shutil.copytree(ROOT, dest, ignore=SKIP)
        return dest
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, list[str], dict[str, int]]:
    """pytest on `tests` in `copy` (its `seq2seq` first on the path): exit status, the failed tests,
    and how many tests ran per file."""
    junit = copy / ".mutation-junit.xml"
    junit.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(copy), OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *tests]
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, [f"(timed out after {timeout:.0f} s)"], {}
    if not junit.exists():
        return proc.returncode, [f"(no report: {proc.stderr.strip().splitlines()[-1:]})"], {}
    failed, ran = [], Counter()
    for case in ET.parse(junit).iter("testcase"):
        file = case.get("classname", "").rsplit(".", 1)[-1]
        ran[file] += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{file}::{case.get('name')}")
    return proc.returncode, failed, dict(ran)


def check_copy(copy: Path) -> None:
    """The copy's own package is the one its tests import (not the editable install of ROOT)."""
    env = dict(os.environ, PYTHONPATH=str(copy))
    code = "import seq2seq; print(seq2seq.__file__)"
    where = subprocess.run([sys.executable, "-c", code], cwd=copy, env=env, capture_output=True, text=True).stdout
    if not where.strip().startswith(str(copy)):
        raise SystemExit(f"mutation_check: the scratch copy imports seq2seq from {where.strip()!r}, not {copy}")


def mutate(copy: Path, m: Mutation, timeout: float) -> Outcome:
    """Break `m` in `copy`, run its tests, put the source back."""
    path = copy / m.path
    text = path.read_text(encoding="utf-8")
    if text.count(m.old) != 1:
        return Outcome(m, 0, [], note=f"stale: the text to break occurs {text.count(m.old)} times in {m.path}")
    path.write_text(text.replace(m.old, m.new), encoding="utf-8")
    try:
        return Outcome(m, *run_tests(copy, m.tests, timeout))
    finally:
        path.write_text(text, encoding="utf-8")


def _short(test: str) -> str:
    return test.removeprefix("tests/")


def table(outcomes: list[Outcome]) -> str:
    """The Markdown table: mutation | where | tests that failed (of those run, per file) | caught."""
    lines = ["| mutation | where | tests that failed / ran | caught |", "|---|---|---|---|"]
    for o in outcomes:
        per_file = Counter(t.split("::")[0] for t in o.failed)
        counts = ", ".join(f"{f} {per_file[f]}/{n}" for f, n in o.ran.items()) or ", ".join(o.failed)
        caught = "yes" if o.caught else f"**no** {o.note}".strip()
        lines.append(f"| {o.mutation.name} | `{o.mutation.path}` | {counts or 'none'} | {caught} |")
    return "\n".join(lines)


def details(outcomes: list[Outcome]) -> str:
    """Each mutation's failed tests by name (functions, parameters folded)."""
    out = []
    for o in outcomes:
        names = Counter(t.split("[")[0] for t in o.failed)
        out.append(f"{o.mutation.name}:\n" + "".join(f"    {n}" + (f" (x{c})" if c > 1 else "") + "\n"
                                                    for n, c in names.items()))  # fmt: skip
    return "".join(out)


def _in_pool(copies: queue.Queue[Path], job, *args):
    copy = copies.get()
    try:
        return job(copy, *args)
    finally:
        copies.put(copy)


def check(mutations: tuple[Mutation, ...], rev: str, jobs: int, timeout: float) -> tuple[list[str], list[Outcome]]:
    """Baseline (every guarding test file unbroken) and each mutation, `jobs` at a time, on copies of `rev`."""
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as tmp:
        copies: queue.Queue[Path] = queue.Queue()
        for i in range(jobs):
            copies.put(scratch_copy(Path(tmp) / f"copy{i}", rev))
        check_copy(Path(tmp) / "copy0")
        guards = sorted({t for m in mutations for t in m.tests})
        with ThreadPoolExecutor(jobs) as pool:
            base = list(pool.map(lambda t: _in_pool(copies, run_tests, (t,), timeout), guards))
            broken = [f"{t}: {', '.join(f)}" for t, (rc, f, _) in zip(guards, base) if rc != 0]
            outcomes = list(pool.map(lambda m: _in_pool(copies, mutate, m, timeout), mutations))
    return broken, outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mutation_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="HEAD", help="commit to copy, or 'worktree' (default HEAD)")
    parser.add_argument("--jobs", type=int, default=2, help="mutations tested at a time (default 2)")
    parser.add_argument("--only", default="", help="only the mutations whose name contains this text")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per pytest run (default 1200)")
    parser.add_argument("--list", action="store_true", help="list the mutations and their tests, run nothing")
    args = parser.parse_args(argv)
    chosen = tuple(m for m in MUTATIONS if args.only in m.name)
    if args.list or not chosen:
        for m in chosen:
            print(f"{m.name}\n    {m.path}: {', '.join(_short(t) for t in m.tests)}")
        if not chosen:
            print(f"mutation_check: no mutation matches {args.only!r}", file=sys.stderr)
        return 0 if chosen else 2
    broken, outcomes = check(chosen, args.rev, max(1, args.jobs), args.timeout)
    for line in broken:
        print(f"unbroken source, failing guard: {line}", file=sys.stderr)
    print(table(outcomes))
    print("\n" + details(outcomes), end="")
    return 0 if not broken and all(o.caught for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
