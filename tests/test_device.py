"""The GPU path: fp16 loss scaling (its logic checked on CPU), and GPU-marked tests that need CUDA."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from corpora import write_corpus
from test_resume import DATA

from seq2seq.batches import collate
from seq2seq.checkpoint import load_checkpoint
from seq2seq.config import ConfigError, ModelConfig, TrainConfig
from seq2seq.machine.hardware import set_tf32
from seq2seq.objective import TrainingLoss
from seq2seq.prepared import Prepared
from seq2seq.preprocess import preprocess
from seq2seq.progress import TrainState, after_update
from seq2seq.train import RunOptions, RunSpec, train
from seq2seq.translation.torch_engine import Translator
from seq2seq.updater import Updater

if TYPE_CHECKING:
    from pathlib import Path

MODEL = ModelConfig(emb_size=16, enc_hidden=16, dec_hidden=32, dropout=0.0)
cuda = pytest.mark.gpu


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    root = tmp_path_factory.mktemp("device")
    preprocess(write_corpus(root / "corpus", n_train=120), "xx", "yy", root / "run", DATA)
    return Prepared.load(root / "run")


def test_fp16_needs_a_gpu(prepared: Prepared) -> None:
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        Updater.build(MODEL, prepared.vocab, TrainConfig(precision="fp16"), device="cpu")


def test_loss_scaling_updates_like_fp32_and_backs_off_on_overflow(prepared: Prepared) -> None:
    """The fp16 update logic (scale, unscale, clip, skip on overflow, back off) with a CPU scaler in fp32."""
    cfg = TrainConfig(clip_norm=1.0)
    plain = Updater.build(MODEL, prepared.vocab, cfg)
    scaled = Updater.build(MODEL, prepared.vocab, cfg)
    scaled.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    batch = collate(prepared.split("train"), np.arange(16))
    st = TrainState()  # the scaled run's counters

    def update(updater: Updater):  # one update at the lr a fresh run starts with (cfg.lr), counted in st
        result = updater.step(batch, batch.n_tokens, cfg.lr)
        if updater is scaled:
            after_update(st, result.applied, batch.n_tokens)
        return result

    (loss_a, norm_a, applied_a), (loss_b, norm_b, applied_b) = update(plain), update(scaled)
    assert applied_a and applied_b
    assert loss_a == pytest.approx(loss_b) and norm_a == pytest.approx(norm_b, rel=1e-5)
    for (name, a), b in zip(plain.model.state_dict().items(), scaled.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=name)
    before = {k: v.clone() for k, v in scaled.model.state_dict().items()}
    hook = scaled.model.out.bias.register_hook(lambda grad: grad * math.inf)  # an overflowing gradient
    assert not update(scaled).applied
    assert st.skipped_steps == 1 and st.step == 1 and scaled.scaler.get_scale() == 2.0**11
    assert all(torch.equal(before[k], v) for k, v in scaled.model.state_dict().items())
    hook.remove()
    assert update(scaled).applied and st.step == 2  # training goes on at the smaller scale


@cuda
@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16", "fp16"])
def test_cuda_training_writes_checkpoints_that_load_on_cpu(tmp_path: Path, precision: str) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    cfg = TrainConfig(max_tokens=120, max_steps=6, valid_every=3, valid_bleu_sentences=5, precision=precision)
    result = train(
        RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(device="cuda", progress=False)
    )
    assert result.steps == 6
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())
    chosen = json.loads((tmp_path / "run" / "config.json").read_text())["precision"]["name"]
    assert chosen == ("bf16" if precision == "auto" and torch.cuda.is_bf16_supported() else precision)
    assert "cuda" in ckpt["rng"][0] and (chosen == "fp16") == ("grad_scaler" in ckpt)
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32  # tf32=False
    assert Translator.from_checkpoint(tmp_path / "run" / "best.pt", device="cpu").translate(["red cat"])
    resumed = train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL,
                    TrainConfig(**{**cfg.__dict__, "max_steps": 8}), RunOptions(resume=True, device="cuda",
                    progress=False))  # fmt: skip
    assert resumed.steps == 8


@cuda
def test_cuda_loss_and_gradients_match_cpu(prepared: Prepared) -> None:
    """cuDNN's LSTMs compute the same function as the CPU kernels: fp32 against fp32, TF32 off (its default)."""
    set_tf32(False)  # cuDNN would otherwise use TF32 (10-bit mantissa) in its LSTMs on Ampere and later
    torch.manual_seed(0)
    updater = Updater.build(MODEL, prepared.vocab, TrainConfig(precision="fp32"))
    batch = collate(prepared.split("train"), np.arange(24))
    results = []
    for device in ("cpu", "cuda"):
        model = updater.model.to(device)
        model.zero_grad(set_to_none=True)
        loss = TrainingLoss(model, TrainConfig())(batch.to(device))
        loss.backward()
        # copies: `.cpu()` of a CPU gradient is the same tensor, which `model.to("cuda")` then moves to the GPU
        results.append((loss.item(), {n: p.grad.to("cpu", copy=True) for n, p in model.named_parameters()}))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    # Norm-wise: a gradient is a sum over the batch, and the two devices add its terms in another order, so
    # entries that nearly cancel differ by more than any elementwise rtol. The whole tensor must agree to
    # 1e-4 (fp32 summed in another order: ~1e-6; TF32's 10-bit mantissa: ~1e-3).
    errors = {name: ((results[1][1][name] - grad).norm() / grad.norm().clamp_min(1e-12)).item()
              for name, grad in results[0][1].items()}  # fmt: skip
    worst = sorted(errors.items(), key=lambda item: -item[1])
    print("relative gradient error, CUDA vs CPU:", ", ".join(f"{n} {e:.1e}" for n, e in worst))
    assert worst[0][1] < 1e-4, worst[:5]


@cuda
def test_batches_reach_the_gpu_through_pinned_memory(prepared: Prepared) -> None:
    batch = collate(prepared.split("train"), np.arange(4)).to("cuda")
    assert all(t.is_cuda for t in batch[:4])
    torch.cuda.synchronize()


@cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_torchrun_on_two_gpus(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "seq2seq",
           "train", "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(tmp_path / "run"),
           "--vocab-size", "60", "--emb-size", "16", "--enc-hidden", "16", "--dec-hidden", "32", "--max-tokens", "60",
           "--max-steps", "4", "--valid-every", "2", "--device", "cuda", "--precision", "bf16"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert load_checkpoint(tmp_path / "run" / "last.pt")["train_state"]["step"] == 4
