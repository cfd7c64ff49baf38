"""Memory-span experiment: how many steps can an RNN, a GRU and an LSTM carry information?

The task: read K random symbols, then D blank tokens, then a GO token; at GO, name the K
symbols. Nothing but the recurrent state can carry them across the D blanks, so this measures
memory alone. (The translation model's attention would read them straight from the source:
that is why this uses a plain unidirectional one-layer RNN with a linear read-out, not Seq2Seq.)

Every cell type gets the same parameter budget (hidden sizes chosen so that parameter counts
match an LSTM's), the same training data stream, optimiser and step budget, for each delay D.
A cell "solves" D when it names >= 99% of the held-out symbols correctly.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import DEFAULT_DELAYS, QUICK, QUICK_DELAYS, ConfigError, SpanSettings
from ..model import RNNS, count_parameters
from .plots import CELL_COLORS, new_figure, save_figure

log = logging.getLogger("seq2seq")

SOLVED = 0.99  # held-out symbol accuracy that counts as remembering across D steps


class RecallNet(nn.Module):
    """A unidirectional one-layer RNN over one-hot tokens; a linear layer names the symbols from the last state."""

    def __init__(self, cell: str, hidden: int, s: SpanSettings, device: str | None = None) -> None:
        super().__init__()
        self.s = s
        self.rnn = RNNS[cell](s.alphabet + 2, hidden, batch_first=True, device=device)  # + BLANK, GO
        self.head = nn.Linear(hidden, s.n_symbols * s.alphabet, device=device)
        if s.gate_bias and cell in ("lstm", "gru"):  # gates (i, f, g, o) and (r, z, n): the 2nd keeps the state
            with torch.no_grad():
                self.rnn.bias_ih_l0[hidden : 2 * hidden] += s.gate_bias

    def forward(self, seq: Tensor) -> Tensor:
        """Logits (B, K, A) for token sequences (B, K + D + 1)."""
        out, _ = self.rnn(F.one_hot(seq, self.s.alphabet + 2).float())  # (B, L, H)
        return self.head(out[:, -1]).view(seq.size(0), self.s.n_symbols, self.s.alphabet)


def make_batch(gen: torch.Generator, n: int, delay: int, s: SpanSettings) -> tuple[Tensor, Tensor]:
    """Inputs (n, K + D + 1): K symbols, D blanks, GO; targets (n, K): the symbols."""
    symbols = torch.randint(s.alphabet, (n, s.n_symbols), generator=gen)
    blank, go = torch.full((n, delay), s.alphabet), torch.full((n, 1), s.alphabet + 1)
    return torch.cat([symbols, blank, go], dim=1), symbols


def count_for(cell: str, hidden: int, s: SpanSettings) -> int:
    return count_parameters(RecallNet(cell, hidden, s, device="meta"))


def matched_hidden(cells: Sequence[str], s: SpanSettings) -> dict[str, int]:
    """Per cell, the hidden size whose parameter count is closest to the budget LSTM's."""
    budget = count_for("lstm", s.lstm_hidden, s)
    return {c: min(range(1, 8 * s.lstm_hidden), key=lambda h: abs(count_for(c, h, s) - budget)) for c in cells}


@torch.no_grad()
def _accuracy(model: RecallNet, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Symbol accuracy and whole-sequence accuracy."""
    right = model(x).argmax(-1) == y  # (n, K)
    return right.float().mean().item(), right.all(-1).float().mean().item()


def train_one(cell: str, hidden: int, delay: int, s: SpanSettings, seed: int, threads: int = 1) -> dict[str, Any]:
    """Train one cell type at one delay within the step budget; its row of the results table."""
    torch.set_num_threads(threads)
    start, cpu_start = time.monotonic(), time.process_time()
    torch.manual_seed(seed)
    model = RecallNet(cell, hidden, s)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    data = torch.Generator().manual_seed(seed * 100_003 + delay)  # the same stream for every cell
    val_x, val_y = make_batch(torch.Generator().manual_seed(seed + 1), s.val_size, delay, s)
    step, val_acc, loss = 0, 0.0, float("nan")
    while step < s.steps and val_acc < s.stop_at:
        x, y = make_batch(data, s.batch_size, delay, s)
        loss_t = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss_t.backward()
        nn.utils.clip_grad_norm_(model.parameters(), s.clip_norm)
        opt.step()
        step, loss = step + 1, loss_t.item()
        if step % s.eval_every == 0 or step == s.steps:
            val_acc = _accuracy(model, val_x, val_y)[0]
    test_x, test_y = make_batch(torch.Generator().manual_seed(seed + 2), s.test_size, delay, s)
    acc, seq_acc = _accuracy(model, test_x, test_y)
    return {
        "cell": cell,
        "delay": delay,
        "accuracy": round(acc, 4),
        "seq_accuracy": round(seq_acc, 4),
        "solved": acc >= SOLVED,
        "params": count_parameters(model),
        "hidden": hidden,
        "steps": step,
        "final_loss": round(loss, 4),
        "seconds": round(time.monotonic() - start, 1),  # wall clock
        "cpu_seconds": round(time.process_time() - cpu_start, 1),  # this process's CPU time (robust to load)
    }


@dataclass
class MemorySpanResult:
    """The table (one row per cell and delay), each cell's span, and where the files are."""

    rows: list[dict[str, Any]]
    span: dict[str, int | None]  # per cell: largest D with every tested delay up to D solved (None: not even the first)
    params: dict[str, int]
    hidden: dict[str, int]
    settings: SpanSettings
    seconds: float
    files: list[Path] = field(default_factory=list)


def _span(rows: list[dict[str, Any]], cell: str) -> int | None:
    best = None
    for row in sorted((r for r in rows if r["cell"] == cell), key=lambda r: r["delay"]):
        if not row["solved"]:
            break
        best = row["delay"]
    return best


def run_memory_span(
    out_dir: str | Path,
    cells: Sequence[str] = ("rnn", "gru", "lstm"),
    delays: Sequence[int] = DEFAULT_DELAYS,
    quick: bool = False,
    seed: int = 1234,
    settings: SpanSettings | None = None,
    workers: int | None = None,
) -> MemorySpanResult:
    """Train every cell at every delay; write memory_span.{csv,json,png} into `out_dir`.

    `quick` is a < 1 minute smoke run (tiny model, short delays). `workers` parallel processes
    (default: one per CPU core, at most 2; 1 in quick mode) each use one thread.
    """
    start, out, cells = time.monotonic(), Path(out_dir), list(dict.fromkeys(cells))
    new_figure()  # fail now, not after training, when matplotlib is missing
    for c in cells:
        if c not in RNNS:
            raise ConfigError(f"unknown cell {c!r}; choose from {', '.join(RNNS)}")
    if not cells or not delays or min(delays) < 1:
        raise ConfigError(f"need at least one cell and delays >= 1, got cells {list(cells)} and delays {list(delays)}")
    s = settings or (QUICK if quick else SpanSettings())
    delays = sorted(set(QUICK_DELAYS if quick and tuple(delays) == DEFAULT_DELAYS else delays))
    hidden = matched_hidden(cells, s)
    params = {c: count_for(c, hidden[c], s) for c in cells}
    log.info("memory span: hidden sizes %s, parameters %s, delays %s", hidden, params, delays)
    jobs = sorted(((c, d) for c in cells for d in delays), key=lambda job: -job[1])  # longest first
    workers = workers or (1 if quick else max(1, min(2, os.cpu_count() or 1)))
    rows = []
    if workers == 1:
        threads = torch.get_num_threads()
        try:
            for c, d in jobs:
                rows.append(_logged(train_one(c, hidden[c], d, s, seed, threads=1)))
        finally:
            torch.set_num_threads(threads)
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(train_one, c, hidden[c], d, s, seed) for c, d in jobs]
            rows = [_logged(f.result()) for f in futures]
    rows.sort(key=lambda r: (cells.index(r["cell"]), r["delay"]))
    result = MemorySpanResult(
        rows, {c: _span(rows, c) for c in cells}, params, hidden, s, round(time.monotonic() - start, 1)
    )
    result.files = _write(out, result, seed)
    return result


def _logged(row: dict[str, Any]) -> dict[str, Any]:
    log.info(
        "%-4s D=%-4d accuracy %.4f (sequences %.4f) after %d steps, %.0f s (%.0f s CPU)",
        row["cell"], row["delay"], row["accuracy"], row["seq_accuracy"], row["steps"],
        row["seconds"], row["cpu_seconds"],
    )  # fmt: skip
    return row


def _write(out: Path, result: MemorySpanResult, seed: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / "memory_span.csv", out / "memory_span.json"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(result.rows[0]))
        writer.writeheader()
        writer.writerows(result.rows)
    summary = {
        "span": result.span,
        "params": result.params,
        "hidden": result.hidden,
        "seconds": result.seconds,
        "seed": seed,
        "solved_at": SOLVED,
        "settings": asdict(result.settings),
        "rows": result.rows,
    }
    json_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return [csv_path, json_path, plot_memory_span(result, out / "memory_span.png")]


def plot_memory_span(result: MemorySpanResult, out_png: str | Path) -> Path:
    """Held-out accuracy against the delay D per cell type, and the training steps each run used."""
    s = result.settings
    fig = new_figure(figsize=(12, 4.8), layout="constrained")
    acc_ax, steps_ax = fig.subplots(1, 2)
    for cell in result.hidden:
        rows = [r for r in result.rows if r["cell"] == cell]
        delays = [r["delay"] for r in rows]
        label = f"{cell} (hidden {result.hidden[cell]}, {result.params[cell]:,} params)"
        acc_ax.plot(delays, [r["accuracy"] for r in rows], "o-", label=label, color=CELL_COLORS.get(cell))
        steps_ax.plot(delays, [r["steps"] for r in rows], "o-", label=cell, color=CELL_COLORS.get(cell))
    acc_ax.axhline(SOLVED, color="k", linestyle="--", linewidth=1, label=f"solved ({SOLVED:.0%})")
    acc_ax.axhline(1 / s.alphabet, color="gray", linestyle=":", linewidth=1, label=f"chance (1/{s.alphabet})")
    acc_ax.set_ylim(0, 1.03)
    acc_ax.set_ylabel("held-out symbol accuracy")
    acc_ax.set_title(f"Recall {s.n_symbols} symbols after D blank steps")
    acc_ax.legend(loc="lower left", fontsize=8)
    steps_ax.axhline(s.steps, color="k", linestyle="--", linewidth=1, label=f"budget ({s.steps} steps)")
    steps_ax.set_ylim(0, s.steps * 1.08)
    steps_ax.set_ylabel(f"updates used (stops at {s.stop_at:.1%} validation accuracy)")
    steps_ax.set_title(f"Training steps used (batch {s.batch_size}, Adam lr {s.lr:g})")
    steps_ax.legend(fontsize=8)
    for ax in (acc_ax, steps_ax):
        ax.set_xscale("log")
        ax.set_xlabel("delay D (steps between the symbols and the question)")
        ax.set_xticks(
            sorted({r["delay"] for r in result.rows}), [str(d) for d in sorted({r["delay"] for r in result.rows})]
        )
        ax.grid(True, alpha=0.3, which="both")
    init = f"LSTM forget / GRU update gate bias +{s.gate_bias:g}" if s.gate_bias else "torch's default initialisation"
    fig.suptitle(f"Memory span at an equal parameter and training budget ({init})")
    return save_figure(fig, out_png)


def settings_with(base: SpanSettings, **changes: Any) -> SpanSettings:
    """`base` with the given fields changed (None values ignored), for command-line overrides."""
    return replace(base, **{k: v for k, v in changes.items() if v is not None})


def format_result(result: MemorySpanResult) -> str:
    """The table and each cell's span as plain text."""
    head = ("cell", "D", "accuracy", "seq acc", "params", "hidden", "steps", "wall s", "cpu s")
    lines = ["{:<5} {:>5} {:>9} {:>8} {:>7} {:>6} {:>6} {:>7} {:>7}".format(*head)]
    for r in result.rows:
        lines.append(
            f"{r['cell']:<5} {r['delay']:>5} {r['accuracy']:>9.4f} {r['seq_accuracy']:>8.4f} {r['params']:>7,} "
            f"{r['hidden']:>6} {r['steps']:>6} {r['seconds']:>7.1f} {r['cpu_seconds']:>7.1f}"
        )
    for cell, span in result.span.items():
        solved = f"solves every tested D up to {span}" if span else "solves none of the tested delays"
        lines.append(f"{cell}: {solved} (>= {SOLVED:.0%} symbol accuracy; {result.params[cell]:,} parameters)")
    lines.append(f"total {result.seconds:.0f} s; files: {', '.join(str(p) for p in result.files)}")
    return "\n".join(lines)
