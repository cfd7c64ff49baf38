"""The memory-span study's report: memory_span.{json,csv} (the one owner of that format) and the
plain-text summary the command prints."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..atomic import write_text_atomic
from .span_tasks import SOLVED_ACCURACY, SOLVED_MSE

if TYPE_CHECKING:
    from pathlib import Path

    from .span_settings import MemorySpanResult, SpanSettings


def setup_of(s: SpanSettings, cell: str, lr: float | None = None) -> str:
    """A set-up in words, e.g. `chrono init (T_max sequence length), Adam lr 0.01, ...` (`lr`: the
    one that solved, where a retry did)."""
    init = "default init" if cell == "rnn" or s.init == "default" else f"{s.init} init"
    if s.init == "chrono" and cell != "rnn":
        init += f" (T_max {s.chrono_tmax or 'sequence length'})"
    elif s.init == "forget-bias" and cell != "rnn":
        init += f" (+{s.forget_bias:g})"
    clip = f"clip {s.clip_norm:g}" if s.clip_norm else "no clipping"
    bptt = f", truncated BPTT {s.tbptt}" if s.tbptt else ""
    return f"{init}, Adam lr {lr or s.lr:g}, batch {s.batch_size}, <= {s.steps} updates, {clip}{bptt}"


def finite(value: Any) -> Any:
    """`value` with every float that is not finite (a diverged run's NaN score, curve or gradient norm) as None:
    JSON has no NaN or Infinity (Python writes them, strict readers refuse the file), so they are written null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_result(out: Path, result: MemorySpanResult, seed: int) -> list[Path]:
    """memory_span.csv (a row per run) and memory_span.json (per task and cell the spans, set-up and
    minutes, the settings, every run; a number that is not finite written null: `finite`); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / "memory_span.csv", out / "memory_span.json"
    flat = [{k: v for k, v in r.items() if k not in ("probes", "attempts", "curve")} for r in result.rows]
    lines = [",".join(flat[0])] + [",".join(str(v) for v in r.values()) for r in flat]
    write_text_atomic(csv_path, "\n".join(lines) + "\n")
    tasks: dict[str, Any] = {}
    for task, per_cell in result.largest.items():
        tasks[task] = {}
        for cell, largest in per_cell.items():
            rows = [r for r in result.rows if (r["task"], r["cell"]) == (task, cell)]
            solved = [r for r in rows if r["delay"] == largest and r["solved"]]
            attempts = [a for r in rows for a in r.get("attempts", [r])]
            spans = result.spans.get(task, {}).get(cell, [largest])
            tasks[task][cell] = {
                "largest_delay_solved": largest,
                "per_seed": spans,
                "range": _span_range(spans),
                "setup": setup_of(result.settings, cell, solved[0]["lr"] if solved else None),
                "params": rows[0]["params"],
                "hidden": rows[0]["hidden"],
                "minutes": round(sum(a["seconds"] for a in attempts) / 60, 2),
                "cpu_minutes": round(sum(a.get("cpu_seconds", 0.0) for a in attempts) / 60, 2),
            }
    summary = {
        "tasks": tasks,
        "solved_when": {"recall": f"accuracy >= {SOLVED_ACCURACY}", "copy": f"accuracy >= {SOLVED_ACCURACY}",
                        "adding": f"mse <= {SOLVED_MSE} (always answering 1: 0.167)"},
        "settings": asdict(result.settings),
        "seeds": sorted({r["seed"] for r in result.rows}) if result.rows and "seed" in result.rows[0] else [seed],
        "seconds": result.seconds,
        "cpu_seconds": result.cpu_seconds,
        "rows": result.rows,
    }  # fmt: skip
    write_text_atomic(json_path, json.dumps(finite(summary), indent=1, allow_nan=False) + "\n")
    return [json_path, csv_path]


def _span_range(spans: list[int | None]) -> list[int | None]:
    ordered = sorted(spans, key=lambda v: -1 if v is None else v)
    return [ordered[0], ordered[-1]] if ordered else [None, None]


def _gate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_result(result: MemorySpanResult) -> str:
    """The runs and, per task and cell, the largest delay solved, as plain text."""
    head = ("task", "cell", "seed", "D", "metric", "score", "solved", "params", "updates", "wall s", "cpu s", "keep")
    lines = ["{:<7} {:<5} {:>5} {:>5} {:>8} {:>8} {:>6} {:>7} {:>7} {:>7} {:>7} {:>6}".format(*head)]
    for r in result.rows:
        lines.append(
            f"{r['task']:<7} {r['cell']:<5} {r.get('seed', ''):>5} {r['delay']:>5} {r['metric']:>8} "
            f"{r['score']:>8.4f} {'yes' if r['solved'] else 'no':>6} {r['params']:>7,} {r['steps']:>7} "
            f"{r['seconds']:>7.1f} {r.get('cpu_seconds', 0.0):>7.1f} {_gate(r['probes'][-1]['keep_gate']):>6}"
        )
    for task, per_cell in result.largest.items():
        for cell, largest in per_cell.items():
            rows = [
                r for r in result.rows if (r["task"], r["cell"], r["delay"], r["solved"]) == (task, cell, largest, True)
            ]
            said = f"solves up to D = {largest}" if largest else "solves none of the delays tried"
            spans = result.spans.get(task, {}).get(cell, [largest])
            if len(spans) > 1:
                low, high = _span_range(spans)
                each = ", ".join(str(v or "none") for v in spans)
                said += f" (median of {len(spans)} seeds; per seed {each}; range {low or 'none'} to {high or 'none'})"
            lines.append(f"{task} {cell}: {said} ({setup_of(result.settings, cell, rows[0]['lr'] if rows else None)})")
    lines.append(f"total {result.seconds / 60:.1f} min wall, {result.cpu_seconds / 60:.1f} min CPU (training); "
                 f"files: {', '.join(str(p) for p in result.files)}")  # fmt: skip
    return "\n".join(lines)
