"""Memory span against truncated BPTT: the largest delay LSTM and GRU solve when the gradient is cut every K steps.

For each K (0: full BPTT) the memory-span sweep (memory_span.py) runs with `tbptt = K`: training's
chunking rule (objective.chunks: chunks of K steps from the first step, the last one the remainder),
the state carried from chunk to chunk, the gradient cut. The recall and adding losses are read at
the last step only, so their gradient reaches back through the last chunk alone: (T - 1) mod K + 1
steps of a sequence of T. Each K's sweep keeps its own folder (memory_span.json, its pictures, the
gradient flow of the models it trained); tbptt_sweep.{json,png} put the K side by side.

Run: `python -m seq2seq.science.span_tbptt --out DIR` (scripts/memory_span_tbptt.sh).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import check_output, write_text_atomic
from ..config import ConfigError
from ..errors import OutputError, RunFolderError
from ..machine.process import one_line
from ..tools.figures import check_figure_output, new_figure, save_figure
from .memory_span import run_memory_span
from .span_checks import check_span_run
from .span_plots import TITLES
from .span_report import finite
from .span_settings import DEFAULT_DELAYS, DEFAULT_TASKS, QUICK, QUICK_DELAYS, SpanSettings
from .span_tasks import SOLVED_ACCURACY, SOLVED_MSE

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger("seq2seq")
DEFAULT_KS = (10, 25, 50, 100, 0)
QUICK_KS = (3, 0)  # --quick's sequences are 12 steps long at most: a K of 10 or more would cut nothing
SWEEP = SpanSettings(retry_lrs="", seeds=1)  # the gated cells solve at Adam 0.01 where they solve at all


def reach(length: int, k: int) -> int:
    """Steps the gradient of a loss read at the last step goes back through: the last chunk's length."""
    return length if k <= 0 or k >= length else (length - 1) % k + 1


def run_tbptt_sweep(
    out_dir: str | Path,
    ks: Sequence[int] | None = None,
    tasks: Sequence[str] = DEFAULT_TASKS,
    cells: Sequence[str] = ("gru", "lstm"),
    delays: Sequence[int] | None = None,
    settings: SpanSettings | None = None,
    seed: int = 1234,
    quick: bool = False,
    existing: str = "refuse",
) -> dict[str, Any]:
    """The memory-span sweep once per truncation K; writes OUT/k{K}/ and OUT/tbptt_sweep.{json,png}.
    A K whose OUT/k{K}/memory_span.json exists (`existing`): "refuse" (an OutputError before any training),
    "resume" (read, not run again, if it was run with these settings: any seed count and retries, seed
    `seed`'s sweep is taken) or "overwrite" (run again). Every K is checked before the first one trains."""
    if existing not in EXISTING:
        raise ConfigError(f"existing must be one of {', '.join(EXISTING)}, got {existing!r}")
    ks = list(ks if ks is not None else (QUICK_KS if quick else DEFAULT_KS))
    if not ks or min(ks) < 0:
        raise ConfigError(f"need truncations K >= 0 (0: full BPTT), got {list(ks)}")
    out, start = Path(out_dir), time.monotonic()
    base = settings or (QUICK if quick else SWEEP)
    tasks, cells = list(dict.fromkeys(tasks)), list(dict.fromkeys(cells))
    delays = sorted(set(delays or (QUICK_DELAYS if quick else DEFAULT_DELAYS)))
    per_k = {k: replace(base, tbptt=k) for k in dict.fromkeys(ks)}  # bounds: every K before any training
    for k_settings in per_k.values():
        check_span_run(tasks, cells, delays, k_settings)
    largest: dict[str, dict[str, dict[str, int | None]]] = {}
    scores: dict[str, Any] = {}
    cpu = 0.0
    folders = {k: out / f"k{k or 'full'}" for k in per_k}
    done = [f for f in folders.values() if (f / "memory_span.json").exists()]
    if existing == "refuse" and done:
        raise OutputError(f"{done[0]} already holds a sweep: add --resume to read the finished ones, --overwrite "
                          "to run them again, or use another --out")  # fmt: skip
    if out.exists() and not out.is_dir():
        raise OutputError(f"cannot write into {out}: it is a file, not a folder (--out names a folder)")
    if out.is_dir():  # the summary, written after every K, checked now (a new folder is made by the first K)
        check_output(out / "tbptt_sweep.json")
        check_figure_output(out / "tbptt_sweep.png")
    for k, k_settings in per_k.items():
        name, finished = str(k) if k else "full", folders[k] / "memory_span.json"
        if existing == "resume" and finished.exists():  # a finished sweep of an earlier run
            rows, largest[name] = _finished(finished, k_settings, tasks, cells, delays, seed)
            log.info("tbptt %s: %s (read from %s)", name, largest[name], finished)
        else:
            result = run_memory_span(folders[k], tasks, cells, delays, quick, seed, k_settings, overwrite=True)
            rows, largest[name] = result.rows, result.largest
            log.info("tbptt %s: %s (%.1f min)", name, result.largest, result.seconds / 60)
        keys = ("task", "cell", "delay", "score", "solved", "steps", "cpu_seconds")
        scores[name] = [{key: r[key] for key in keys} for r in rows]
        cpu += sum(a.get("cpu_seconds", 0.0) for r in rows for a in r.get("attempts", [r]))
    minutes, cpu_minutes = round((time.monotonic() - start) / 60, 2), round(cpu / 60, 2)
    summary = {"largest": largest, "scores": scores, "delays": delays, "settings": {**base.__dict__, "tbptt": "K"},
               "seed": seed, "minutes": minutes, "cpu_minutes": cpu_minutes}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "tbptt_sweep.json", json.dumps(finite(summary), indent=1, allow_nan=False) + "\n")
    summary["png"] = str(plot_tbptt_sweep(summary, out / "tbptt_sweep.png"))
    return summary


EXISTING = ("refuse", "resume", "overwrite")  # what run_tbptt_sweep does with a K's finished sweep
FREE = ("seeds", "retry_lrs")  # settings a finished sweep may differ in: one seed's sweep is read from it


def _finished(
    path: Path, s: SpanSettings, tasks: list[str], cells: list[str], delays: list[int], seed: int
) -> tuple[list[dict[str, Any]], dict[str, dict[str, int | None]]]:
    """Seed `seed`'s rows and largest delays solved from a finished memory_span.json, refused (one line) when
    it was run with other settings, without a task, cell or that seed, or with other delays (`_other_delays`)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        settings, seeds, rows, found = saved["settings"], saved["seeds"], saved["rows"], saved["tasks"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RunFolderError(f"{path}: not a readable memory-span result ({err}); run it again: --overwrite") from None
    asked = {k: v for k, v in asdict(s).items() if k not in FREE}
    differ = [f"{k} {settings.get(k)!r} there, {v!r} asked" for k, v in asked.items() if settings.get(k) != v]
    missing = [f"{t}/{c}" for t in tasks for c in cells if c not in found.get(t, {})]
    problem = (f"other settings ({'; '.join(differ)})" if differ else f"no {', '.join(missing)}" if missing
               else f"no seed {seed} (seeds {seeds})" if seed not in seeds
               else _other_delays(rows, tasks, cells, delays, seed))  # fmt: skip
    if problem:
        raise ConfigError(f"--resume: {path} was run with {problem}; run it again (--overwrite) or use another --out")
    index = seeds.index(seed)
    rows = [r for r in rows if r["task"] in tasks and r["cell"] in cells and r.get("seed", seed) == seed]
    spans = {t: {c: found[t][c].get("per_seed") or [found[t][c]["largest_delay_solved"]] for c in cells} for t in tasks}
    return rows, {t: {c: spans[t][c][index] for c in cells} for t in tasks}


def _other_delays(
    rows: list[dict[str, Any]], tasks: list[str], cells: list[str], delays: list[int], seed: int
) -> str | None:
    """Where seed `seed`'s sweep of a task and cell differs from the one `delays` asks for (None: nowhere). A
    sweep tries the delays in increasing order up to its first unsolved one, so the rows must be exactly
    those: a sweep of D = 2 that solved it never tried 8, and its span is no answer to --delays 2 8."""
    for task, cell in ((t, c) for t in tasks for c in cells):
        solved = {
            r["delay"]: r["solved"] for r in rows if (r["task"], r["cell"], r.get("seed", seed)) == (task, cell, seed)
        }
        walked: list[int] = []
        for delay in delays:  # the delays the asked sweep tries, given these outcomes
            walked.append(delay)
            if not solved.get(delay):
                break
        if walked[-1] not in solved:
            after = f"after solving D = {walked[-2]}" if len(walked) > 1 else "first"
            asked = " ".join(map(str, delays))
            return f"no D = {walked[-1]} for {task}/{cell}, which a sweep of --delays {asked} tries {after}"
        if extra := sorted(set(solved) - set(walked)):
            return f"delays {extra} for {task}/{cell}, not asked for"
    return None


def format_sweep(summary: dict[str, Any]) -> str:
    """The largest delay solved per task and cell (rows) and K (columns), as a Markdown table."""
    names = list(summary["largest"])
    first = summary["largest"][names[0]]
    lines = ["| task | cell | " + " | ".join(f"K = {n}" for n in names) + " |", "|---|---|" + "---|" * len(names)]
    for task, per_cell in first.items():
        for cell in per_cell:
            cols = [summary["largest"][n][task][cell] for n in names]
            lines.append(f"| {task} | {cell} | " + " | ".join(str(v) if v else "none" for v in cols) + " |")
    lines.append(f"{summary['minutes']:.1f} min wall, {summary['cpu_minutes']:.1f} min CPU")
    return "\n".join(lines)


def plot_tbptt_sweep(summary: dict[str, Any], out_png: str | Path) -> Path:
    """Per task (rows) and cell (columns), the held-out score against the delay, one line per
    truncation K (a colour each, full BPTT solid), the delays tried as plain ticks."""
    names = list(summary["largest"])
    tasks = list(summary["largest"][names[0]])
    cells = list(dict.fromkeys(c for per_cell in summary["largest"][names[0]].values() for c in per_cell))
    fig = new_figure(figsize=(5.4 * len(cells), 4.6 * len(tasks)), layout="constrained")
    axes = fig.subplots(len(tasks), len(cells), squeeze=False)
    import matplotlib  # after new_figure, which imports it (the plot extra) or says how to install it

    colours = matplotlib.colormaps["viridis"]
    for ax_row, task in zip(axes, tasks):
        for ax, cell in zip(ax_row, cells):
            for i, name in enumerate(names):
                rows = [r for r in summary["scores"][name] if (r["task"], r["cell"]) == (task, cell)]
                span = summary["largest"][name][task].get(cell)
                scores = [math.nan if r["score"] is None else r["score"] for r in rows]  # null: diverged
                ax.plot([r["delay"] for r in rows], scores, marker="o", markersize=4,
                        color=colours(0.85 * i / max(len(names) - 1, 1)), linewidth=1.6 if name == "full" else 1.2,
                        linestyle="-" if name == "full" else "--",
                        label=f"K = {name}: " + (f"up to {span}" if span else "none solved"))  # fmt: skip
            if task == "adding":
                ax.axhline(SOLVED_MSE, color="k", linestyle=":", linewidth=1, label=f"solved (<= {SOLVED_MSE})")
                ax.set_yscale("log")
                ax.set_ylabel("held-out MSE")
            else:
                ax.axhline(SOLVED_ACCURACY, color="k", linestyle=":", linewidth=1, label="solved (99 %)")
                ax.set_ylim(0, 1.03)
                ax.set_ylabel("held-out accuracy")
            ax.set_xscale("log")
            delays = sorted({r["delay"] for n in names for r in summary["scores"][n] if r["task"] == task})
            ax.set_xticks(delays, [str(d) for d in delays])  # the delays tried, as numbers (not 10^1, 10^2)
            ax.set_xticks([], minor=True)
            ax.set_xlabel("delay D (steps); a sweep stops at its first unsolved D")
            ax.set_title(f"{TITLES.get(task, task)}: {cell}")
            ax.grid(True, alpha=0.3, which="both")
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.suptitle(
        "Memory span against the truncation K of BPTT\n(training's chunk rule: chunks of K steps from the first)"
    )
    return save_figure(fig, out_png)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="scripts/memory_span_tbptt.sh", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="checkpoints/memory_span_tbptt", help="folder for k*/ and tbptt_sweep.*")
    p.add_argument(
        "--ks", nargs="+", type=int, help=f"truncations K (0: full BPTT; default {DEFAULT_KS}, --quick {QUICK_KS})"
    )
    p.add_argument("--task", nargs="+", default=list(DEFAULT_TASKS), help="recall adding (default), copy")
    p.add_argument("--cells", nargs="+", default=["gru", "lstm"], help="cells (default: gru lstm)")
    p.add_argument("--delays", nargs="+", type=int, help="delays (default: the memory-span study's)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--quick", action="store_true", help="tiny smoke run")
    p.add_argument("--resume", action="store_true", help="read the K whose OUT/k{K}/memory_span.json exists")
    p.add_argument("--overwrite", action="store_true", help="run again the K whose OUT/k{K}/ holds a sweep")
    args = p.parse_args(argv)
    if args.resume and args.overwrite:
        p.error("--resume reads the finished sweeps and --overwrite runs them again: pass one of them")
    existing = "resume" if args.resume else "overwrite" if args.overwrite else "refuse"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sweep = lambda: run_tbptt_sweep(args.out, args.ks, args.task, args.cells, args.delays,  # noqa: E731
                                    seed=args.seed, quick=args.quick, existing=existing)  # fmt: skip
    summary = one_line(p.prog, sweep)
    print(format_sweep(summary))
    print(f"picture: {summary['png']}")


if __name__ == "__main__":
    main()
