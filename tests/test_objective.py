"""The output layer with its chunked label-smoothed cross-entropy, pinned to `F.linear` + `F.cross_entropy`; the
validation loss against the same computed pair by pair, and the training loss an update reports and the log averages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import seq2seq.objective as objective
from seq2seq.batches import collate
from seq2seq.config import ModelConfig, TrainConfig
from seq2seq.ids import BOS_ID, EOS_ID, PAD_ID
from seq2seq.model import Seq2Seq
from seq2seq.objective import OutputLoss, forward_backward, validation_loss
from seq2seq.prepared import EncodedSplit


def layer(rows: int, vocab: int, seed: int, dtype: torch.dtype = torch.float32, width: int = 8):
    """Rows h (rows, width) in `dtype`, a float32 weight (vocab, width) and bias, and targets, all leaves."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(rows, width, generator=g).to(dtype).requires_grad_()
    w = (torch.randn(vocab, width, generator=g) / 2).requires_grad_()
    b = torch.randn(vocab, generator=g).requires_grad_()
    return h, w, b, torch.randint(0, vocab, (rows,), generator=g)


def reference(h, w, b, target, eps: float) -> torch.Tensor:
    """torch's loss of the same scores: F.linear in h's dtype (as autocast runs it), cross-entropy in float32."""
    return F.cross_entropy(
        F.linear(h, w.to(h.dtype), b.to(h.dtype)).float(), target, reduction="sum", label_smoothing=eps
    )


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("rows", [1, 7, 64, 150])  # fewer than, exactly, and more than one chunk
def test_float32_loss_and_gradients_match_torch(eps: float, rows: int, monkeypatch) -> None:
    monkeypatch.setattr(objective, "CE_ROWS", 64)  # rows 150: two whole chunks and a part
    h, w, b, target = layer(rows, 37, rows)
    upstream = 0.37  # d(final)/d(loss), not the grad_scale: the backward must still apply it
    ours = OutputLoss.apply(h, w, b, target, eps)
    grads = torch.autograd.grad(ours * upstream, (h, w, b))
    ref = reference(h, w, b, target, eps)
    expected = torch.autograd.grad(ref * upstream, (h, w, b))
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-4)
    for got, want in zip(grads, expected):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_bf16_under_autocast_matches_torch_within_bf16_rounding(eps: float) -> None:
    # the matmuls in bf16 as autocast's F.linear runs them; the bias, softmax and loss in float32
    h, w, b, target = layer(150, 37, 3, torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = OutputLoss.apply(h, w, b, target, eps, 1 / 150)
    grads = torch.autograd.grad(ours / 150, (h, w, b))
    ref = reference(h, w, b, target, eps)
    expected = torch.autograd.grad(ref / 150, (h, w, b))
    torch.testing.assert_close(ours, ref, rtol=2e-3, atol=0)
    assert [g.dtype for g in grads] == [torch.bfloat16, torch.float32, torch.float32]  # as the leaves'
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got.float(), want.float(), rtol=2e-2, atol=2e-4)


def test_rows_past_the_targets_get_no_loss_and_no_gradient() -> None:
    # training pads the rows to a multiple of OUTPUT_ROWS with zeros; here the padding rows are not zero,
    # so a loss or gradient that reached them would show
    h, w, b, target = layer(20, 11, 4)
    ours = OutputLoss.apply(h, w, b, target[:13], 0.1)
    grads = torch.autograd.grad(ours, (h, w, b))
    ref = reference(h[:13], w, b, target[:13], 0.1)
    expected = torch.autograd.grad(ref, (h, w, b), allow_unused=True)
    torch.testing.assert_close(ours, ref)
    assert torch.equal(grads[0][13:], torch.zeros(7, 8))
    torch.testing.assert_close(grads[0][:13], expected[0][:13])
    torch.testing.assert_close(grads[1], expected[1])
    torch.testing.assert_close(grads[2], expected[2])


def test_float32_rows_under_autocast_get_the_matmuls_in_bf16_and_a_float32_gradient() -> None:
    # what F.linear does under autocast: the loss is the one of bf16 scores, not of float32 ones
    h, w, _, target = layer(150, 37, 5)
    b = torch.zeros(37, requires_grad=True)  # zero: the bias is added in float32 here, in bf16 by F.linear
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = OutputLoss.apply(h, w, b, target, 0.1)
        low = F.cross_entropy(F.linear(h, w, b).float(), target, reduction="sum", label_smoothing=0.1)
    torch.testing.assert_close(ours, low, rtol=1e-5, atol=0)
    assert not torch.allclose(ours, reference(h, w, b, target, 0.1), rtol=1e-5, atol=0)  # float32 matmuls
    (dh,) = torch.autograd.grad(ours, h)
    assert dh.dtype == torch.float32


def tiny() -> tuple[Seq2Seq, EncodedSplit]:
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(emb_size=10, enc_hidden=6, dec_hidden=12, dropout=0.0), 20, 20)
    src, tgt = [[4, 5, 6, 7], [8, 9], [10, 11, 12, 13, 14]], [[4, 5, 6, 7, 8, 9], [10, 11], [5, 7, 9, 11]]
    return model, EncodedSplit.from_lists(src, tgt)


def spy_on_output_loss(monkeypatch) -> list[tuple]:
    """The arguments of every OutputLoss.apply call from now on."""
    calls: list[tuple] = []
    real = OutputLoss.apply

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(OutputLoss, "apply", spy)
    return calls


@pytest.mark.parametrize("tbptt", [0, 3])
def test_training_gives_the_loss_the_scale_its_backward_will_bring(tbptt: int, monkeypatch) -> None:
    model, split = tiny()
    batch = collate(split, np.arange(3))
    calls = spy_on_output_loss(monkeypatch)
    forward_backward(model.train(), batch, TrainConfig(tbptt=tbptt, label_smoothing=0.1))
    assert len(calls) == (1 if tbptt == 0 else 3)  # 7 target steps in chunks of 3
    assert all(call[-1] == 1 / batch.n_tokens for call in calls)


def test_validation_asks_for_no_gradient(monkeypatch) -> None:
    # under inference mode the parameters still require a gradient, and a custom function sees only that
    model, split = tiny()
    calls = spy_on_output_loss(monkeypatch)
    validation_loss(model, split, 100, torch.device("cpu"))
    assert calls and not any(a.requires_grad for call in calls for a in call if isinstance(a, torch.Tensor))


def test_hand_computed_value_and_gradient() -> None:
    # two classes with equal scores: p = (1/2, 1/2), lse = log 2; eps = 0.2 puts 0.1 on each class
    h = torch.ones(1, 1, requires_grad=True)
    w = torch.tensor([[1.0], [1.0]], requires_grad=True)
    b = torch.zeros(2, requires_grad=True)
    loss = OutputLoss.apply(h, w, b, torch.tensor([0]), 0.2)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    loss.backward()
    # dloss/dz = p - (1 - eps) [v = t] - eps / V = (0.5 - 0.8 - 0.1, 0.5 - 0.1) = (-0.4, 0.4): the bias's gradient;
    # the weight's is dz times h = 1, and h's is dz . w = -0.4 + 0.4
    torch.testing.assert_close(b.grad, torch.tensor([-0.4, 0.4]))
    torch.testing.assert_close(w.grad, torch.tensor([[-0.4], [0.4]]))
    torch.testing.assert_close(h.grad, torch.tensor([[0.0]]))


def test_without_a_gradient_the_loss_is_the_same_and_a_second_backward_is_refused() -> None:
    h, w, b, target = layer(20, 11, 3)
    with torch.inference_mode():  # validation's path: no gradient computed
        plain = OutputLoss.apply(h.detach(), w.detach(), b.detach(), target, 0.1)
    loss = OutputLoss.apply(h, w, b, target, 0.1)
    assert plain.item() == loss.item()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward only"):
        loss.backward()  # the saved gradient was scaled in place: a second pass would scale it twice


def test_a_grad_scale_given_to_the_forward_rounds_a_bf16_gradient_once() -> None:
    # training passes 1 / tokens as grad_scale and multiplies the loss by it: the bf16 gradient of the scores is
    # then the float32 one times the scale, rounded once, and the backward applies no factor of its own. Seen
    # through h's gradient G W with W = I: h's gradient is G itself.
    g = torch.Generator().manual_seed(11)
    h = (3 * torch.randn(300, 50, generator=g)).bfloat16()
    w, b = torch.eye(50), torch.zeros(50)
    target = torch.randint(0, 50, (300,), generator=g)
    scale = 1 / 2345
    low, full = h.clone().requires_grad_(), h.float().requires_grad_()
    (ours,) = torch.autograd.grad(OutputLoss.apply(low, w.bfloat16(), b, target, 0.1, scale) * scale, low)
    (f32,) = torch.autograd.grad(OutputLoss.apply(full, w, b, target, 0.1, scale) * scale, full)
    assert torch.equal(ours, f32.bfloat16())
    plain = h.float().requires_grad_()
    (expected,) = torch.autograd.grad(
        F.cross_entropy(plain, target, reduction="sum", label_smoothing=0.1) * scale, plain
    )
    torch.testing.assert_close(f32, expected, rtol=0, atol=1e-9)  # and it is the gradient of torch's loss
    # an upstream other than the grad_scale is still applied (here the scale twice)
    (twice,) = torch.autograd.grad(OutputLoss.apply(full, w, b, target, 0.1, scale) * scale * scale, full)
    torch.testing.assert_close(twice, expected * scale, rtol=1e-5, atol=1e-13)


def test_fp16_scores_get_the_gradient_of_float32_scaled_before_rounding() -> None:
    # fp16 flushes values under 6e-8: the gradient is kept in float32 until the loss scale (here 1024) is applied.
    # Seen through h's gradient G W with W = I (fp16 matmuls run on the CPU too)
    g = torch.Generator().manual_seed(7)
    h = (4 * torch.randn(64, 4000, generator=g)).half().requires_grad_()
    w, b = torch.eye(4000).half(), torch.zeros(4000)
    target = torch.randint(0, 4000, (64,), generator=g)
    (ours,) = torch.autograd.grad(OutputLoss.apply(h, w, b, target, 0.1) * 1024.0, h)
    plain = h.detach().float().requires_grad_()
    (expected,) = torch.autograd.grad(
        F.cross_entropy(plain, target, reduction="sum", label_smoothing=0.1) * 1024.0, plain
    )
    assert ours.dtype == torch.float16
    torch.testing.assert_close(ours.float(), expected.float(), rtol=2e-3, atol=2e-7)  # subnormal steps: 6e-8


VAL_SRC = [[4, 5, 6, 7], [8, 9], [10, 11, 12, 13, 14], [6], [15, 4, 9]]
VAL_TGT = [[4, 5, 6, 7, 8, 9], [10, 11], [5, 7, 9, 11], [12, 13, 14, 15, 16, 17, 18], [19]]


def sentence_loss(model: Seq2Seq, src: list[int], tgt: list[int]) -> torch.Tensor:
    """Summed cross-entropy of one pair fed alone (no padding anywhere), by torch's own function."""
    src_ids = torch.tensor([[*src, EOS_ID]])
    memory, state = model.encode(src_ids, torch.tensor([src_ids.size(1)]))
    att, _, _ = model.decoder(torch.tensor([[BOS_ID, *tgt]]), state, memory)
    return F.cross_entropy(model.logits(att[0]), torch.tensor([*tgt, EOS_ID]), reduction="sum")


@pytest.mark.parametrize("bucketed", [False, True])
def test_validation_loss_is_the_per_token_cross_entropy_without_dropout_smoothing_or_padding(bucketed: bool) -> None:
    """validation_loss of a dropout-0.5 model left in train mode == each pair alone through the eval model and
    F.cross_entropy (no label smoothing), summed and divided by the real target tokens (EOS included); batches
    of a few pairs (max_tokens 16), so padding and the mean over batches of different sizes count."""
    torch.manual_seed(0)
    cfg = ModelConfig(emb_size=10, enc_hidden=6, dec_hidden=12, dropout=0.5, emb_init_std=1.0)
    model = Seq2Seq(cfg, 20, 20).train()
    split = EncodedSplit.from_lists(VAL_SRC, VAL_TGT)
    got = validation_loss(model, split, 16, torch.device("cpu"), bucketed=bucketed)
    with torch.no_grad():
        model.eval()
        expected = sum(sentence_loss(model, s, t).item() for s, t in zip(VAL_SRC, VAL_TGT))
    tokens = sum(len(t) + 1 for t in VAL_TGT)
    assert got == pytest.approx(expected / tokens, rel=1e-5)


@pytest.mark.parametrize("tbptt", [0, 3])
def test_the_update_reports_the_label_smoothed_cross_entropy_per_real_target_token(tbptt: int) -> None:
    """Updater.step's loss (what metrics.jsonl's "train" records average) == F.cross_entropy with the run's label
    smoothing over the real target positions of the batch, mean per token, from the weights before the update."""
    from seq2seq.updater import Updater

    cfg = TrainConfig(label_smoothing=0.1, tbptt=tbptt, precision="fp32")
    up = Updater.build(
        ModelConfig(emb_size=10, enc_hidden=6, dec_hidden=12, dropout=0.0, emb_init_std=1.0), (20, 20), cfg
    )
    batch = collate(EncodedSplit.from_lists(VAL_SRC, VAL_TGT), np.arange(5))
    with torch.no_grad():
        memory, state = up.model.encode(batch.src_ids, batch.src_lens)
        att, _, _ = up.model.decoder(batch.tgt_in, state, memory)
        mask = batch.tgt_out != PAD_ID
        logits, target = up.model.logits(att)[mask], batch.tgt_out[mask]
        smoothed = F.cross_entropy(logits, target, label_smoothing=0.1).item()
        plain = F.cross_entropy(logits, target).item()
    result = up.step(batch, batch.n_tokens, 1e-3)
    assert result.applied and mask.sum().item() == batch.n_tokens == 25
    assert result.loss == pytest.approx(smoothed, rel=1e-5)
    assert smoothed != pytest.approx(plain, rel=1e-3)  # the two definitions are 100x the tolerance apart


def test_the_logged_training_loss_is_weighted_by_target_tokens() -> None:
    """The trainer's meter averages updates' per-token losses per token: (10 x 2.0 + 30 x 1.0) / 40, not the mean
    of the updates' losses (1.5)."""
    from seq2seq.trainer import _Meter

    meter = _Meter()
    meter.add(10, 2.0)
    meter.add(30, 1.0)
    assert meter.read()[0] == pytest.approx(1.25)
    meter.add(4, 3.0)  # a reading starts a new window
    assert meter.read()[0] == pytest.approx(3.0)
