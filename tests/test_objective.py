"""The fused label-smoothed cross-entropy against torch's reference."""

import pytest
import torch
import torch.nn.functional as F

from seq2seq.objective import SmoothedCrossEntropy


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_matches_torch_cross_entropy(eps: float, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    logits = (3 * torch.randn(37, 53, dtype=torch.float64)).to(dtype).requires_grad_()
    target = torch.randint(0, 53, (37,))
    ours = SmoothedCrossEntropy.apply(logits, target, eps)
    (g_ours,) = torch.autograd.grad(2.5 * ours, logits)
    ref = F.cross_entropy(logits.float(), target, reduction="sum", label_smoothing=eps)
    (g_ref,) = torch.autograd.grad(2.5 * ref, logits)
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-5
    torch.testing.assert_close(ours.double(), ref.double(), rtol=1e-5, atol=1e-4)
    assert g_ours.dtype == dtype
    torch.testing.assert_close(g_ours.double(), g_ref.double(), rtol=tol, atol=tol)


def test_gradcheck() -> None:
    logits = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 6, 3, 3, 1])
    assert torch.autograd.gradcheck(lambda z: SmoothedCrossEntropy.apply(z, target, 0.2), (logits,))
