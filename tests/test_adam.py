"""The trainer's Adam (seq2seq/machine/adam.py): torch.optim.Adam's arithmetic and state format, without
importing torch._dynamo (about 70 MB of a training process's resident memory)."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import pytest
import torch

from seq2seq.machine import adam as adam_module
from seq2seq.machine.adam import Adam


def _params(dtype: torch.dtype = torch.float32) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (5,), (3, 4, 2)]
    return [torch.nn.Parameter(torch.randn(s, generator=g).to(dtype)) for s in shapes]


def _grads(step: int, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    return [torch.randn(p.shape, generator=g).to(p.dtype) * (step + 1) for p in params]


def _run(opt, params, steps: range, lrs=(1e-2, 3e-3, 2e-2, 1e-3, 5e-3, 1e-2)) -> None:
    for step in steps:
        for group in opt.param_groups:
            group["lr"] = lrs[step % len(lrs)]
        for p, g in zip(params, _grads(step, params)):
            p.grad = None if (step == 2 and p.dim() == 1) else g  # a parameter without a gradient is left alone
        opt.step()
        opt.zero_grad(set_to_none=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_path_equals_torch_optim_adam_fused_update_for_update(dtype: torch.dtype) -> None:
    ours, theirs = _params(dtype), _params(dtype)
    a, b = Adam(ours, lr=1e-2), torch.optim.Adam(theirs, lr=1e-2, fused=True)
    for step in range(6):
        _run(a, ours, range(step, step + 1))
        _run(b, theirs, range(step, step + 1))
        for p, q in zip(ours, theirs):
            assert torch.equal(p, q), f"step {step}"


def test_foreach_path_equals_torch_optim_adam_foreach(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adam_module, "_fused_kernel", lambda device, dtype: False)  # a device without the kernel
    ours, theirs = _params(), _params()
    _run(Adam(ours, lr=1e-2), ours, range(6))
    _run(torch.optim.Adam(theirs, lr=1e-2, foreach=True), theirs, range(6))
    for p, q in zip(ours, theirs):
        assert torch.equal(p, q)
    assert not torch.equal(ours[0], _params()[0])  # it moved


@pytest.mark.parametrize("fused", [True, False])
def test_a_grad_scale_divides_the_gradients_as_torch_optim_adam_after_a_division(fused: bool, monkeypatch) -> None:
    # gradient clipping's factor, applied inside the step: the update of grad / 4 by torch.optim.Adam
    if not fused:
        monkeypatch.setattr(adam_module, "_fused_kernel", lambda device, dtype: False)
    ours, theirs = _params(), _params()
    a, b = Adam(ours, lr=1e-2), torch.optim.Adam(theirs, lr=1e-2, fused=fused, foreach=not fused)
    for step in range(3):
        for p, q, g in zip(ours, theirs, _grads(step, ours)):
            p.grad, q.grad = g.clone(), g / 4
        a.step(grad_scale=4.0)
        b.step()
        for p, q in zip(ours, theirs):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-7)
            torch.testing.assert_close(p.grad, q.grad)  # left divided, as clipping leaves them
    assert not torch.equal(ours[0], _params()[0])


def test_a_torch_without_the_cpu_kernel_falls_back_to_foreach(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch 2.2/2.3 have the op but no CPU kernel: the first step finds out and the update is still Adam's."""
    monkeypatch.setattr(adam_module, "_NO_KERNEL", set())

    def no_cpu_kernel(*args, **kwargs):
        raise NotImplementedError("Could not run 'aten::_fused_adam_' with arguments from the 'CPU' backend")

    monkeypatch.setattr(torch, "_fused_adam_", no_cpu_kernel)
    ours, theirs = _params(), _params()
    _run(Adam(ours, lr=1e-2), ours, range(4))
    _run(torch.optim.Adam(theirs, lr=1e-2, foreach=True), theirs, range(4))
    for p, q in zip(ours, theirs):
        assert torch.equal(p, q)
    assert adam_module._NO_KERNEL == {("cpu", torch.float32)}


def test_an_out_of_memory_in_the_fused_kernel_is_raised_not_taken_for_a_missing_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A RuntimeError that is not "no kernel" (CPU out of memory is a plain RuntimeError) is the caller's:
    caught, it switched the process to the slower foreach path for good."""
    monkeypatch.setattr(adam_module, "_NO_KERNEL", set())

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 40000000000 bytes")

    monkeypatch.setattr(torch, "_fused_adam_", out_of_memory)
    ours = _params()
    with pytest.raises(RuntimeError, match="can't allocate memory"):
        _run(Adam(ours, lr=1e-2), ours, range(1))
    assert adam_module._NO_KERNEL == set()


def test_a_parameter_that_never_gets_a_gradient_has_no_state() -> None:
    used, unused = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = Adam([used, unused], lr=0.1)
    for _ in range(2):
        used.grad = torch.ones(3)
        opt.step()
    assert torch.equal(unused, torch.ones(2)) and list(opt.state_dict()["state"]) == [0]


def test_a_hand_computed_first_step() -> None:
    """Step 1 with bias correction: m = (1 - b1) g, v = (1 - b2) g^2, p -= lr m/(1-b1) / (sqrt(v/(1-b2)) + eps)
    = lr g / (|g| + eps): every coordinate moves by lr against its gradient's sign."""
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    p.grad = torch.tensor([4.0, -0.25, 0.0])
    Adam([p], lr=0.1).step()
    torch.testing.assert_close(p.detach(), torch.tensor([0.9, -1.9, 0.5]), rtol=0, atol=1e-6)


def test_betas_set_the_moments_hand_computed_second_step() -> None:
    """betas (0, 0): m = g and v = g^2 of the last step alone, so every step, not only the first, moves each
    coordinate by exactly lr against its gradient's sign; with the default betas step 2 does not."""
    grads = [torch.tensor([4.0, -0.25, 1.0]), torch.tensor([-1.0, 2.0, 1.0])]
    end = {}
    for betas in ((0.0, 0.0), (0.9, 0.999)):
        p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
        opt = Adam([p], lr=0.1, betas=betas)
        for g in grads:
            p.grad = g.clone()
            opt.step()
        assert opt.state_dict()["param_groups"][0]["betas"] == betas
        end[betas] = p.detach()
    torch.testing.assert_close(end[0.0, 0.0], torch.tensor([1.0, -2.0, 0.3]), rtol=0, atol=1e-6)
    assert not torch.allclose(end[0.9, 0.999], end[0.0, 0.0], atol=1e-3)


@pytest.mark.parametrize("first", ["ours", "torch"])
def test_state_dicts_cross_load_and_resume_the_same_trajectory(first: str) -> None:
    """A checkpoint's optimiser state from torch.optim.Adam (older runs) resumes in ours and back."""
    make = {"ours": lambda ps: Adam(ps, lr=1e-2),
            "torch": lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, fused=True)}  # fmt: skip
    second = "torch" if first == "ours" else "ours"
    straight = _params()
    _run(make[first](straight), straight, range(6))

    params = _params()
    opt = make[first](params)
    _run(opt, params, range(3))
    buffer = io.BytesIO()  # as a checkpoint carries it: torch.save, then torch.load(weights_only=True)
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    resumed = make[second](resumed_params)
    resumed.load_state_dict(saved)
    _run(resumed, resumed_params, range(3, 6))
    for p, q in zip(straight, resumed_params):
        assert torch.equal(p, q)
    assert resumed.state_dict()["param_groups"][0]["betas"] == ((0.8, 0.99) if first == "torch" else (0.9, 0.999))


def test_a_float32_state_loads_into_bfloat16_parameters_cast_as_torch_does() -> None:
    ours = _params()
    opt = Adam(ours, lr=1e-2)
    _run(opt, ours, range(2))
    half = [torch.nn.Parameter(p.detach().to(torch.bfloat16)) for p in ours]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in half]
    a, b = Adam(half, lr=1e-2), torch.optim.Adam(theirs, lr=1e-2, fused=True)
    a.load_state_dict(opt.state_dict())
    b.load_state_dict(opt.state_dict())
    assert a.state_dict()["state"][0]["exp_avg"].dtype == torch.bfloat16
    _run(a, half, range(2, 4))
    _run(b, theirs, range(2, 4))
    for p, q in zip(half, theirs):
        assert torch.equal(p, q)


def test_its_state_dict_has_torch_optim_adams_keys() -> None:
    ours, theirs = _params(), _params()
    a, b = Adam(ours, lr=1e-2), torch.optim.Adam(theirs, lr=1e-2, fused=True)
    _run(a, ours, range(2))
    _run(b, theirs, range(2))
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for i in sb["state"]:
        assert sa["state"][i].keys() == sb["state"][i].keys()
        for key, value in sb["state"][i].items():
            assert torch.equal(sa["state"][i][key], value) and sa["state"][i][key].dtype == value.dtype


def test_state_for_other_parameters_is_refused_by_name() -> None:
    a = Adam(_params(), lr=1e-2)
    _run(a, a.param_groups[0]["params"], range(1))
    other = Adam([torch.nn.Parameter(torch.zeros(7, 5))], lr=1e-2)
    with pytest.raises(ValueError, match="state is for 3 parameters, this model has 1"):
        other.load_state_dict(a.state_dict())
    wrong_shape = Adam([torch.nn.Parameter(torch.zeros(5, 7)), *_params()[1:]], lr=1e-2)
    with pytest.raises(ValueError, match=r"exp_avg of parameter 0 has shape \(7, 5\), the parameter \(5, 7\)"):
        wrong_shape.load_state_dict(a.state_dict())
    amsgrad = torch.optim.Adam(_params(), lr=1e-2, amsgrad=True).state_dict()
    with pytest.raises(ValueError, match="amsgrad=True"):
        Adam(_params(), lr=1e-2).load_state_dict(amsgrad)
    good = a.state_dict()
    broken = [
        ({"state": {}}, "no single parameter group"),
        ({**good, "state": {7: good["state"][0]}}, "names parameters its parameter group does not list"),
        ({**good, "state": {0: {"step": 1.0, "exp_avg": 0, "exp_avg_sq": 0}}}, "one-element tensor"),
        ({**good, "state": {0: {**good["state"][0], "step": torch.ones(2)}}}, "one-element tensor"),
        ({**good, "state": {0: {"exp_avg": good["state"][0]["exp_avg"]}}}, "not Adam's"),
    ]
    # finite but impossible: each made the first update NaN (bias correction 1 - beta**0, sqrt of a negative)
    group = good["param_groups"][0]
    for key, value, message in (("step", torch.tensor(-1.0), "step -1.0; it must be a whole number >= 0"),
                                ("step", torch.tensor(2.5), "step 2.5"),
                                ("exp_avg_sq", -good["state"][0]["exp_avg_sq"] - 1, "negative values")):  # fmt: skip
        broken.append(({**good, "state": {0: {**good["state"][0], key: value}}}, message))
    for key, value, message in (("eps", 0.0, "eps=0.0"), ("eps", -1e-8, "eps=-1e-08"),
                                ("lr", float("nan"), "lr=nan"), ("betas", (0.9, 1.0), "betas=\\(0.9, 1.0\\)"),
                                ("betas", (0.9,), "two numbers")):  # fmt: skip
        broken.append(({**good, "param_groups": [{**group, key: value}]}, message))
    for state, message in broken:
        with pytest.raises(ValueError, match=message):
            Adam(_params(), lr=1e-2).load_state_dict(state)
    # torch.optim.Adam takes a tensor lr (and betas): its state loads, as numbers
    theirs = torch.optim.Adam(_params(), lr=torch.tensor(1e-3), betas=(torch.tensor(0.8), torch.tensor(0.9)))
    mine = Adam(_params(), lr=1e-2)
    mine.load_state_dict(theirs.state_dict())
    group = mine.param_groups[0]
    assert group["lr"] == pytest.approx(1e-3) and group["betas"] == (pytest.approx(0.8), pytest.approx(0.9))


def test_a_training_update_never_imports_torch_dynamo() -> None:
    """The reason for this class: torch.optim imports dynamo (and sympy), ~70 MB resident."""
    code = textwrap.dedent("""
        import sys, torch
        from seq2seq.batches import Batch
        from seq2seq.config import ModelConfig, TrainConfig
        from seq2seq.updater import Updater
        cfg = ModelConfig(emb_size=8, enc_hidden=8, dec_hidden=16)
        up = Updater.build(cfg, (30, 30), TrainConfig(precision="fp32"))
        g = torch.Generator().manual_seed(0)
        batch = Batch(torch.randint(4, 30, (3, 6), generator=g), torch.tensor([6, 6, 6]),
                      torch.randint(4, 30, (3, 5), generator=g), torch.randint(4, 30, (3, 5), generator=g), 15)
        before = [p.detach().clone() for p in up.model.parameters()]
        for _ in range(2):
            assert up.step(batch, batch.n_tokens, 1e-2).applied
        assert all(not torch.equal(a, p) for a, p in zip(before, up.model.parameters()))
        up.load(up.model.state_dict(), type("R", (), {"optimizer": up.states()[0], "grad_scaler": None})())
        print(sorted(m for m in sys.modules if m.startswith(("torch._dynamo", "sympy"))))
    """)  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
