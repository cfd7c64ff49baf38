"""The training objective: teacher-forced (or scheduled-sampling) cross-entropy with truncated BPTT.

Truncated BPTT (`tbptt = N > 0`) splits the decoder unroll into chunks of N target steps. The
encoder runs once per batch; its outputs are cut off as leaves that collect the gradient of
every chunk, and are back-propagated through the encoder once at the end. The decoder state
is carried from chunk to chunk with its gradient cut. Each chunk's loss is back-propagated as
soon as it is computed (its activations are freed), gradients accumulate, and the optimiser
steps once per batch, so every chunk counts and N >= target length gives full-BPTT gradients.

Without truncation the loss is the forward of a module (`TrainingLoss`), so that
DistributedDataParallel can wrap it: single-process and multi-process training run the very
same forward. Truncated BPTT back-propagates each chunk inside the step, which DDP (one
gradient all-reduce per forward) cannot follow; it is single-process only (see distributed.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .batches import Batch, collate, make_batches
from .ids import PAD_ID
from .model import DecoderState, Memory, Seq2Seq

if TYPE_CHECKING:
    from .config import TrainConfig
    from .prepared import EncodedSplit


def _decode_chunk(
    model: Seq2Seq,
    batch: Batch,
    t0: int,
    t1: int,
    state: DecoderState,
    memory: Memory,
    teacher_forcing: float,
    prev_pred: Tensor | None,
) -> tuple[Tensor, DecoderState, Tensor | None]:
    """Attentional vectors (B, t1-t0, E) for target steps t0..t1, fed references or own predictions."""
    tgt_in = batch.tgt_in[:, t0:t1]
    if teacher_forcing >= 1 or not model.training:
        att, state, _ = model.decoder(tgt_in, state, memory)
        return att, state, None
    atts = []
    for t in range(tgt_in.size(1)):  # scheduled sampling: the next input depends on this output
        inp = tgt_in[:, t]
        if prev_pred is not None:
            use_ref = torch.rand(inp.shape, device=inp.device) < teacher_forcing
            inp = torch.where(use_ref | (inp == PAD_ID), inp, prev_pred)
        att, state, _ = model.decoder(inp[:, None], state, memory)
        prev_pred = model.logits(att[:, 0]).argmax(-1).detach()
        atts.append(att)
    return torch.cat(atts, dim=1), state, prev_pred


def chunks(steps: int, size: int) -> list[tuple[int, int]]:
    """Truncated BPTT's chunks of `steps` time steps, from the first: [t0, t1) of `size` steps, the last one
    the remainder; size 0 (no truncation) or >= steps: one chunk (the memory-span lab uses this rule too)."""
    return [(t0, min(t0 + size, steps)) for t0 in range(0, steps, size)] if size > 0 else [(0, steps)]


CE_ROWS = 128  # rows of scores per chunk: 128 x 4k vocabulary is a 2 MiB float32 log-softmax


class SmoothedCrossEntropy(torch.autograd.Function):
    """Summed label-smoothed cross-entropy of logits (N, V) in float32, `CE_ROWS` rows at a time; the
    rows past `target`'s length (padding to a fixed row count) get no loss and a zero gradient.

    The value and gradient of `F.cross_entropy(logits.float(), target, reduction="sum",
    label_smoothing=eps)` (pinned by a test). The forward makes one float32 log-softmax per chunk and,
    when the logits need a gradient, the gradient too, kept instead of the logits (in their dtype; float32
    for fp16, whose range would flush small probabilities before the loss scale) and already multiplied,
    in float32, by `grad_scale`: the factor the caller multiplies the loss by before its backward (training:
    1 / target tokens, times the fp16 loss scale). Then bf16 rounds once, and the backward returns the kept
    gradient as it is (2,560 x 4,000 bf16: one pass over the scores less; before 2026-12-06 the backward
    scaled a rounded gradient). Any other upstream is still applied, as a float32 factor in the backward.
    loss_i = -(1 - eps) log p_i[t_i] - eps / V sum_v log p_iv;  dloss_i/dz_iv = p_iv - (1 - eps) [v = t_i] - eps / V.
    """

    @staticmethod
    def forward(ctx: Any, logits: Tensor, target: Tensor, eps: float, grad_scale: float = 1.0) -> Tensor:  # type: ignore[override]
        n, vocab = target.size(0), logits.size(1)  # rows of logits past the targets' count: padding, no loss
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        kept = torch.float32 if logits.dtype == torch.float16 else logits.dtype
        grad = logits.new_empty(logits.shape, dtype=kept) if ctx.needs_input_grad[0] else None
        if grad is not None:
            grad[n:] = 0
        scored, scored_grad = logits[:n], None if grad is None else grad[:n]
        in_place = scored_grad is not None and scored_grad.dtype == torch.float32  # float32: made where it is kept
        scale = torch.tensor(grad_scale, dtype=torch.float32).item()  # as float32 math will see the upstream
        uniform = torch.tensor(-eps / vocab * scale, dtype=torch.float32, device=logits.device)
        with torch.autocast(logits.device.type, enabled=False):
            for i in range(0, n, CE_ROWS):
                out = scored_grad[i : i + CE_ROWS] if in_place else None
                logp = torch.log_softmax(scored[i : i + CE_ROWS], dim=1, dtype=torch.float32, out=out)
                rows = target[i : i + CE_ROWS, None]
                total -= (1 - eps) * logp.gather(1, rows).sum()
                if eps:
                    total -= eps / vocab * logp.sum()
                if scored_grad is not None:
                    g = logp.exp_()  # softmax
                    if eps or scale != 1:
                        torch.add(uniform, g, alpha=scale, out=g)  # scale * (p - eps / V), one float32 pass
                    g.scatter_add_(1, rows, g.new_full(rows.shape, -(1 - eps) * scale))
                    scored_grad[i : i + CE_ROWS] = g  # in place: the same memory, no copy (copy_ returns early)
        ctx.save_for_backward(grad)
        ctx.dtype, ctx.scale = logits.dtype, scale
        return total

    @staticmethod
    def backward(ctx: Any, upstream: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        if getattr(ctx, "done", False):
            raise RuntimeError("SmoothedCrossEntropy scales its saved gradient in place: one backward only")
        ctx.done = True
        (grad,) = ctx.saved_tensors
        factor = upstream.item() / ctx.scale  # a Python float: float32 math on any device
        if factor != 1:  # the upstream is not the grad_scale the forward applied
            grad.mul_(factor)
        return grad.to(ctx.dtype), None, None, None


OUTPUT_ROWS = 256  # with shape buckets, the output layer's rows are padded to a multiple of this


def _loss(
    model: Seq2Seq, att: Tensor, tgt_out: Tensor, label_smoothing: float, pad_rows: bool = False, grad_scale: float = 1.0
) -> Tensor:
    """Summed cross-entropy over the non-padding positions only (the output layer skips padding);
    `pad_rows`: the output layer runs on those rows plus zero rows up to a multiple of `OUTPUT_ROWS`
    (a few fixed shapes for its matmuls; the extra rows carry no loss); `grad_scale`: what the loss
    will be multiplied by before its backward (see SmoothedCrossEntropy)."""
    mask = tgt_out != PAD_ID  # (B, T)
    rows = att[mask]  # (tokens, E)
    if pad_rows and rows.size(0) % OUTPUT_ROWS:
        rows = torch.cat([rows, rows.new_zeros(OUTPUT_ROWS - rows.size(0) % OUTPUT_ROWS, rows.size(1))])
    return SmoothedCrossEntropy.apply(model.logits(rows), tgt_out[mask], label_smoothing, grad_scale)


class TrainingLoss(nn.Module):
    """The summed training loss of a batch as a module's forward (the module DDP wraps)."""

    def __init__(self, model: Seq2Seq, cfg: TrainConfig) -> None:
        super().__init__()
        self.model, self.label_smoothing, self.teacher_forcing = model, cfg.label_smoothing, cfg.teacher_forcing
        self.pad_rows = bool(cfg.bucket_tokens)

    def forward(self, batch: Batch, grad_scale: float = 1.0) -> Tensor:
        """The summed loss; `grad_scale`: the factor its backward will bring (see SmoothedCrossEntropy)."""
        memory, state = self.model.encode(batch.src_ids, batch.src_lens)
        steps = batch.tgt_in.size(1)
        att, _, _ = _decode_chunk(self.model, batch, 0, steps, state, memory, self.teacher_forcing, None)
        return _loss(self.model, att, batch.tgt_out, self.label_smoothing, self.pad_rows, grad_scale)


def forward_backward(
    model: Seq2Seq, batch: Batch, cfg: TrainConfig, scale: float | Tensor | None = None, net: nn.Module | None = None
) -> float:
    """Accumulate d(scale * summed loss)/d(params) for one batch; returns the summed loss.

    `scale` defaults to 1 / target tokens (the per-token mean). `net` computes the loss when there
    is no truncation: `TrainingLoss(model, cfg)` (the default) or its DDP wrapper.
    """
    scale = 1.0 / batch.n_tokens if scale is None else scale
    grad_scale = float(scale)  # the loss's gradient is made already scaled by it
    if cfg.tbptt == 0:
        loss = (net or TrainingLoss(model, cfg))(batch, grad_scale)
        (loss * scale).backward()
        return loss.item()
    memory, state = model.encode(batch.src_ids, batch.src_lens)
    steps = int((batch.tgt_out != PAD_ID).sum(1).max())  # the longest target: a bucketed batch pads beyond it
    roots = [memory.states, memory.keys, *state.rnn]
    leaves = [r.detach().requires_grad_() for r in roots]
    memory_l = Memory(leaves[0], leaves[1], memory.mask)
    state = DecoderState(tuple(leaves[2:]), state.feed)
    total, prev_pred = 0.0, None
    for t0, t1 in chunks(steps, cfg.tbptt):
        att, state, prev_pred = _decode_chunk(model, batch, t0, t1, state, memory_l, cfg.teacher_forcing, prev_pred)
        loss = _loss(model, att, batch.tgt_out[:, t0:t1], cfg.label_smoothing, bool(cfg.bucket_tokens), grad_scale)
        (loss * scale).backward()
        total += loss.item()
        state = state.detach()
    grads = [torch.zeros_like(leaf) if leaf.grad is None else leaf.grad for leaf in leaves]
    torch.autograd.backward(roots, grads)
    return total


@torch.inference_mode()
def validation_loss(
    model: Seq2Seq, split: EncodedSplit, max_tokens: int, device: torch.device, bucketed: bool = False
) -> float:
    """Mean per-token cross-entropy (no label smoothing) of a split under teacher forcing; `bucketed`:
    in shape-bucketed batches, as training's (the same value, from a bounded set of shapes)."""
    model.eval()
    total, tokens = 0.0, 0
    for idx in make_batches(split.src_lens, split.tgt_lens, max_tokens, bucketed=bucketed):
        batch = collate(split, idx, max_tokens if bucketed else 0).to(device)
        memory, state = model.encode(batch.src_ids, batch.src_lens)
        att, _, _ = model.decoder(batch.tgt_in, state, memory)
        total += _loss(model, att, batch.tgt_out, 0.0, bucketed).item()
        tokens += batch.n_tokens
    return total / max(tokens, 1)
