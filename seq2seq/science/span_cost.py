"""The cost of back-propagation through time, measured: seconds per update and peak memory against the
sequence length T and the hidden size H, with full BPTT and truncated BPTT (K steps).

The texts' table: forward and BPTT time O(T * H^2) per sequence, memory O(T * H) for full BPTT and
O(K * H) truncated. Here one update of the memory-span network (memory_span.SpanNet: one RNN layer
and a linear read-out) on a batch of the copy task, whose loss is read at every step (as a
translation decoder's), so that truncated BPTT back-propagates every chunk: the same work as full
BPTT, with only one chunk's activations held at a time. The adding problem, whose loss is read at
the last step only, is measured under full BPTT and truncated: truncated, its backward runs through
the last chunk alone, so its gain is judged against full BPTT on the same task (whose backward carries
gradients that decay towards 0 over the whole sequence: subnormal floats, slow on x86 CPUs). Full BPTT
on adding is measured once more with subnormals flushed to zero (`torch.set_flush_denormal`, where the
CPU can), so that the gain splits into the arithmetic truncation saves and the subnormal slowdown it
avoids.

Every point runs on one thread. The time is the minimum over `repeats` updates of the process's
CPU time per update (the machine may be shared; the minimum is the least disturbed), wall time
beside it. The memory is what the update holds for its backward: the peak over the update of the
tensors autograd saves (counted through `saved_tensors_hooks`, each storage once, the parameters
not counted; a chunk's are freed by its backward), i.e. the activations the O(.) table is about.
`rss=True` runs each point in a fresh process and adds its peak resident set during the updates
minus its resident set before them (allocator caching and temporaries included).

Run: `python -m seq2seq.science.span_cost --out DIR` (scripts/memory_span_cost.sh).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import check_output, write_text_atomic
from ..errors import ConfigError, OutputError
from ..machine.process import one_line
from ..tools.figures import CELL_COLORS, check_figure_output, new_figure, save_figure

if TYPE_CHECKING:
    from collections.abc import Sequence

LENGTHS = (50, 100, 200, 500, 1000)
HIDDENS = (16, 32, 64, 128, 256, 512)
CELLS = ("rnn", "gru", "lstm")


def _rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class _Saved:
    """Live bytes of the tensors autograd holds for backward, and their peak (see the module's docstring)."""

    def __init__(self, skip: set[int]) -> None:
        self.skip, self.live, self.count, self.peak = skip, 0, {}, 0

    def pack(self, t: Any) -> Any:
        ptr = t.untyped_storage().data_ptr()
        if ptr in self.skip:
            return t
        if ptr not in self.count:
            self.live += t.untyped_storage().nbytes()
            self.peak = max(self.peak, self.live)
        self.count[ptr] = self.count.get(ptr, 0) + 1
        return _Held(t, ptr, self)

    def release(self, t: Any, ptr: int) -> None:
        self.count[ptr] -= 1
        if not self.count[ptr]:
            del self.count[ptr]
            self.live -= t.untyped_storage().nbytes()


class _Held:
    def __init__(self, t: Any, ptr: int, owner: _Saved) -> None:
        self.t, self.ptr, self.owner = t, ptr, owner

    def __del__(self) -> None:
        self.owner.release(self.t, self.ptr)


def measure(cell: str, length: int, hidden: int, tbptt: int, task: str = "copy", batch: int = 64,
            repeats: int = 5, flush: bool = False) -> dict[str, Any]:  # fmt: skip
    """One point, in this process: CPU and wall seconds per update (min over `repeats`), the peak of the
    activations held for backward (MiB), and the resident set's growth (MiB, meaningful in a fresh process).
    `flush`: subnormal floats flushed to zero during the updates (the row's "flush" says whether the CPU could:
    None where it cannot, and then nothing was flushed)."""
    import torch

    flushed = torch.set_flush_denormal(True) if flush else False
    try:
        row = _measure(cell, length, hidden, tbptt, task, batch, repeats)
    finally:
        if flushed:
            torch.set_flush_denormal(False)
    return {**row, "flush": (flushed or None) if flush else False}


def _measure(cell: str, length: int, hidden: int, tbptt: int, task: str, batch: int, repeats: int) -> dict[str, Any]:
    import torch

    from .memory_span import SpanNet, backward
    from .span_settings import SpanSettings
    from .span_tasks import Task

    torch.set_num_threads(1)
    torch.manual_seed(0)
    t = Task(task, length - 20 if task == "copy" else length, SpanSettings(hidden=hidden, batch_size=batch))
    net = SpanNet(cell, hidden, t)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = t.batch(torch.Generator().manual_seed(0), batch)
    rss0, cpu, wall = _rss_mib(), [], []
    for _ in range(repeats + 1):  # the first update warms up (Adam's state, allocator)
        c0, w0 = time.process_time(), time.perf_counter()
        opt.zero_grad(set_to_none=True)
        backward(net, t, x, y, tbptt)
        opt.step()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    saved = _Saved({p.untyped_storage().data_ptr() for p in net.parameters()})
    with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda held: held if torch.is_tensor(held) else held.t):
        backward(net, t, x, y, tbptt)
    return {"cell": cell, "T": length, "H": hidden, "K": tbptt, "task": task, "batch": batch,
            "cpu_s": round(min(cpu[1:]), 5), "wall_s": round(min(wall[1:]), 5),
            "saved_mib": round(saved.peak / 2**20, 2), "saved_bytes": saved.peak,
            "rss_mib": round(max(peak - rss0, 0.0), 1)}  # fmt: skip


MAX_REPEATS = 1000


def check_cost(cells: Sequence[str], lengths: Sequence[int], hiddens: Sequence[int], k: int, repeats: int) -> None:
    """Known cells, lengths the copy task can have (T - 20 >= 2 delay steps) and sizes whose update fits the
    memory budget (half the RAM), 1 <= K < the longest T (K cuts something), repeats in [1, MAX_REPEATS]:
    else a ConfigError, before anything is measured."""
    from .span_checks import update_memory
    from .span_settings import LIMITS, MAX_DELAY, SpanSettings, memory_budget
    from .span_tasks import Task

    bad = [c for c in cells if c not in CELLS]
    if bad or not cells:
        raise ConfigError(f"unknown or no cell(s) {bad or list(cells)}; choose from {', '.join(CELLS)}")
    if min(lengths) < 22 or max(lengths) > MAX_DELAY + 20:
        raise ConfigError(f"--lengths must be in [22, {MAX_DELAY + 20:,}] (the copy task: 20 symbols and a delay of "
                          f"at least 2), got {' '.join(map(str, lengths))}")  # fmt: skip
    if min(hiddens) < 1 or max(hiddens) > LIMITS["hidden"]:
        raise ConfigError(f"--hiddens must be in [1, {LIMITS['hidden']:,}], got {' '.join(map(str, hiddens))}")
    if not 1 <= k < max(lengths):
        raise ConfigError(f"--k must be in [1, {max(lengths) - 1:,}] (a truncation that cuts the longest T), got {k:,}")
    if not 1 <= repeats <= MAX_REPEATS:
        raise ConfigError(f"--repeats must be in [1, {MAX_REPEATS:,}], got {repeats:,}")
    task = Task("copy", max(lengths) - 20, SpanSettings(hidden=max(hiddens)))
    if (need := update_memory(task, max(hiddens))) > memory_budget():
        raise ConfigError(f"T {max(lengths):,} with H {max(hiddens):,} needs about {need / 1e9:.1f} GB for one update; "
                          f"this machine allows {memory_budget() / 1e9:.1f} GB (half its memory): smaller --lengths or "
                          "--hiddens")  # fmt: skip


def check_cost_output(out_dir: str | Path) -> Path:
    """The folder `out_dir` can take span_cost.json and span_cost.png (created; matplotlib there): checked
    before anything is measured, not found after the measuring. Else an OutputError (or PlotError)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"cannot write into {out}: it is a file, not a folder (--out names a folder)")
    check_output(out / "span_cost.json", make_folder=True)
    check_figure_output(out / "span_cost.png")
    return out


def _fresh(args: tuple) -> dict[str, Any]:
    with get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(measure, args)


def _point(args: tuple, rss: bool) -> dict[str, Any]:
    row = _fresh(args) if rss else measure(*args)
    if not rss:
        del row["rss_mib"]  # the process's lifetime peak: not this point's
    return row


def run_cost(out_dir: str | Path, cells: Sequence[str] = CELLS, lengths: Sequence[int] = LENGTHS,
             hiddens: Sequence[int] = HIDDENS, k: int = 50, hidden: int = 64, length: int = 200,
             repeats: int = 5, rss: bool = False) -> dict[str, Any]:  # fmt: skip
    """Against T (H = `hidden`) and against H (T = `length`), full BPTT and K (`rss`: each point in a fresh
    process, its resident set measured too). Every setting is checked first (`check_cost`)."""
    check_cost(cells, [*lengths, length], [*hiddens, hidden], k, repeats)
    out = check_cost_output(out_dir)
    start = time.monotonic()
    points = []
    for cell in cells:
        for t in lengths:
            for kk, task, flush in series(k):
                points.append(_point((cell, t, hidden, kk, task, 64, repeats, flush), rss))
        for h in hiddens:
            for kk in (0, k):
                points.append(_point((cell, length, h, kk, "copy", 64, repeats), rss))
    result = {"points": points, "k": k, "hidden": hidden, "length": length, "repeats": repeats, "rss": rss,
              "minutes": round((time.monotonic() - start) / 60, 2)}  # fmt: skip
    write_text_atomic(out / "span_cost.json", json.dumps(result, indent=1) + "\n")
    result["png"] = str(plot_cost(result, out / "span_cost.png"))
    return result


def series(k: int) -> tuple[tuple[int, str, bool], ...]:
    """The (truncation, task, subnormals flushed) measured against T: each task under full BPTT (0) and truncated
    at `k`, and full BPTT on adding once more with subnormals flushed to zero."""
    return (0, "copy", False), (k, "copy", False), (0, "adding", False), (k, "adding", False), (0, "adding", True)


def _series(points: list[dict[str, Any]], cell: str, axis: str, fixed: dict[str, Any]) -> list[dict[str, Any]]:
    """The points of one cell with `fixed` settings, one per value of `axis` (the T sweep and the H sweep
    both measure T = length, H = hidden: the lower CPU time of the two, as the repeats' minimum)."""
    rows = [p for p in points if p["cell"] == cell and all(p.get(k, False) == v for k, v in fixed.items())]
    best: dict[Any, dict[str, Any]] = {}
    for p in rows:
        if p[axis] not in best or p["cpu_s"] < best[p[axis]]["cpu_s"]:
            best[p[axis]] = p
    return [best[v] for v in sorted(best)]


def plot_cost(result: dict[str, Any], out_png: str | Path) -> Path:
    """2 x 2: seconds per update and peak memory, against T and against H; log-log, one colour per cell,
    the values tried as plain ticks, and grey guides of the O(.) table's slopes (T, H, H^2)."""
    pts, k, hid, length = result["points"], result["k"], result["hidden"], result["length"]
    fig = new_figure(figsize=(11, 9), layout="constrained")
    axes = fig.subplots(2, 2)
    styles = ((0, "copy", False, "-", "full BPTT, loss at every step (copy)"),
              (k, "copy", False, "--", f"K = {k}, loss at every step (copy)"),
              (0, "adding", False, "-.", "full BPTT, loss at the end (adding)"),
              (k, "adding", False, ":", f"K = {k}, loss at the end (adding)"),
              (0, "adding", True, (0, (8, 3)), "full BPTT, adding, subnormals flushed to 0"))  # fmt: skip
    cells = list(dict.fromkeys(p["cell"] for p in pts))
    guides = {("T", "cpu_s"): (1, "∝ T"), ("T", "saved_mib"): (1, "∝ T"),
              ("H", "cpu_s"): (2, "∝ H²"), ("H", "saved_mib"): (1, "∝ H")}  # fmt: skip
    for col, (axis, fixed, label) in enumerate((("T", {"H": hid}, "sequence length T"),
                                                 ("H", {"T": length, "task": "copy"}, "hidden size H"))):  # fmt: skip
        plain = {**fixed, "K": 0, "task": "copy", "flush": False}
        full = [p for cell in cells for p in _series(pts, cell, axis, plain)]
        values = sorted({p[axis] for p in full})
        for cell in cells:
            for kk, task, flush, ls, _name in styles if axis == "T" else styles[:2]:  # the H sweep: copy only
                rows = _series(pts, cell, axis, {**fixed, "K": kk, "task": task, "flush": flush})
                for row, key in ((0, "cpu_s"), (1, "saved_mib")) if rows else ():
                    xs, ys = [p[axis] for p in rows], [max(p[key], 1e-9) for p in rows]
                    marker = {"marker": "^", "markersize": 4} if flush else {"marker": "o", "markersize": 3}
                    axes[row][col].plot(xs, ys, linestyle=ls, color=CELL_COLORS.get(cell), **marker)
        what = f"{'H' if axis == 'T' else 'T'} = {hid if axis == 'T' else length}, batch 64"
        axes[0][col].set_title(f"CPU s per update (min of {result['repeats']}, 1 thread),\n{what}", fontsize=10)
        axes[1][col].set_title(f"peak activations held for backward,\n{what}", fontsize=10)
        for row, key in enumerate(("cpu_s", "saved_mib")):
            ax = axes[row][col]
            ax.set_xscale("log")
            ax.set_yscale("log")
            if full:  # a grey guide through the largest full-BPTT point: the slope the O(.) table predicts
                power, text = guides[(axis, key)]
                y_end = max(p[key] for p in full if p[axis] == values[-1])
                ends = [values[0], values[-1]]
                ys = [y_end * (x / values[-1]) ** power for x in ends]
                ax.plot(ends, ys, color="0.6", linewidth=1)
                ax.text(ends[0], ys[0], f" {text}", color="0.4", fontsize=9, va="bottom")
                ax.set_xticks(values, [str(v) for v in values])
                ax.set_xticks([], minor=True)
            ax.set_xlabel(label)
            ax.set_ylabel("CPU s / update" if key == "cpu_s" else "MiB")
            ax.grid(True, alpha=0.3, which="both")
    from matplotlib.lines import Line2D

    # one legend below the panels: a colour per cell, a line style per series (5 x 3 entries would cover the data)
    handles = [Line2D([], [], color=CELL_COLORS.get(cell), marker="o", markersize=3, label=cell) for cell in cells]
    handles += [Line2D([], [], color="0.3", linestyle=ls, marker="^" if flush else None, markersize=4, label=name)
                for _, _, flush, ls, name in styles]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8)
    fig.suptitle("The cost of BPTT, measured (one update of a one-layer recurrent net + linear read-out)")
    return save_figure(fig, out_png)


def slopes(result: dict[str, Any]) -> list[str]:
    """Log-log slopes between the two largest points of each series: the exponent the O(.) table predicts."""
    import math

    lines = []
    pts, k = result["points"], result["k"]
    for axis, fixed in (("T", {"H": result["hidden"]}), ("H", {"T": result["length"]})):
        for cell in dict.fromkeys(p["cell"] for p in pts):
            for kk, task, flush in series(k):
                rows = _series(pts, cell, axis, {**fixed, "K": kk, "task": task, "flush": flush})
                if len(rows) < 2:
                    continue
                a, b = rows[-2], rows[-1]
                parts = []
                for key in ("cpu_s", "saved_mib"):
                    if a[key] > 0 and b[key] > 0:
                        parts.append(f"{key} {math.log(b[key] / a[key]) / math.log(b[axis] / a[axis]):.2f}")
                lines.append(f"{cell} K={kk or 'full'} {task}{', flushed' if flush else ''}: slope against {axis} "
                             f"({a[axis]}->{b[axis]}): "
                             + ", ".join(parts))  # fmt: skip
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="scripts/memory_span_cost.sh", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="checkpoints/memory_span_cost", help="folder for span_cost.{json,png}")
    p.add_argument("--cells", nargs="+", default=list(CELLS))
    p.add_argument("--lengths", nargs="+", type=int, default=list(LENGTHS))
    p.add_argument("--hiddens", nargs="+", type=int, default=list(HIDDENS))
    p.add_argument("--k", type=int, default=50, help="the truncation measured beside full BPTT")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rss", action="store_true", help="each point in a fresh process, its resident set measured")
    args = p.parse_args(argv)
    result = one_line(p.prog, lambda: run_cost(args.out, args.cells, args.lengths, args.hiddens, args.k,
                                               repeats=args.repeats, rss=args.rss))  # fmt: skip
    for q in result["points"]:
        print(json.dumps(q))
    print("\n".join(slopes(result)))
    print(f"{result['minutes']:.1f} min; picture: {result['png']}")


if __name__ == "__main__":
    main()
