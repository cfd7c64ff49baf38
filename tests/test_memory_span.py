"""The memory-span lab: the tasks' construction and baselines by hand, the initialisations, the
step-by-step unroll against torch's fused RNNs, and the sweep's stopping rule."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch

from seq2seq.config import ConfigError
from seq2seq.science import memory_span
from seq2seq.science.memory_span import SpanNet, initialise, matched_hidden, probe, sweep, unroll
from seq2seq.science.span_settings import SpanSettings
from seq2seq.science.span_tasks import ADDING_BASELINE, Task

S = SpanSettings(hidden=16)


def test_recall_is_symbols_then_blanks_then_go_and_asks_for_the_symbols() -> None:
    task = Task("recall", 5, S)  # alphabet 8: tokens 0..7 symbols, 8 blank, 9 GO
    x, y = task.batch(torch.Generator().manual_seed(0), 4)
    tokens = x.argmax(-1)
    assert x.shape == (4, 3 + 5 + 1, 10) and task.length == 9
    assert torch.equal(tokens[:, :3], y) and bool((y < 8).all())
    assert bool((tokens[:, 3:8] == 8).all()) and bool((tokens[:, 8] == 9).all())
    assert task.baseline() == 1 / 8


def test_copy_is_arjovskys_layout_and_its_memoryless_baseline() -> None:
    task = Task("copy", 7, S)  # 10 symbols, 6 blanks, delimiter, 10 blanks; output blanks then the symbols
    x, y = task.batch(torch.Generator().manual_seed(0), 3)
    tokens = x.argmax(-1)
    assert x.shape == (3, 7 + 20, 10) and y.shape == (3, 27)
    assert bool((tokens[:, :10] >= 1).all() and (tokens[:, :10] <= 8).all())
    assert bool((tokens[:, 10:16] == 0).all()) and bool((tokens[:, 16] == 9).all())
    assert bool((tokens[:, 17:] == 0).all())
    assert bool((y[:, :17] == 0).all()) and torch.equal(y[:, 17:], tokens[:, :10])
    assert task.copy_baseline_loss() == pytest.approx(10 * math.log(8) / 27)
    # the score counts only the copied symbols: a model that outputs blanks then the right symbols scores 1
    perfect = torch.nn.functional.one_hot(y, 9).float()
    assert task.score(perfect, y) == 1.0
    blanks = torch.nn.functional.one_hot(torch.zeros_like(y), 9).float()
    assert task.score(blanks, y) == 0.0


def test_adding_has_one_marker_per_half_and_the_always_one_baseline_is_a_sixth() -> None:
    task = Task("adding", 10, S)
    x, y = task.batch(torch.Generator().manual_seed(0), 20_000)
    values, markers = x[..., 0], x[..., 1]
    assert bool((markers[:, :5].sum(1) == 1).all()) and bool((markers[:, 5:].sum(1) == 1).all())
    assert torch.allclose(y, (values * markers).sum(1))
    assert ADDING_BASELINE == pytest.approx(1 / 6)
    assert task.score(torch.ones_like(y), y) == pytest.approx(1 / 6, abs=0.005)  # Var(U + U) = 2/12
    assert task.solved(0.009) and not task.solved(0.011) and Task("recall", 5, S).solved(0.99)


def test_chrono_initialisation_sets_the_gate_biases_it_should() -> None:
    t_max, gen = 50, torch.Generator().manual_seed(0)
    task = Task("recall", 20, S)
    lstm = SpanNet("lstm", 16, task)
    initialise(lstm, SpanSettings(hidden=16, init="chrono"), t_max, gen)
    b_ih, b_hh = lstm.rnn.bias_ih_l0.detach(), lstm.rnn.bias_hh_l0.detach()
    forget, inp = b_ih[16:32], b_ih[:16]
    assert bool((forget >= 0).all() and (forget <= math.log(t_max - 1)).all()) and forget.std() > 0.3
    assert torch.equal(inp, -forget) and bool((b_ih[32:] == 0).all()) and bool((b_hh == 0).all())
    gru = SpanNet("gru", 16, task)
    initialise(gru, SpanSettings(hidden=16, init="chrono"), t_max, gen)
    z = gru.rnn.bias_ih_l0.detach()[16:32]
    assert bool((z >= 0).all() and (z <= math.log(t_max - 1)).all()) and bool((gru.rnn.bias_ih_l0[:16] == 0).all())


def test_forget_bias_adds_to_the_forget_gate_only_and_the_rnn_has_no_gates() -> None:
    task = Task("recall", 5, S)
    torch.manual_seed(0)
    net = SpanNet("lstm", 16, task)
    before = net.rnn.bias_ih_l0.detach().clone()
    initialise(net, SpanSettings(hidden=16, init="forget-bias", forget_bias=1.0), 10, torch.Generator())
    diff = net.rnn.bias_ih_l0.detach() - before
    assert torch.allclose(diff[16:32], torch.ones(16)) and bool((diff[:16] == 0).all() and (diff[32:] == 0).all())
    rnn = SpanNet("rnn", 16, task)
    state = {k: v.clone() for k, v in rnn.state_dict().items()}
    initialise(rnn, SpanSettings(hidden=16, init="chrono"), 10, torch.Generator())
    assert all(torch.equal(state[k], v) for k, v in rnn.state_dict().items())


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_step_by_step_unroll_is_torchs_fused_rnn(cell: str) -> None:
    task = Task("adding", 12, S)
    torch.manual_seed(0)
    net = SpanNet(cell, 16, task)
    initialise(net, SpanSettings(hidden=16, init="chrono"), 12, torch.Generator().manual_seed(1))
    with torch.no_grad():  # chrono starts b_hh at zero; a trained net's is not: an unroll without it must fail
        net.rnn.bias_hh_l0.normal_(0.0, 0.5)
    x, y = task.batch(torch.Generator().manual_seed(2), 5)
    states, keep = unroll(net, x)
    fused = net.rnn(x)[0]
    assert torch.allclose(torch.stack(states, 1), fused, atol=1e-5)
    assert (cell == "rnn") == math.isnan(keep.item())
    # the last state's gradient is the direct one: the same through the fused RNN
    out = fused.detach().requires_grad_()
    loss = task.loss(task.outputs(net.head(out)), y)
    direct = torch.autograd.grad(loss, out)[0][:, -1].norm(dim=1).mean().item()
    assert probe(net, task, x, y)["grad_norm"][-1] == pytest.approx(direct, rel=1e-3)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_memory_estimate_holds_what_an_update_saves_for_backward(cell: str) -> None:
    """The estimate counted 8 numbers per hidden unit and step; oneDNN's LSTM saves about 17.6 (docs/science.md)."""
    from seq2seq.science.span_checks import update_memory
    from seq2seq.science.span_cost import measure

    saved = measure(cell, 120, 32, 0, "copy", batch=16, repeats=1)["saved_bytes"]
    estimate = update_memory(Task("copy", 100, SpanSettings(hidden=32, batch_size=16)), 32)
    assert saved <= estimate and (cell != "lstm" or saved > 0.6 * estimate), (saved, estimate)  # LSTM: the most


def test_parameter_budgets_match_within_five_percent() -> None:
    for name in ("recall", "copy", "adding"):
        task = Task(name, 10, SpanSettings(hidden=64))
        hidden = matched_hidden(["rnn", "gru", "lstm"], task)
        counts = [memory_span.count_for(c, h, task) for c, h in hidden.items()]
        assert hidden["lstm"] == 64 and max(counts) <= 1.05 * min(counts)


def test_a_sweep_retries_at_the_second_lr_and_stops_at_the_first_unsolved_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tried = []

    def fake(task: Task, cell: str, hidden: int, seed: int, threads: int = 1) -> dict:
        tried.append((task.delay, task.s.lr))
        solved = task.delay < 50 or (task.delay == 50 and task.s.lr == 1e-3)
        return {"task": task.name, "cell": cell, "delay": task.delay, "solved": solved, "score": float(solved),
                "metric": "accuracy", "steps": 1, "seconds": 0.0, "lr": task.s.lr,
                "probes": [{"keep_gate": 1.0}]}  # fmt: skip

    monkeypatch.setattr(memory_span, "train_one", fake)
    rows = sweep("recall", "lstm", [200, 10, 50, 20, 100], SpanSettings(hidden=16, lr=1e-2, retry_lrs="1e-3"), seed=0)
    assert tried == [(10, 1e-2), (20, 1e-2), (50, 1e-2), (50, 1e-3), (100, 1e-2), (100, 1e-3)]
    assert [(r["delay"], r["solved"], r["lr"]) for r in rows] == [(10, True, 1e-2), (20, True, 1e-2), (50, True, 1e-3),
                                                                   (100, False, 1e-2)]  # fmt: skip
    assert rows[2]["attempts"] == [
        {"lr": 1e-2, "score": 0.0, "seconds": 0.0},
        {"lr": 1e-3, "score": 1.0, "seconds": 0.0},
    ]
    assert memory_span._largest(rows) == 50
    tried.clear()
    sweep("recall", "lstm", [10, 50, 100], SpanSettings(hidden=16, retry_lrs=""), seed=0)
    assert tried == [(10, 1e-2), (50, 1e-2)]  # no retry: stops at 50


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs seq2seq-nmt[plot]")
def test_quick_run_writes_the_table_and_both_pictures(tmp_path) -> None:  # noqa: ANN001
    result = memory_span.run_memory_span(tmp_path, tasks=("recall", "copy", "adding"), quick=True)
    for task in ("recall", "copy", "adding"):
        rows = [r for r in result.rows if r["task"] == task]
        assert {r["cell"] for r in rows} == {"rnn", "gru", "lstm"} == set(result.largest[task])
        params = {r["cell"]: r["params"] for r in rows}
        assert max(params.values()) <= 1.1 * min(params.values())  # the same budget (hidden 12: coarse steps)
        assert all(len(r["probes"]) >= 2 and len(r["probes"][0]["grad_norm"]) == Task(task, r["delay"], S).length
                   for r in rows)  # fmt: skip
    saved = json.loads((tmp_path / "memory_span.json").read_text(encoding="utf-8"))
    assert saved["rows"] == result.rows
    for task, per_cell in saved["tasks"].items():
        for cell, entry in per_cell.items():
            assert entry["largest_delay_solved"] == result.largest[task][cell] and "Adam lr" in entry["setup"]
    assert (tmp_path / "memory_span.csv").read_text().startswith("task,cell,delay,score")
    for png in ("memory_span.png", "gradient_flow.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_retry_learning_rates_are_checked_and_tried_in_order() -> None:
    assert SpanSettings(lr=1e-2, retry_lrs="3e-3 1e-2 1e-3").lrs == [1e-2, 3e-3, 1e-3]
    assert SpanSettings(retry_lrs="").lrs == [SpanSettings().lr]
    for bad in ("fast", "1e-3 -1", "0"):
        with pytest.raises(ConfigError, match="retry-lrs"):
            SpanSettings(retry_lrs=bad)


def test_a_delay_given_twice_is_trained_once(monkeypatch: pytest.MonkeyPatch) -> None:
    trained: list[int] = []

    def fake(task: Task, cell: str, hidden: int, seed: int, threads: int = 1) -> dict:
        trained.append(task.delay)
        return {"task": task.name, "cell": cell, "delay": task.delay, "solved": True, "score": 1.0, "lr": task.s.lr,
                "seconds": 0.0, "metric": "accuracy", "steps": 1, "probes": [{"keep_gate": 1.0}]}  # fmt: skip

    monkeypatch.setattr(memory_span, "train_one", fake)
    rows = sweep("recall", "lstm", [20, 10, 10], SpanSettings(hidden=16, retry_lrs=""), seed=0)
    assert trained == [10, 20] and [r["delay"] for r in rows] == [10, 20]


def test_no_seed_trains_on_its_own_held_out_sets_and_the_documented_seeds_keep_their_streams() -> None:
    """At seed 0 the training stream (seed x 100,003 + D) of D = 2 was the test set's (seed + 2), of D = 3 the
    probe's: refused (test_science_checks). Every other seed's streams are apart, and unchanged: the figures
    of docs/science.md were measured at seeds 1234-1236 with these very streams."""
    from seq2seq.science.span_settings import stream_clash, stream_seeds

    assert stream_clash(0, 2) == "test" and stream_clash(0, 3) == "probe"
    assert all(stream_clash(seed, d) is None for seed in range(1, 200) for d in range(2, 2000))
    assert all(stream_clash(0, d) is None for d in range(4, 2000))
    assert stream_seeds(1234, 500) == {"training": 1234 * 100_003 + 500, "validation": 1235, "test": 1236,
                                       "probe": 1237}  # fmt: skip


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs seq2seq-nmt[plot]")
@pytest.mark.parametrize("val_size", [8, 128])
def test_the_gradient_flow_axis_says_over_how_many_sequences_l_is_a_mean(
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
    val_size: int,  # noqa: ANN001
) -> None:
    """L is the probe batch's mean loss, so a value carries 1/n: with --val-size 8 the curves were 8 times those
    of the default 64 sequences under the same label, "mean ||dL/dh_t||"."""
    from dataclasses import replace

    from seq2seq.science import span_plots
    from seq2seq.science.span_settings import QUICK

    labels, save = [], span_plots.save_figure
    monkeypatch.setattr(span_plots, "save_figure", lambda fig, path: labels.append(fig.axes[0].get_ylabel()) or
                        save(fig, path))  # fmt: skip
    result = memory_span.run_memory_span(
        tmp_path, ("adding",), ("rnn",), [2], settings=replace(QUICK, val_size=val_size)
    )
    assert len(result.rows[0]["probes"][0]["grad_norm"]) == 2
    assert f"over {min(64, val_size)} sequences,\nL their mean loss" in labels[-1]  # gradient_flow.png, drawn last
