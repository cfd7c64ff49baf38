"""Adam for training, without `torch.optim`.

Every `torch.optim.Optimizer` imports `torch._dynamo` (and sympy with it) the first time a parameter
group is added or a step runs: about 70 MB of resident memory a training process never uses
(torch 2.13, fused or not). This class does the same arithmetic with the same kernels (`torch._fused_adam_`
where this torch has it for the parameters' device and dtype, torch's foreach ops elsewhere) and reads and
writes `torch.optim.Adam`'s `state_dict` format, so checkpoints written by either resume with the other.
`tests/test_adam.py` checks it update for update against `torch.optim.Adam(fused=True)`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from collections.abc import Iterable

# what torch.optim.Adam(params, lr, fused=True) puts in its one parameter group, besides lr and params
GROUP_DEFAULTS: dict[str, Any] = {
    "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False, "maximize": False,
    "foreach": None, "capturable": False, "differentiable": False, "fused": True,
    "decoupled_weight_decay": False,
}  # fmt: skip


_NO_KERNEL: set[tuple[str, torch.dtype]] = set()  # (device type, dtype) where this torch's kernel refused to run


def _fused_kernel(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether to try the one-kernel Adam for parameters of `device` and `dtype` (CPU needs torch >= 2.4:
    an older torch has the op without a CPU kernel, found out at the first step)."""
    return hasattr(torch, "_fused_adam_") and dtype.is_floating_point and (device.type, dtype) not in _NO_KERNEL


def _no_kernel(e: Exception) -> bool:
    """Whether an error of `torch._fused_adam_` says this torch has no kernel for the device or dtype
    (NotImplementedError, or a RuntimeError "... not implemented for ...")."""
    return isinstance(e, NotImplementedError) or "not implemented" in str(e).lower()


def _foreach_step(
    ps: list[torch.Tensor], grads: list[torch.Tensor], m: list[torch.Tensor], v: list[torch.Tensor],
    steps: list[torch.Tensor], lr: float, beta1: float, beta2: float, eps: float,
) -> None:  # fmt: skip
    """The same update in foreach ops, as torch.optim.Adam's foreach path does it (a device without the kernel)."""
    torch._foreach_lerp_(m, grads, 1 - beta1)
    torch._foreach_mul_(v, beta2)
    torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
    bias1 = [1 - beta1 ** step.item() for step in steps]
    bias2_sqrt = [(1 - beta2 ** step.item()) ** 0.5 for step in steps]
    denom = torch._foreach_sqrt(v)
    torch._foreach_div_(denom, bias2_sqrt)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(ps, m, denom, [(lr / b) * -1 for b in bias1])


class Adam:
    """Adam over one group of parameters (lr settable per step through `param_groups[0]["lr"]`).

    What `Updater` and `torch.amp.GradScaler` use of an optimiser: `param_groups`, `state`, `step()`,
    `zero_grad()`, `state_dict()`, `load_state_dict()`."""

    def __init__(
        self, params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float] = GROUP_DEFAULTS["betas"]
    ) -> None:
        params = list(params)
        if not params:
            raise ValueError("Adam got an empty parameter list")
        self.param_groups: list[dict[str, Any]] = [{"params": params, "lr": lr, **GROUP_DEFAULTS, "betas": betas}]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return self.param_groups[0]["params"]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def _state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.state.get(p)
        if state is None:  # as torch.optim.Adam(fused=True): a float32 step counter on the parameter's device
            state = self.state[p] = {
                "step": torch.zeros((), dtype=torch.float32, device=p.device),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
        return state

    @torch.no_grad()
    def step(self, grad_scale: float = 1.0) -> None:
        """One Adam update of every parameter that has a gradient, divided by `grad_scale` first (gradient
        clipping's 1 / factor: the fused kernel divides as it reads each gradient, where a separate clip
        would read and write every gradient once more; the gradients are left divided, as clipping leaves them)."""
        group = self.param_groups[0]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        buckets: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        for p in self.params:
            if p.grad is not None:
                if p.grad.is_sparse:
                    raise RuntimeError("Adam does not take sparse gradients")
                buckets.setdefault((p.device, p.dtype), []).append(p)
        for (device, dtype), ps in buckets.items():
            states = [self._state(p) for p in ps]
            grads = [p.grad for p in ps]
            m, v, steps = ([s[k] for s in states] for k in ("exp_avg", "exp_avg_sq", "step"))
            torch._foreach_add_(steps, 1)
            if _fused_kernel(device, dtype):
                scale = None if grad_scale == 1 else torch.tensor(grad_scale, dtype=torch.float32, device=device)
                try:
                    torch._fused_adam_(ps, grads, m, v, [], steps, amsgrad=False, lr=lr, beta1=beta1, beta2=beta2,
                                       weight_decay=0.0, eps=eps, maximize=False, grad_scale=scale)  # fmt: skip
                    continue
                except (NotImplementedError, RuntimeError) as e:
                    if not _no_kernel(e):
                        raise  # out of memory, or anything else: not a reason to switch paths for good
                    _NO_KERNEL.add((device.type, dtype))
            if grad_scale != 1:
                torch._foreach_div_(grads, grad_scale)
            _foreach_step(ps, grads, m, v, steps, lr, beta1, beta2, eps)

    def state_dict(self) -> dict[str, Any]:
        """`torch.optim.Adam`'s format: parameters by index, state tensors referenced, not copied."""
        group = self.param_groups[0]
        index = {id(p): i for i, p in enumerate(self.params)}
        state = {index[id(p)]: dict(s) for p, s in self.state.items()}
        return {"state": dict(sorted(state.items())),
                "param_groups": [{**{k: v for k, v in group.items() if k != "params"},
                                  "params": list(range(len(self.params)))}]}  # fmt: skip

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """State from `state_dict()` or from `torch.optim.Adam(...).state_dict()` for the same parameters
        (its lr, betas and eps are taken, as torch.optim does); a different parameter list, shape or Adam
        variant, or a malformed state, is a ValueError naming what differs."""
        groups = saved.get("param_groups") if isinstance(saved, dict) else None
        if not isinstance(groups, list) or len(groups) != 1 or not isinstance(groups[0], dict):
            raise ValueError("optimizer state has no single parameter group (this Adam has one)")
        group, n = groups[0], len(self.params)
        ids = group.get("params")
        if not isinstance(ids, list) or len(ids) != n:
            raise ValueError(f"optimizer state is for {len(ids) if isinstance(ids, list) else 'no'} parameters, "
                             f"this model has {n}")  # fmt: skip
        for key in ("amsgrad", "maximize", "weight_decay", "decoupled_weight_decay"):
            if group.get(key, GROUP_DEFAULTS[key]) != GROUP_DEFAULTS[key]:
                raise ValueError(f"optimizer state has {key}={group[key]!r}; this Adam runs {GROUP_DEFAULTS[key]!r}")
        position = {pid: i for i, pid in enumerate(ids)}
        entries = saved.get("state", {})
        if not isinstance(entries, dict) or not set(entries) <= set(position):
            raise ValueError("optimizer state names parameters its parameter group does not list")
        state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        for pid, s in entries.items():
            p = self.params[position[pid]]
            state[p] = _loaded_entry(pid, s, p)
        self.state = state
        mine = self.param_groups[0]
        mine.update(_loaded_hyper(group, mine))


def _loaded_hyper(group: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
    """lr, betas and eps of a saved parameter group (this Adam's own where the group has none), each
    checked: a finite lr >= 0, two betas in [0, 1), a finite eps > 0 (any other value makes the first
    update NaN or divides by zero)."""
    lr, betas, eps = (_number(group.get(k, mine[k])) for k in ("lr", "betas", "eps"))
    if not _real(lr) or not 0 <= lr < math.inf:
        raise ValueError(f"optimizer state has lr={lr!r}; it must be a finite number >= 0")
    if not isinstance(betas, (list, tuple)) or len(betas) != 2 or not all(_real(b) and 0 <= b < 1 for b in betas):
        raise ValueError(f"optimizer state has betas={betas!r}; they must be two numbers in [0, 1)")
    if not _real(eps) or not 0 < eps < math.inf:
        raise ValueError(f"optimizer state has eps={eps!r}; it must be a finite number > 0")
    return {"lr": lr, "betas": tuple(betas), "eps": eps}


def _number(x: Any) -> Any:
    """A one-element tensor as its float (torch.optim.Adam takes a tensor lr); tuples and lists element-wise."""
    if isinstance(x, (list, tuple)):
        return type(x)(_number(v) for v in x)
    return float(x) if isinstance(x, torch.Tensor) and x.numel() == 1 and x.dtype.is_floating_point else x


def _real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _loaded_entry(pid: int, s: Any, p: torch.Tensor) -> dict[str, torch.Tensor]:
    """One parameter's saved Adam state, checked against the parameter and cast to its device and dtype
    (as torch.optim.Adam(fused=True) loads it: a float32 step, moments in the parameter's dtype)."""
    if not isinstance(s, dict) or set(s) != {"step", "exp_avg", "exp_avg_sq"}:
        raise ValueError(f"optimizer state of parameter {pid} is not Adam's step/exp_avg/exp_avg_sq")
    if not all(isinstance(s[k], torch.Tensor) for k in s) or s["step"].numel() != 1:
        raise ValueError(f"optimizer state of parameter {pid}: step must be a one-element tensor and "
                         "exp_avg/exp_avg_sq tensors")  # fmt: skip
    for key in ("exp_avg", "exp_avg_sq"):
        if s[key].shape != p.shape:
            raise ValueError(f"optimizer state {key} of parameter {pid} has shape {tuple(s[key].shape)}, "
                             f"the parameter {tuple(p.shape)}")  # fmt: skip
    step = float(s["step"].reshape(()))
    if not (step >= 0 and step == math.floor(step) and step < math.inf):
        raise ValueError(f"optimizer state of parameter {pid} has step {step!r}; it must be a whole number >= 0")
    if bool((s["exp_avg_sq"] < 0).any()):
        raise ValueError(f"optimizer state exp_avg_sq of parameter {pid} holds negative values (a mean of squares)")
    return {
        "step": s["step"].to(device=p.device, dtype=torch.float32).reshape(()).clone(),  # never shared
        "exp_avg": s["exp_avg"].to(device=p.device, dtype=p.dtype),
        "exp_avg_sq": s["exp_avg_sq"].to(device=p.device, dtype=p.dtype),
    }
