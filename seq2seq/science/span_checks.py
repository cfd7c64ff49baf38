"""What a memory-span run is checked for before it trains (memory_span.run_memory_span): its settings
(`check_span_run`: known tasks and cells, delays, no setting it would ignore), seeds, workers and output
folder (`check_run`), and the memory its largest delay needs (`span_memory`, `check_memory`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..atomic import check_output
from ..config import ConfigError
from ..errors import OutputError
from .span_settings import (
    MAX_SEED,
    MAX_WORKERS,
    PROBE_SEQUENCES,
    SpanSettings,
    check_settings,
    memory_budget,
    stream_clash,
)
from .span_tasks import Task

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence
    from pathlib import Path

# Sequences scored at a time: 1,000 at once at T = 504 need hundreds of MiB of fresh memory per check,
# which took 2.2 s for the GRU against 0.9 s in chunks of 128 (2-core AMD EPYC, huge pages on).
SCORE_CHUNK = 128


def check_span_run(
    tasks: Sequence[str], cells: Sequence[str], delays: Sequence[int], s: SpanSettings,
    given: Collection[str] | None = None,
) -> None:  # fmt: skip
    """`check_settings`, and a truncation that would cut nothing refused: with K at or above the longest
    sequence of a task in the run, that task trains with full BPTT however it is labelled (checked per task:
    the adding problem's sequences are shorter than recall's at the same delay)."""
    check_settings(tasks, cells, delays, s, given)
    longest = {name: Task(name, max(delays), s).length for name in tasks}
    uncut = [name for name in tasks if s.tbptt >= longest[name]]
    if s.tbptt and uncut:
        below = min(longest.values())
        raise ConfigError(f"--tbptt {s.tbptt} would be ignored on {uncut[0]}: its longest sequence in this run has "
                          f"{longest[uncut[0]]} steps, so chunks of {s.tbptt} are full BPTT there; use a K below "
                          f"{below}, or leave it out")  # fmt: skip


def check_run(
    seed: int, s: SpanSettings, workers: int | None, out: Path, overwrite: bool, delays: Sequence[int] = ()
) -> None:
    """Seeds torch takes, none whose training stream at one of `delays` is one of its held-out sets
    (`stream_clash`: seed 0 at delays 2 and 3), a bounded number of workers, and an output folder that can
    hold the result (and holds none, unless `overwrite`: a run can take hours). Nothing is created:
    `make_out` does that, after the memory check."""
    if not 0 <= seed <= MAX_SEED - s.seeds + 1:
        raise ConfigError(f"--seed must be in [0, {MAX_SEED - s.seeds + 1:,}] (--seeds {s.seeds}), got {seed:,}")
    for sd, delay in ((sd, d) for sd in range(seed, seed + s.seeds) for d in delays):
        if clash := stream_clash(sd, delay):
            raise ConfigError(f"seed {sd} at delay {delay} would train on its own {clash} set (the training stream's "
                              f"seed, {sd} x 100,003 + {delay}, is the {clash} set's): use another --seed, or leave "
                              f"delay {delay} out")  # fmt: skip
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers must be in [1, {MAX_WORKERS}], got {workers:,}")
    if out.exists() and not out.is_dir():
        raise OutputError(f"cannot write into {out}: it is a file, not a folder (--out names a folder)")
    if not overwrite and (out / "memory_span.json").exists():
        raise OutputError(f"{out} already holds a memory-span result (memory_span.json): add --overwrite to replace "
                          "it, or use another --out")  # fmt: skip
    if out.is_dir():
        make_out(out)


def make_out(out: Path) -> None:
    """Create the output folder (after every check: a refused run leaves none behind); its files can be written."""
    for name in ("memory_span.json", "memory_span.csv", "memory_span.png", "gradient_flow.png"):
        check_output(out / name, make_folder=True)


SAVED_PER_STEP = 20  # floats per hidden unit, step and sequence an update saves for backward (LSTM: ~17.6 measured)


def update_memory(task: Task, hidden: int) -> int:
    """Bytes an update holds for its backward (float32): the inputs, `SAVED_PER_STEP` x H per step and
    sequence (oneDNN's LSTM workspace: about 17.6 H, docs/science.md; the GRU's 6.3), the outputs."""
    return 4 * task.s.batch_size * task.length * (task.n_in + SAVED_PER_STEP * hidden + task.n_out)


def span_memory(task: Task, hidden: int) -> int:
    """Bytes one training run of `task` at a hidden size holds at its peak, roughly, summed over its phases
    (upper bound): the parameters with their gradient and Adam's two moments; the validation inputs (float32,
    kept); an update (`update_memory`) and a probe's unrolled graph; the test inputs, generated after
    training as int64 one-hot and then their float32 copy (12 bytes a number at once); a scored chunk's
    outputs, and for copy (a prediction at every step) every test sequence's predictions, joined."""
    s, length, n_in, n_out = task.s, task.length, task.n_in, task.n_out
    params = 4 * hidden * (n_in + hidden + 2) + n_out * (hidden + 1)  # an LSTM's: the most of the three cells
    val = 4 * s.val_size * length * n_in
    test = 12 * s.test_size * length * n_in
    probe = 4 * min(PROBE_SEQUENCES, s.val_size) * length * (12 * hidden + n_out)
    scored = 4 * (SCORE_CHUNK + (s.test_size if task.name == "copy" else 0)) * length * n_out
    return 4 * 4 * params + val + update_memory(task, hidden) + probe + test + scored


def check_memory(
    tasks: Sequence[str], hidden: Callable[[Task], dict[str, int]], delay: int, s: SpanSettings, workers: int
) -> None:
    """Every task's run at the largest delay (per cell the size `hidden(task)` gives), `workers` at once, fits
    in `memory_budget`; else a ConfigError."""
    budget = memory_budget()
    for name in tasks:
        task = Task(name, delay, s)
        for cell, hidden_size in hidden(task).items():
            need = span_memory(task, hidden_size) * workers
            if need > budget:
                raise ConfigError(
                    f"a {name} run of the {cell} (hidden {hidden_size}) at delay {delay} needs about "
                    f"{need / 1e9:.1f} GB ({workers} at once); this machine allows {budget / 1e9:.1f} GB (half its "
                    "memory): use smaller --delays, --batch-size, --val-size, --test-size or --hidden, or fewer "
                    "--workers"
                )
