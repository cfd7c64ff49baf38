"""The truncation sweep and the cost study of the memory-span lab (issue 31), on tiny sizes."""

from __future__ import annotations

import importlib.util
import json

import pytest

from seq2seq.config import ConfigError
from seq2seq.science.span_cost import measure
from seq2seq.science.span_tbptt import format_sweep, reach, run_tbptt_sweep


def test_a_loss_at_the_last_step_reaches_back_through_the_last_chunk_only() -> None:
    assert reach(104, 50) == 4  # chunks [0, 50) [50, 100) [100, 104)
    assert reach(100, 50) == 50 and reach(100, 0) == reach(100, 100) == reach(100, 500) == 100
    assert reach(10, 4) == 2


def test_activations_held_grow_with_t_under_full_bptt_and_stay_put_under_truncation() -> None:
    full = [measure("lstm", t, 8, 0, "copy", batch=4, repeats=1)["saved_bytes"] for t in (40, 80, 120)]
    cut = [measure("lstm", t, 8, 10, "copy", batch=4, repeats=1)["saved_bytes"] for t in (40, 80)]
    end = [measure("gru", t, 8, 10, "adding", batch=4, repeats=1)["saved_bytes"] for t in (40, 80)]
    step1, step2 = full[1] - full[0], full[2] - full[1]
    assert step1 > 0 and abs(step2 - step1) <= 0.05 * step1  # O(T): about the same bytes for every 40 more steps
    assert cut[0] == cut[1] < full[0]  # O(K): one chunk's at a time
    assert end[0] == end[1] > 0  # loss at the end: only the last chunk builds a graph
    row = measure("rnn", 30, 8, 0, "copy", batch=4, repeats=2)
    assert row["cpu_s"] > 0 and row["wall_s"] > 0 and (row["T"], row["H"], row["K"]) == (30, 8, 0)


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs seq2seq-nmt[plot]")
def test_the_sweep_runs_every_truncation_and_tabulates_them(tmp_path) -> None:  # noqa: ANN001
    summary = run_tbptt_sweep(tmp_path, ks=(3, 0), tasks=("adding",), cells=("lstm",), quick=True)
    saved = json.loads((tmp_path / "tbptt_sweep.json").read_text(encoding="utf-8"))
    assert list(saved["largest"]) == ["3", "full"] and set(saved["largest"]["3"]["adding"]) == {"lstm"}
    k3 = json.loads((tmp_path / "k3" / "memory_span.json").read_text(encoding="utf-8"))
    assert k3["settings"]["tbptt"] == 3 and all(r["tbptt"] == 3 for r in k3["rows"])
    assert (tmp_path / "tbptt_sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert format_sweep(summary).splitlines()[0] == "| task | cell | K = 3 | K = full |"
    before = (tmp_path / "k3" / "memory_span.json").stat().st_mtime_ns
    again = run_tbptt_sweep(tmp_path, ks=(3, 0), tasks=("adding",), cells=("lstm",), quick=True, resume=True)
    assert again["largest"] == summary["largest"] and again["scores"] == summary["scores"]
    assert (tmp_path / "k3" / "memory_span.json").stat().st_mtime_ns == before  # read, not run again
    with pytest.raises(ConfigError, match="K >= 0"):
        run_tbptt_sweep(tmp_path, ks=(-1,))
