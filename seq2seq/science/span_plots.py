"""The memory-span study's two pictures: score against delay per task and cell, and the gradient
flow through time of the models trained at each cell's longest delay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..tools.figures import CELL_COLORS, new_figure, save_figure
from .span_settings import PROBE_SEQUENCES
from .span_tasks import ADDING_BASELINE, SOLVED_ACCURACY, SOLVED_MSE

if TYPE_CHECKING:
    from pathlib import Path

    from .span_settings import MemorySpanResult

TITLES = {"recall": "delayed recall", "copy": "copy (Arjovsky et al. 2016)", "adding": "adding problem"}


def plot_memory_span(result: MemorySpanResult, out_png: str | Path) -> Path:
    """Held-out accuracy (recall, copy) or MSE (adding) against the delay, per task and cell."""
    tasks = list(result.largest)
    fig = new_figure(figsize=(5.6 * len(tasks), 5.6), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        for cell in result.largest[task]:
            rows = [r for r in result.rows if (r["task"], r["cell"]) == (task, cell)]
            seeds = list(dict.fromkeys(r.get("seed") for r in rows))
            label = f"{cell} ({rows[0]['params']:,} params): up to {result.largest[task][cell] or '-'}"
            if len(seeds) > 1:
                spans = result.spans[task][cell]
                label += f" (median; seeds: {', '.join(str(v or 'none') for v in spans)})"
            for k, seed in enumerate(seeds):
                mine = [r for r in rows if r.get("seed") == seed]
                ax.plot([r["delay"] for r in mine], [r["score"] for r in mine], "o-", label=None if k else label,
                        color=CELL_COLORS.get(cell), alpha=1 - 0.25 * min(k, 2), markersize=4)  # fmt: skip
        if task == "adding":
            ax.axhline(ADDING_BASELINE, color="gray", linestyle=":", linewidth=1, label="always 1 (0.167)")
            ax.axhline(SOLVED_MSE, color="k", linestyle="--", linewidth=1, label=f"solved (<= {SOLVED_MSE})")
            ax.set_yscale("log")
            ax.set_ylabel("held-out MSE")
        else:
            chance = 1 / result.settings.alphabet
            ax.axhline(chance, color="gray", linestyle=":", linewidth=1, label=f"chance (1/{result.settings.alphabet})")
            ax.axhline(SOLVED_ACCURACY, color="k", linestyle="--", linewidth=1, label=f"solved ({SOLVED_ACCURACY:.0%})")
            ax.set_ylim(0, 1.03)
            ax.set_ylabel("held-out accuracy on the remembered symbols")
        ax.set_xscale("log")
        delays = sorted({r["delay"] for r in result.rows if r["task"] == task})
        ax.set_xticks(delays, [str(d) for d in delays])  # the delays tried, as numbers (not 10^1, 10^2)
        ax.set_xticks([], minor=True)
        ax.set_xlabel("delay D (steps)")
        ax.set_title(TITLES[task])
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14))  # below: the curves fill the axes
    s = result.settings
    bptt = f", truncated BPTT {s.tbptt}" if s.tbptt else ""
    fig.suptitle(f"Memory span at an equal parameter budget\n({s.init} init for LSTM/GRU, Adam {s.lr:g}, "
                 f"<= {s.steps} updates of {s.batch_size}{bptt}; one line per seed)")  # fmt: skip
    return save_figure(fig, out_png)


def _longest(result: MemorySpanResult, task: str, cell: str) -> dict[str, Any]:
    rows = [r for r in result.rows if (r["task"], r["cell"]) == (task, cell)]
    first = rows[0].get("seed")  # the first seed's run
    return max((r for r in rows if r.get("seed") == first), key=lambda r: r["delay"])


def plot_gradient_flow(result: MemorySpanResult, out_png: str | Path) -> Path:
    """||dL/dh_t|| through time of the model trained at each cell's longest delay (solved or not),
    before, during and after training; one row per task, one column per cell."""
    tasks, cells = list(result.largest), list(next(iter(result.largest.values())))
    probed = min(PROBE_SEQUENCES, result.settings.val_size)  # the probe's sequences (memory_span.train_one)
    fig = new_figure(figsize=(4.6 * len(cells), 3.6 * len(tasks)), layout="constrained")
    axes = fig.subplots(len(tasks), len(cells), squeeze=False, sharey="row")
    from matplotlib.ticker import MaxNLocator  # after new_figure, which imports matplotlib (optional)

    for i, task in enumerate(tasks):
        for j, cell in enumerate(cells):
            ax, row = axes[i][j], _longest(result, task, cell)
            for k, p in enumerate(row["probes"]):
                norms = [max(v, 1e-30) for v in p["grad_norm"]]
                label = f"update {p['step']}" + (f", keep gate {p['keep_gate']:.3f}" if cell != "rnn" else "")
                ax.plot(range(len(norms)), norms, color=CELL_COLORS.get(cell), alpha=0.35 + 0.65 * k / 2, label=label)
            ax.set_yscale("log")
            verdict = "solved" if row["solved"] else "not solved"
            seed = f", seed {row['seed']}" if "seed" in row else ""
            ax.set_title(f"{TITLES[task]}: {cell}, D = {row['delay']} ({verdict}{seed})", fontsize=10)
            ax.set_xlabel("time step t")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # steps: no 2.5, 7.5 ticks
            ax.grid(True, alpha=0.3, which="both")
            ax.legend(fontsize=7)
        axes[i][0].set_ylabel(f"mean ||dL/dh_t|| over {probed} sequences,\nL their mean loss", fontsize=9)
    ends = [t for t in tasks if t != "copy"]  # copy has a loss at every output step, the others at the last
    where = [f"{', '.join(ends)}: the loss is read at the end"] if ends else []
    where += ["copy: a loss at every output step"] if "copy" in tasks else []
    fig.suptitle(f"Gradient flow through time of the trained models ({'; '.join(where)})")
    return save_figure(fig, out_png)
