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


CE_ROWS = 128  # rows of scores per chunk: 128 x 4k vocabulary is 2 MiB of float32 work


class OutputLoss(torch.autograd.Function):
    """The output layer and the summed label-smoothed cross-entropy as one function: scores z = h W^T + b
    for rows h (N, E), the loss of the first `target.size(0)` rows in float32, `CE_ROWS` rows at a time;
    the rows past them (padding to a fixed row count) get no loss and a zero gradient.

    The value and gradients of `F.cross_entropy(F.linear(h, W, b).float(), target, reduction="sum",
    label_smoothing=eps)` (pinned by tests). Under autocast the matmuls run in autocast's dtype (as
    `F.linear` would), everything else in float32. The forward makes h W^T without the bias, then for
    each chunk makes z in float32 (in place; bf16: copied into one reused float32 buffer), shifts each row
    by its maximum and takes the loss from z and each row's log-sum-exp (no log_softmax: it takes 2.5x an
    exp pass) and, when a gradient is needed, dloss/dz already multiplied by `grad_scale` (the factor
    the caller multiplies the loss by before its backward: training's 1 / target tokens, times the fp16
    loss scale; so bf16 rounds it once) and the bias gradient (summed in float32). The gradient is
    written over the scores (fp16: kept in float32, whose range small probabilities need before the
    loss scale). The backward is the two matmuls dh = G W and dW = G^T h. Any upstream other than
    `grad_scale` is applied as a float32 factor in the backward. A gradient is made when h, W or b
    requires one (`ctx.needs_input_grad`, blind to no-grad mode: `_loss` detaches W and b there).
    Measured against `F.linear` + a loss over its scores in docs/speed.md (paired training updates 1-3 %
    faster, fp32 peak RSS 659 -> 570 MiB); the loop without log_softmax: docs/speed.md, 2026-12-06.
    loss_i = -(1 - eps) log p_i[t_i] - eps / V sum_v log p_iv;  dloss_i/dz_iv = p_iv - (1 - eps) [v = t_i] - eps / V.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, h: Tensor, weight: Tensor, bias: Tensor, target: Tensor, eps: float, grad_scale: float = 1.0
    ) -> Tensor:
        dev = h.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h.dtype
        n, vocab = target.size(0), weight.size(0)  # rows of h past the targets' count: padding, no loss
        need = any(ctx.needs_input_grad[:3])
        scale = torch.tensor(grad_scale, dtype=torch.float32).item()  # as float32 math will see the upstream
        with torch.autocast(dev, enabled=False):
            h_c, w_c, b32 = h.to(dtype), weight.to(dtype), bias.float()
            scores = h_c @ w_c.t()  # (N, V), the bias comes per chunk
            grad = scores.new_empty(scores.shape, dtype=torch.float32) if need and dtype == torch.float16 else scores
            total = torch.zeros((), dtype=torch.float32, device=h.device)
            db = torch.zeros(vocab, dtype=torch.float32, device=h.device) if need else None
            uniform = torch.tensor(-eps / vocab * scale, dtype=torch.float32)  # a 0-dim CPU operand: no copy
            buf = None if grad.dtype == torch.float32 else scores.new_empty(min(n, CE_ROWS), vocab, dtype=torch.float32)
            for i in range(0, n, CE_ROWS):
                chunk = scores[i : min(i + CE_ROWS, n)]
                # float32 z = scores + bias, made where the gradient goes (float32 scores: in place) or in a buffer
                z = (grad[i : i + chunk.size(0)] if buf is None else buf[: chunk.size(0)]).copy_(chunk).add_(b32)
                z.sub_(z.amax(1, keepdim=True))  # shifted by each row's maximum: exp cannot overflow
                rows = target[i : i + CE_ROWS, None]
                total -= (1 - eps) * z.gather(1, rows).sum()
                if eps:
                    total -= eps / vocab * z.sum()
                e = z.exp_()
                sums = e.sum(1, keepdim=True)
                total += sums.log().sum()  # log p = z - lse: (1 - eps) lse + eps / V * V lse per row
                if db is not None:
                    g = e.mul_(sums.reciprocal_().mul_(scale))  # scale * softmax
                    if eps:
                        g.add_(uniform)  # scale * (p - eps / V)
                    g.scatter_add_(1, rows, g.new_full(rows.shape, -(1 - eps) * scale))
                    db += g.sum(0)
                    grad[i : i + g.size(0)] = g  # bf16: rounded once; float32: the same memory, no copy
            if db is not None:
                grad[n:] = 0
        ctx.save_for_backward(h_c if need else None, w_c if need else None, grad if need else None)
        ctx.db, ctx.scale, ctx.dtypes = db, scale, (h.dtype, weight.dtype, bias.dtype, dtype)
        return total

    @staticmethod
    def backward(ctx: Any, upstream: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        if getattr(ctx, "done", False):
            raise RuntimeError("OutputLoss scales its saved gradient in place: one backward only")
        ctx.done = True
        h, w, grad = ctx.saved_tensors
        h_dtype, w_dtype, b_dtype, dtype = ctx.dtypes
        factor = upstream.item() / ctx.scale  # a Python float: float32 math on any device
        if factor != 1:  # the upstream is not the grad_scale the forward applied
            grad.mul_(factor)
            ctx.db.mul_(factor)
        grad = grad.to(dtype)  # fp16: the float32 gradient, scaled, rounded once
        dh = (grad @ w).to(h_dtype) if ctx.needs_input_grad[0] else None
        dw = (grad.t() @ h).to(w_dtype) if ctx.needs_input_grad[1] else None
        db = ctx.db.to(b_dtype) if ctx.needs_input_grad[2] else None
        return dh, dw, db, None, None, None


OUTPUT_ROWS = 256  # with shape buckets, the output layer's rows are padded to a multiple of this


def _loss(
    model: Seq2Seq,
    att: Tensor,
    tgt_out: Tensor,
    label_smoothing: float,
    pad_rows: bool = False,
    grad_scale: float = 1.0,
) -> Tensor:
    """Summed cross-entropy over the non-padding positions only (the output layer skips padding);
    `pad_rows`: the output layer runs on those rows plus zero rows up to a multiple of `OUTPUT_ROWS`
    (a few fixed shapes for its matmuls; the extra rows carry no loss); `grad_scale`: what the loss
    will be multiplied by before its backward (see OutputLoss)."""
    mask = tgt_out != PAD_ID  # (B, T)
    rows = att[mask]  # (tokens, E)
    if pad_rows and rows.size(0) % OUTPUT_ROWS:
        rows = torch.cat([rows, rows.new_zeros(OUTPUT_ROWS - rows.size(0) % OUTPUT_ROWS, rows.size(1))])
    weight, bias = model.out.weight, model.out.bias
    if not torch.is_grad_enabled():  # validation: the forward sees only requires_grad, so no gradient is made
        weight, bias = weight.detach(), bias.detach()
    return OutputLoss.apply(model.dropout(rows), weight, bias, tgt_out[mask], label_smoothing, grad_scale)


class TrainingLoss(nn.Module):
    """The summed training loss of a batch as a module's forward (the module DDP wraps)."""

    def __init__(self, model: Seq2Seq, cfg: TrainConfig) -> None:
        super().__init__()
        self.model, self.label_smoothing, self.teacher_forcing = model, cfg.label_smoothing, cfg.teacher_forcing
        self.pad_rows = bool(cfg.bucket_tokens)

    def forward(self, batch: Batch, grad_scale: float = 1.0) -> Tensor:
        """The summed loss; `grad_scale`: the factor its backward will bring (see OutputLoss)."""
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
    grad_scale = float(scale)  # the loss's gradient is made already scaled by it (fp16: a tensor, one host sync)
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
