"""The memory-span lab's hand-written GRU against torch's nn.GRU: the same outputs, final state and every
gradient (input, initial state, weights, biases), chunked training included; other modules run as
themselves; the spawned workers get torch's huge-page allocation."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from seq2seq.science import memory_span
from seq2seq.science.memory_span import SpanNet, backward, initialise
from seq2seq.science.span_cells import run_rnn
from seq2seq.science.span_settings import SpanSettings
from seq2seq.science.span_tasks import Task


def _gru(n_in: int = 6, hidden: int = 7) -> nn.GRU:
    torch.manual_seed(0)
    gru = nn.GRU(n_in, hidden, batch_first=True)
    with torch.no_grad():  # wider than torch's init, so that every gate matters
        for p in gru.parameters():
            p.uniform_(-0.8, 0.8)
    return gru


def _run(f, gru: nn.GRU, x: torch.Tensor, h0: torch.Tensor | None, w: torch.Tensor):  # noqa: ANN001, ANN202
    """Outputs, final state and the gradients of a loss that weighs every output and the final state."""
    x = x.clone().requires_grad_()
    h0 = None if h0 is None else h0.clone().requires_grad_()
    out, hn = f(x, h0)
    loss = (out * w).sum() + (hn**2).sum()
    inputs = [x, *gru.parameters()] + ([] if h0 is None else [h0])
    return out, hn, torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize(("batch", "steps", "with_state"), [(1, 1, False), (5, 13, True), (3, 40, False)])
def test_the_hand_written_gru_is_nn_gru_forward_and_backward(batch: int, steps: int, with_state: bool) -> None:
    gru = _gru()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, steps, 6, generator=gen)
    h0 = torch.randn(1, batch, 7, generator=gen) if with_state else None
    w = torch.randn(batch, steps, 7, generator=gen)
    want_out, want_hn, want = _run(lambda a, s: gru(a, s), gru, x, h0, w)
    out, hn, got = _run(lambda a, s: run_rnn(gru, a, s), gru, x, h0, w)
    assert type(out.grad_fn).__name__ == "_GRUBackward"  # the hand-written path ran, not nn.GRU
    assert out.shape == want_out.shape and hn.shape == want_hn.shape
    assert torch.allclose(out, want_out, atol=1e-6) and torch.allclose(hn, want_hn, atol=1e-6)
    for a, b in zip(got, want):  # x, w_ih, w_hh, b_ih, b_hh (, h0)
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_a_sequence_runs_the_same_alone_and_in_a_batch() -> None:
    gru = _gru()
    x = torch.randn(4, 9, 6, generator=torch.Generator().manual_seed(2))
    together = run_rnn(gru, x)[0]
    alone = [run_rnn(gru, x[i : i + 1])[0] for i in range(4)]
    assert all(type(o.grad_fn).__name__ == "_GRUBackward" for o in [together, *alone])
    assert torch.allclose(together, torch.cat(alone), atol=1e-6)


def test_the_gradient_coming_in_is_not_written_to() -> None:
    """Batch 1: the final state's gradient is contiguous once transposed; another use of it stays right."""
    gru = _gru(3, 4)
    x = torch.randn(1, 5, 3, generator=torch.Generator().manual_seed(4))
    grads = []
    for f in (gru, lambda a: run_rnn(gru, a)):
        p = torch.zeros(1, 1, 4, requires_grad=True)
        q = p * 2
        out, hn = f(x)
        (out.sum() + ((hn + q) * torch.ones(1, 1, 4)).sum()).backward()
        grads.append(p.grad)
    assert torch.equal(grads[0], grads[1]) and bool((grads[1] == 2).all())


def test_inputs_nn_gru_would_check_run_through_nn_gru() -> None:
    gru = _gru(3, 4)
    x = torch.randn(5, 6, 3)
    for bad in (torch.zeros(1, 1, 4), torch.zeros(2, 5, 4), torch.zeros(1, 5, 4, dtype=torch.float64)):
        with pytest.raises(RuntimeError):
            gru(x, bad)
        with pytest.raises(RuntimeError):
            run_rnn(gru, x, bad)
    assert torch.equal(run_rnn(gru, x[0])[0], gru(x[0])[0])  # unbatched (T, input): nn.GRU's own
    calls = []
    gru.register_forward_hook(lambda *a: calls.append(1))
    run_rnn(gru, x)
    assert calls == [1]  # a hooked module runs itself, hooks included


def test_other_modules_run_as_themselves() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6)
    two_layers, both_ways = nn.GRU(6, 4, 2, batch_first=True), nn.GRU(6, 4, batch_first=True, bidirectional=True)
    for rnn in (nn.LSTM(6, 4, batch_first=True), nn.RNN(6, 4, batch_first=True), two_layers, both_ways, nn.GRU(6, 4)):
        want, got = rnn(x)[0], run_rnn(rnn, x)[0]
        assert torch.equal(got, want)


@pytest.mark.parametrize("tbptt", [0, 4])
def test_the_labs_chunked_training_gives_nn_grus_gradients(tbptt: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """memory_span.backward through run_rnn (the state carried across chunks) = the same with nn.GRU itself."""
    task = Task("copy", 7, SpanSettings(hidden=8))
    torch.manual_seed(0)
    net = SpanNet("gru", 8, task)
    initialise(net, SpanSettings(hidden=8, init="chrono"), task.length, torch.Generator().manual_seed(1))
    x, y = task.batch(torch.Generator().manual_seed(2), 5)
    grads = []
    for use_torch in (False, True):
        if use_torch:
            monkeypatch.setattr(memory_span, "run_rnn", lambda rnn, x, state=None: rnn(x, state))
        net.zero_grad(set_to_none=True)
        backward(net, task, x, y, tbptt)
        grads.append([p.grad.clone() for p in net.parameters()])
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(*grads))


def test_spawned_workers_get_huge_pages_and_a_users_choice_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    with memory_span._huge_pages():
        assert os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
    assert "THP_MEM_ALLOC_ENABLE" not in os.environ
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    with memory_span._huge_pages():
        assert os.environ["THP_MEM_ALLOC_ENABLE"] == "0"
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "0"


@pytest.mark.parametrize("name", ["recall", "copy", "adding"])
def test_scoring_in_chunks_is_scoring_at_once(name: str) -> None:
    task = Task(name, 6, SpanSettings(hidden=8))
    torch.manual_seed(0)
    net = SpanNet("gru", 8, task)
    x, y = task.batch(torch.Generator().manual_seed(3), 300)
    whole = memory_span._score(net, task, x, y, chunk=300)
    assert memory_span._score(net, task, x, y, chunk=128) == pytest.approx(whole, rel=1e-6)
    assert memory_span._score(net, task, x, y, chunk=7) == pytest.approx(whole, rel=1e-6)
