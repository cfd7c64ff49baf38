"""The memory-span lab's GRU, computed with a hand-written backward pass (torch's weights and equations).

torch has no fused GRU kernel on the CPU: nn.GRU records a dozen autograd nodes a step and computes
its weight gradients as two small matrix products a step. At the lab's sizes (hidden 74, batch 64,
hundreds to thousands of steps, one thread) that made a GRU update 1.1-1.6x the oneDNN LSTM's. Here
the state is kept transposed (hidden x batch), so that every gate is a contiguous block of rows;
the input projection of all steps is one batched product; a step forward is one small product and
five element-wise operations; the backward walks the steps in reverse, one step's gradients at a
time (a small product for the state's, small products and matrix-vector products that accumulate
the weights' and biases'), so that its working set stays in cache. About twice as fast as nn.GRU
per update at T = 1,000, H = 64 (docs/science.md, the cost study).

The equations are nn.GRU's (gates r, z, n, its weight layout, its two bias vectors):
    r = s(W_ir x + b_ir + W_hr h + b_hr),  z = s(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h
and tests/test_span_cells.py checks the outputs and every gradient against nn.GRU's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


class _GRU(torch.autograd.Function):
    # Layout (T, rows, B), rows a step's gates or state units: each step is one contiguous block, and
    # its gates are contiguous blocks of rows.
    @staticmethod
    def forward(ctx: Any, x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor,
                b_hh: Tensor) -> tuple[Tensor, Tensor]:  # fmt: skip
        batch, steps = x.shape[:2]
        hid = w_hh.size(1)
        xt = x.transpose(0, 1).contiguous()  # (T, B, I)
        # every step's W_i x + b_i, (T, 3H, B); each step's block then becomes (in place) r, z and n
        acts = torch.baddbmm(b_ih.view(1, -1, 1), w_ih.expand(steps, -1, -1), xt.transpose(1, 2))
        hs = x.new_empty(steps + 1, hid, batch)  # h_0 .. h_T
        gh_n = x.new_empty(steps, hid, batch)  # W_hn h + b_hn: what r scales, kept for the backward
        hs[0] = h0.t()
        b_col = b_hh.view(-1, 1)
        for a, h, h_next, ghn in zip(acts.unbind(0), hs[:-1].unbind(0), hs[1:].unbind(0), gh_n.unbind(0)):
            gh = torch.addmm(b_col, w_hh, h)
            a[: 2 * hid].add_(gh[: 2 * hid]).sigmoid_()
            ghn.copy_(gh[2 * hid :])
            n = a[2 * hid :].addcmul_(a[:hid], ghn).tanh_()
            torch.lerp(n, h, a[hid : 2 * hid], out=h_next)
        ctx.save_for_backward(xt, acts, gh_n, hs, w_ih, w_hh)
        return hs[1:].permute(2, 0, 1), hs[-1].t().clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, d_out: Tensor, d_hn: Tensor) -> tuple[Tensor | None, ...]:
        xt, acts, gh_n, hs, w_ih, w_hh = ctx.saved_tensors
        hid, steps, batch = w_hh.size(1), acts.size(0), acts.size(2)
        # One step's gradients at a time, accumulated into the weights' as the steps go: the working set
        # stays in cache, and nothing of the size of the sequence is written.
        g = acts.new_empty(3 * hid, batch)  # d(W_h h + b_h); its r, z rows are d(W_i x + b_i)'s too
        dn = acts.new_empty(hid, batch)  # d(W_in x + b_in)
        g_rz, ones = g[: 2 * hid], acts.new_ones(batch)
        d_wih, d_whh = w_ih.new_zeros(w_ih.shape), w_hh.new_zeros(w_hh.shape)
        d_bhh, d_bin = w_hh.new_zeros(3 * hid), w_hh.new_zeros(hid)
        dxt = xt.new_empty(steps, xt.size(2), batch) if ctx.needs_input_grad[0] else None
        w_hh_t, w_irz_t, w_in_t = w_hh.t(), w_ih[: 2 * hid].t(), w_ih[2 * hid :].t()
        dh = d_hn.t().clone(memory_format=torch.contiguous_format)  # a copy: it is added to in place
        for t in reversed(range(steps)):
            dh += d_out[:, t].t()
            a = acts[t]
            rz, n = a[: 2 * hid], a[2 * hid :]
            dhz = dh * a[hid : 2 * hid]
            torch.sub(hs[t], n, out=g[hid : 2 * hid]).mul_(dh)  # dz = dh (h - n)
            torch.sub(dh, dhz, out=dn)  # dh (1 - z), then through tanh: * (1 - n^2)
            dn.addcmul_(dn * n, n, value=-1)
            torch.mul(dn, gh_n[t], out=g[:hid])  # dr
            torch.mul(dn, a[:hid], out=g[2 * hid :])  # d(W_hn h + b_hn)
            g_rz.mul_(rz).addcmul_(g_rz, rz, value=-1)  # through the sigmoid: * s (1 - s)
            d_whh.addmm_(g, hs[t].t())
            d_wih[: 2 * hid].addmm_(g_rz, xt[t])
            d_wih[2 * hid :].addmm_(dn, xt[t])
            d_bhh.addmv_(g, ones)
            d_bin.addmv_(dn, ones)
            if dxt is not None:
                torch.mm(w_irz_t, g_rz, out=dxt[t]).addmm_(w_in_t, dn)
            dh = torch.addmm(dhz, w_hh_t, g)
        need = ctx.needs_input_grad
        return (None if dxt is None else dxt.permute(2, 0, 1), dh.t() if need[1] else None,
                d_wih if need[2] else None, d_whh if need[3] else None,
                torch.cat((d_bhh[: 2 * hid], d_bin)) if need[4] else None, d_bhh if need[5] else None)  # fmt: skip


def run_rnn(rnn: nn.Module, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
    """`rnn(x, state)`. A one-layer, unidirectional, batch-first nn.GRU with biases, on the CPU, without
    hooks, given a (batch, T >= 1, input) tensor and no state or a (1, batch, hidden) one of x's dtype,
    is computed here when gradients are wanted (its weights; the same outputs and gradients). Anything
    else runs as the module itself: scoring (no gradients), the LSTM (oneDNN's fused kernel is faster),
    and every input nn.GRU would check or reject."""
    if not _hand_written(rnn, x, state):
        return rnn(x, state)
    h0 = x.new_zeros(x.size(0), rnn.hidden_size) if state is None else state[0]
    out, hn = _GRU.apply(x, h0, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
    return out, hn.unsqueeze(0)


def _hand_written(rnn: nn.Module, x: Any, state: Any) -> bool:
    if not isinstance(rnn, nn.GRU) or rnn.num_layers != 1 or rnn.bidirectional or not rnn.batch_first or not rnn.bias:
        return False
    if rnn._forward_hooks or rnn._forward_pre_hooks or not isinstance(x, Tensor) or x.dim() != 3 or x.size(1) < 1:
        return False
    w = rnn.weight_hh_l0
    if x.device.type != "cpu" or w.device.type != "cpu" or x.dtype != w.dtype or x.size(2) != rnn.input_size:
        return False
    if state is not None and (not isinstance(state, Tensor) or state.shape != (1, x.size(0), rnn.hidden_size)
                              or state.dtype != x.dtype or state.device != x.device):  # fmt: skip
        return False
    return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in rnn.parameters()))
