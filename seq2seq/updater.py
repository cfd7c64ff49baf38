"""One optimiser step, and what it needs: the model built from its config and seed, the (fused)
Adam optimiser (machine/adam.py), the fp16 loss scaler, the resolved precision, and under
DistributedDataParallel the loss of the whole update. The loop around it is train.py's `Trainer`."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from .config import ConfigError, half_memory
from .machine.adam import Adam
from .machine.hardware import Precision, resolve_precision
from .model import Seq2Seq
from .objective import TrainingLoss, forward_backward
from .scale import distributed
from .scale.distributed import Dist

if TYPE_CHECKING:
    from .batches import Batch
    from .checkpoint import ResumeState
    from .config import ModelConfig, TrainConfig


class StepResult(NamedTuple):
    """What one update did."""

    loss: float  # per target token of the whole update (all ranks' batches)
    grad_norm: float  # before clipping
    applied: bool  # False: a non-finite loss or gradient, and the weights were left as they were


TRAINING_BYTES_PER_PARAMETER = 16  # float32 weight, its gradient and Adam's two moments (activations come on top)
GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # weight matrices per recurrent layer and direction


def training_memory(device: torch.device) -> tuple[int, str]:
    """(bytes, what they are) one training process may hold: a CUDA GPU's memory; on the CPU half this
    machine's memory, shared out among the processes torchrun starts on it (LOCAL_WORLD_SIZE)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory, f"the memory of {device}"
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    if local == 1:
        return half_memory(), "half this machine's memory"
    return half_memory() // local, f"half this machine's memory over its {local} training processes"


def check_model_memory(
    model_cfg: ModelConfig, vocab: tuple[int, int], cfg: TrainConfig, device: torch.device | None = None
) -> None:
    """The model's weights, gradients and Adam's moments, and one batch's output scores, fit in what one
    training process on `device` may hold (`training_memory`); else a ConfigError, before anything is
    allocated. Counted from the sizes (a model built on torch's meta device imports sympy and dynamo, which
    training never does): the recurrent hidden-to-hidden matrices and
    the embeddings alone, a lower bound of the model's parameters; and `cfg.max_tokens` x (the target vocabulary's
    scores + the decoder's widths the backward keeps per token), float32 in fp32, else at least bf16: a lower bound
    of a batch's activations (the default model keeps about 8 x that beside its scores, measured)."""
    c = model_cfg
    n = GATES[c.cell] * (2 * c.enc_layers * c.enc_hidden**2 + c.dec_layers * c.dec_hidden**2) + sum(vocab) * c.emb_size
    (budget, where), need = training_memory(device or torch.device("cpu")), n * TRAINING_BYTES_PER_PARAMETER
    if need > budget:
        raise ConfigError(f"a model of more than {n:,} parameters needs over {need / 1e9:,.1f} GB to train (weights, "
                          f"gradients, Adam's moments), over {where} ({budget / 1e9:.1f} GB): use "
                          "smaller --emb-size, --enc-hidden, --dec-hidden, --enc-layers, --dec-layers or "
                          "--vocab-size")  # fmt: skip
    size = 4 if cfg.precision == "fp32" else 2
    scores = cfg.max_tokens * vocab[1] * size
    # per target token the backward keeps at least its embedding, the decoder's gates of every layer, its output,
    # the attention's context (both encoder directions) and the attentional vector (measured: 8 x more in all)
    acts = cfg.max_tokens * size * (c.emb_size + GATES[c.cell] * c.dec_hidden * c.dec_layers + 2 * c.enc_hidden
                                    + 2 * c.dec_hidden)  # fmt: skip
    if need + scores + acts > budget:
        raise ConfigError(f"batches of {cfg.max_tokens:,} target tokens over {vocab[1]:,} target pieces need over "
                          f"{(need + scores + acts) / 1e9:,.1f} GB with the model (the output layer's scores alone: "
                          f"{scores / 1e9:,.1f} GB, the decoder's activations at least {acts / 1e9:,.1f} GB), over "
                          f"{where} ({budget / 1e9:.1f} GB): use a smaller --max-tokens (or --emb-size, "
                          "--dec-hidden)")  # fmt: skip


@dataclass
class Updater:
    """One optimiser step: the learning rate, forward/backward under autocast with the loss scaled
    per target token of the whole update (fp16: times the loss scale), clipping, and the step, or
    the skip of a non-finite one (fp16: with a smaller loss scale next time).

    `net` is the model's training loss, under DistributedDataParallel when `dist` has several processes."""

    model: Seq2Seq
    net: torch.nn.Module
    opt: Adam
    scaler: torch.amp.GradScaler  # enabled for fp16 only
    precision: Precision
    cfg: TrainConfig
    device: torch.device
    dist: Dist = field(default_factory=Dist)

    @classmethod
    def build(
        cls,
        model_cfg: ModelConfig,
        vocab: tuple[int, int],
        cfg: TrainConfig,
        device: str | torch.device = "cpu",
        dist: Dist | None = None,
    ) -> Updater:
        """A model initialised from `cfg.seed` for (source, target) `vocab` sizes, its optimiser and
        loss scaler. A precision `device` cannot run, or what `dist` cannot train, is a ConfigError."""
        dist, dev = dist or Dist(), torch.device(device)
        distributed.check(cfg, dist)
        precision = resolve_precision(cfg.precision, str(dev))  # HardwareError if it can't run
        check_model_memory(model_cfg, vocab, cfg, dev)
        torch.manual_seed(cfg.seed)
        model = Seq2Seq(model_cfg, *vocab).to(dev)
        net = distributed.wrap(TrainingLoss(model, cfg), dist, dev)  # DDP with > 1 process
        distributed.reseed(cfg.seed, dist)
        opt = Adam(model.parameters(), cfg.lr, (cfg.adam_beta1, cfg.adam_beta2))  # fused kernel; no torch.optim
        scaler = torch.amp.GradScaler(dev.type, enabled=precision.name == "fp16")
        return cls(model, net, opt, scaler, precision, cfg, dev, dist)

    @property
    def lr(self) -> float:
        """The learning rate of the last update."""
        return self.opt.param_groups[0]["lr"]

    def step(self, batch: Batch, tokens: int, lr: float) -> StepResult:
        """One update on this process's `batch` at learning rate `lr`; `tokens`: target tokens of the
        whole update (all ranks' batches; this batch's `n_tokens` in one process)."""
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        # W / tokens: DDP's average over the W ranks is then the mean per target token of the whole update.
        scale: float | torch.Tensor = self.dist.world / tokens
        if self.scaler.is_enabled():
            scale = self.scaler.scale(torch.tensor(scale, device=self.device))  # times the fp16 loss scale
        with self.precision.autocast(self.device.type):
            loss = forward_backward(self.model, batch, self.cfg, scale=scale, net=self.net)
        loss = self.dist.sum(loss)
        self.scaler.unscale_(self.opt)  # a no-op unless fp16
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        norms = torch._foreach_norm(grads) if grads else []  # the norm as clip_grad_norm_ takes it (0 without any)
        norm = torch.linalg.vector_norm(torch.stack(norms)).item() if norms else 0.0
        applied = math.isfinite(loss) and math.isfinite(norm)
        if applied:  # clipped as clip_grad_norm_ would (x min(1, clip / (norm + 1e-6))), inside Adam's one pass
            clip = max(1.0, (norm + 1e-6) / self.cfg.clip_norm) if self.cfg.clip_norm else 1.0
            self.scaler.step(self.opt, grad_scale=clip)  # opt.step(grad_scale=clip) (fp16: on unscaled gradients)
        self.scaler.update()  # fp16: a smaller loss scale after a non-finite step
        return StepResult(loss / tokens, norm, applied)

    def load(self, weights: dict[str, torch.Tensor], resume: ResumeState, reset_optimizer: bool = False) -> None:
        """Weights, optimiser state (unless `reset_optimizer`) and fp16 loss scale, from last.pt."""
        self.model.load_state_dict(weights)
        if not reset_optimizer:
            self.opt.load_state_dict(resume.optimizer)
            moments = [v for state in self.opt.state.values() for v in state.values() if torch.is_tensor(v)]
            if not all(bool(torch.isfinite(v).all()) for v in moments):  # the checksum covers the weights only
                raise ValueError("the optimiser's moments hold non-finite values; --reset-optimizer drops them")
            self.opt.param_groups[0]["betas"] = (self.cfg.adam_beta1, self.cfg.adam_beta2)  # the run's, not the file's
        if self.scaler.is_enabled() and resume.grad_scaler is not None:
            self.scaler.load_state_dict(resume.grad_scaler)

    def states(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Optimiser and (fp16) loss-scaler states, for last.pt."""
        return self.opt.state_dict(), self.scaler.state_dict() if self.scaler.is_enabled() else None
