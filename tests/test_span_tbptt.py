"""Truncated BPTT in the memory-span lab: training's chunking rule, the state carried and the gradient cut,
full-BPTT gradients exactly when K >= T, and none from beyond the chunk when K < T; seeds and their median."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from seq2seq.cli import main
from seq2seq.objective import chunks
from seq2seq.science import memory_span
from seq2seq.science.memory_span import SpanNet, backward, initialise
from seq2seq.science.span_settings import SpanSettings, median_span
from seq2seq.science.span_tasks import Task

S = SpanSettings(hidden=8)


def test_chunks_start_at_the_first_step_and_the_last_is_the_remainder() -> None:
    assert chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunks(8, 4) == [(0, 4), (4, 8)]
    assert chunks(10, 0) == chunks(10, 10) == chunks(10, 25) == [(0, 10)]


def _net(cell: str, task: Task) -> SpanNet:
    torch.manual_seed(0)
    net = SpanNet(cell, 8, task)
    initialise(net, SpanSettings(hidden=8, init="chrono"), task.length, torch.Generator().manual_seed(1))
    return net


def _grads(net: SpanNet, task: Task, x: torch.Tensor, y: torch.Tensor, tbptt: int | None) -> list[torch.Tensor]:
    """Parameter gradients and dL/dx: by `backward` (tbptt K), or by the plain full-BPTT loss (None)."""
    net.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    if tbptt is None:
        task.loss(task.outputs(net(x)), y).backward()
    else:
        backward(net, task, x, y, tbptt)
    return [p.grad.clone() for p in net.parameters()] + [x.grad]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("name", ["recall", "adding", "copy"])
def test_a_truncation_at_least_the_sequence_length_is_full_bptt(cell: str, name: str) -> None:
    task = Task(name, 6, S)
    net = _net(cell, task)
    x, y = task.batch(torch.Generator().manual_seed(2), 5)
    full = _grads(net, task, x, y, None)
    for k in (0, task.length, task.length + 7):  # one chunk: the same ops as the plain loss
        got = _grads(net, task, x, y, k)
        if name == "copy":  # its chunk loss is summed / steps, the plain one torch's mean: equal up to rounding
            assert all(torch.allclose(a, b, rtol=1e-6, atol=1e-9) for a, b in zip(got, full))
        else:
            assert all(torch.equal(a, b) for a, b in zip(got, full))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_truncated_gradient_never_reaches_an_input_before_the_losss_chunk(cell: str) -> None:
    task = Task("adding", 10, S)  # T = 10, the loss at step 9; K = 4: chunks [0, 4) [4, 8) [8, 10)
    net = _net(cell, task)
    x, y = task.batch(torch.Generator().manual_seed(2), 5)
    full, cut = _grads(net, task, x, y, None), _grads(net, task, x, y, 4)
    reach = lambda g: [bool(g[:, t].abs().sum() > 0) for t in range(10)]  # noqa: E731
    assert reach(full[-1]) == [True] * 10
    assert reach(cut[-1]) == [False] * 8 + [True] * 2  # only the last chunk's two steps
    # the state is carried: the read-out sees the same last state, so its gradient is full BPTT's ...
    head_w, head_b = (len(list(net.rnn.parameters())) + i for i in (0, 1))
    assert torch.allclose(cut[head_w], full[head_w], atol=1e-6) and torch.allclose(cut[head_b], full[head_b])
    # ... and the recurrent weights' is not: it lacks every path through the first 8 steps
    assert not torch.allclose(cut[0], full[0], atol=1e-6)


def test_copy_back_propagates_every_chunk_through_itself_alone() -> None:
    task = Task("copy", 4, S)  # T = 24: 10 symbols, 3 blanks, delimiter, 10 blanks; K = 12: two chunks
    net = _net("lstm", task)
    x, y = task.batch(torch.Generator().manual_seed(2), 5)
    cut = _grads(net, task, x, y, 12)[-1]
    assert all(bool(cut[:, t].abs().sum() > 0) for t in range(24))  # every chunk holds loss terms
    # the first chunk's inputs get the gradient of the first chunk's loss terms only
    net.zero_grad(set_to_none=True)
    first = x[:, :12].clone().requires_grad_()
    task.chunk_loss(net.head(net.rnn(first)[0]), y, 0, 12, 24).backward()
    assert torch.allclose(cut[:, :12], first.grad, rtol=1e-6, atol=1e-9)


def test_the_median_span_counts_none_as_below_every_delay() -> None:
    assert median_span([None, 10, 500]) == 10
    assert median_span([500, 200, 500]) == 500
    assert median_span([None, None, 10]) is None
    assert median_span([20, 10]) == 10  # even count: the lower one, a span some seed reached
    assert median_span([]) is None


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs seq2seq-nmt[plot]")
def test_the_command_runs_every_seed_and_truncates(tmp_path, capsys) -> None:  # noqa: ANN001
    main(["memory-span", "--quick", "--task", "adding", "--cells", "gru", "lstm", "--seeds", "2", "--tbptt", "3",
          "--seed", "7", "--out", str(tmp_path)])  # fmt: skip
    saved = json.loads((tmp_path / "memory_span.json").read_text(encoding="utf-8"))
    assert saved["seeds"] == [7, 8] and saved["settings"]["tbptt"] == 3
    assert {(r["cell"], r["seed"]) for r in saved["rows"]} == {(c, s) for c in ("gru", "lstm") for s in (7, 8)}
    assert all(r["tbptt"] == 3 for r in saved["rows"])
    for cell in ("gru", "lstm"):
        entry = saved["tasks"]["adding"][cell]
        assert len(entry["per_seed"]) == 2 and entry["largest_delay_solved"] == median_span(entry["per_seed"])
        assert "truncated BPTT 3" in entry["setup"]
    assert "median of 2 seeds" in capsys.readouterr().out


def test_a_negative_truncation_is_refused() -> None:
    from seq2seq.config import ConfigError

    with pytest.raises(ConfigError, match="tbptt"):
        SpanSettings(tbptt=-1)
    with pytest.raises(ConfigError, match="seeds"):
        SpanSettings(seeds=0)
    assert memory_span.SpanSettings is SpanSettings


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recall_beyond_the_chunk_never_trains_the_symbols_input_weights(cell: str) -> None:
    task = Task("recall", 6, S)  # T = 10: symbols at steps 0-2, blanks, GO at 9; K = 4: the loss's chunk is [8, 10)
    net = _net(cell, task)
    x, y = task.batch(torch.Generator().manual_seed(2), 16)
    grad = _grads(net, task, x, y, 4)[0]  # weight_ih: one column per input token (0-7 symbols, 8 blank, 9 GO)
    assert bool((grad[:, :8] == 0).all()) and bool((grad[:, 8:] != 0).any(dim=0).all())
    full = _grads(net, task, x, y, None)[0]
    assert bool((full[:, :8] != 0).any(dim=0).all())  # full BPTT trains every symbol's column
