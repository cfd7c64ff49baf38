"""The chunked label-smoothed cross-entropy is pinned to torch's `F.cross_entropy`."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import seq2seq.objective as objective
from seq2seq.objective import SmoothedCrossEntropy


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", [1, 7, 64, 150])  # fewer than, exactly, and more than one chunk
def test_chunked_cross_entropy_matches_torch(eps: float, dtype: torch.dtype, rows: int, monkeypatch) -> None:
    monkeypatch.setattr(objective, "CE_ROWS", 64)  # rows 150: two whole chunks and a part
    g = torch.Generator().manual_seed(rows)
    logits = (3 * torch.randn(rows, 37, generator=g)).to(dtype).requires_grad_()
    target = torch.randint(0, 37, (rows,), generator=g)
    upstream = torch.tensor(0.37)  # d(final)/d(loss): the gradient must be scaled by it

    ours = SmoothedCrossEntropy.apply(logits, target, eps)
    (grad_ours,) = torch.autograd.grad(ours * upstream, logits)
    ref = F.cross_entropy(logits.float(), target, reduction="sum", label_smoothing=eps)
    (grad_ref,) = torch.autograd.grad(ref * upstream, logits)

    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-4)
    assert grad_ours.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 4e-3  # bf16: the reference rounds once, ours twice (saved, scaled)
    torch.testing.assert_close(grad_ours.float(), grad_ref.float(), rtol=0, atol=tol)


def test_hand_computed_value_and_gradient() -> None:
    # two classes with equal scores: p = (1/2, 1/2), lse = log 2; eps = 0.2 puts 0.1 on each class
    logits = torch.zeros(1, 2, requires_grad=True)
    loss = SmoothedCrossEntropy.apply(logits, torch.tensor([0]), 0.2)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    loss.backward()
    # dloss/dz = p - (1 - eps) [v = t] - eps / V = (0.5 - 0.8 - 0.1, 0.5 - 0.1)
    torch.testing.assert_close(logits.grad, torch.tensor([[-0.4, 0.4]]))


def test_without_a_gradient_the_loss_is_the_same_and_a_second_backward_is_refused() -> None:
    g = torch.Generator().manual_seed(3)
    logits = (3 * torch.randn(20, 11, generator=g)).requires_grad_()
    target = torch.randint(0, 11, (20,), generator=g)
    with torch.inference_mode():  # validation's path: no gradient computed
        plain = SmoothedCrossEntropy.apply(logits.detach(), target, 0.1)
    loss = SmoothedCrossEntropy.apply(logits, target, 0.1)
    assert plain.item() == loss.item()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward only"):
        loss.backward()  # the saved gradient was scaled in place: a second pass would scale it twice


def test_the_upstream_gradient_scales_a_bf16_gradient_in_float32() -> None:
    # the saved bf16 gradient times a float32 scale (1 / tokens) is rounded once, not after rounding the scale
    g = torch.Generator().manual_seed(5)
    logits = (3 * torch.randn(300, 50, generator=g)).bfloat16().requires_grad_()
    target = torch.randint(0, 50, (300,), generator=g)
    scale = torch.tensor(1 / 2345)
    (unscaled,) = torch.autograd.grad(SmoothedCrossEntropy.apply(logits, target, 0.1), logits)
    (scaled,) = torch.autograd.grad(SmoothedCrossEntropy.apply(logits, target, 0.1) * scale, logits)
    assert torch.equal(scaled, (unscaled.float() * scale).bfloat16())


def test_a_grad_scale_given_to_the_forward_rounds_a_bf16_gradient_once() -> None:
    # training passes 1 / tokens as grad_scale and multiplies the loss by it: the bf16 gradient is then the
    # float32 one (of the same logits) times the scale, rounded once, and the backward leaves it as it is
    g = torch.Generator().manual_seed(11)
    logits = (3 * torch.randn(300, 50, generator=g)).bfloat16()
    target = torch.randint(0, 50, (300,), generator=g)
    scale = 1 / 2345
    low, full = logits.clone().requires_grad_(), logits.float().requires_grad_()
    (ours,) = torch.autograd.grad(SmoothedCrossEntropy.apply(low, target, 0.1, scale) * scale, low)
    (f32,) = torch.autograd.grad(SmoothedCrossEntropy.apply(full, target, 0.1, scale) * scale, full)
    assert torch.equal(ours, f32.bfloat16())
    plain = logits.float().requires_grad_()
    (expected,) = torch.autograd.grad(F.cross_entropy(plain, target, reduction="sum", label_smoothing=0.1) * scale, plain)
    torch.testing.assert_close(f32, expected, rtol=0, atol=1e-9)  # and it is the gradient of torch's loss
    # an upstream other than the grad_scale is still applied (here the scale twice)
    (twice,) = torch.autograd.grad(SmoothedCrossEntropy.apply(full, target, 0.1, scale) * scale * scale, full)
    torch.testing.assert_close(twice, expected * scale, rtol=1e-5, atol=1e-13)


def test_fp16_logits_get_the_gradient_of_float32_scaled_before_rounding() -> None:
    # fp16 flushes values under 6e-8: the gradient is kept in float32 until the loss scale (here 1024) is applied
    g = torch.Generator().manual_seed(7)
    logits = (4 * torch.randn(64, 4000, generator=g)).half().requires_grad_()
    target = torch.randint(0, 4000, (64,), generator=g)
    (ours,) = torch.autograd.grad(SmoothedCrossEntropy.apply(logits, target, 0.1) * 1024.0, logits)
    ref = F.cross_entropy(logits.float(), target, reduction="sum", label_smoothing=0.1)
    (expected,) = torch.autograd.grad(ref * 1024.0, logits)
    assert ours.dtype == torch.float16
    torch.testing.assert_close(ours.float(), expected.float(), rtol=2e-3, atol=2e-7)  # subnormal steps: 6e-8
