"""The memory-span lab's GRU, computed with a hand-written backward pass (torch's weights and equations).

torch has no fused GRU kernel on the CPU: nn.GRU records a dozen autograd nodes a step and computes
its weight gradients as two small matrix products a step. At the lab's sizes (hidden 74, batch 64,
hundreds to thousands of steps, one thread) that made a GRU update 1.1-1.6x the oneDNN LSTM's. Here
the state is kept transposed (hidden x batch), so that every gate is a contiguous block of rows;
the input projection of all steps is one batched product; a step forward is one small product and
five element-wise operations; the backward walks the steps in reverse with one small product a
step, and each weight gradient is one large product at the end.

The equations are nn.GRU's (gates r, z, n, its weight layout, its two bias vectors):
    r = s(W_ir x + b_ir + W_hr h + b_hr),  z = s(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h
and tests/test_span_cells.py checks the outputs and every gradient against nn.GRU's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


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
    def backward(ctx: Any, d_out: Tensor, d_hn: Tensor) -> tuple[Tensor | None, ...]:
        xt, acts, gh_n, hs, w_ih, w_hh = ctx.saved_tensors
        hid, steps = w_hh.size(1), acts.size(0)
        dgh = torch.empty_like(acts)  # d(W_h h + b_h) per step; its r, z rows are the input side's too
        dgi_n = torch.empty_like(gh_n)  # d(W_in x + b_in)
        d_whh = w_hh.new_zeros(w_hh.shape)
        w_hh_t = w_hh.t()
        dh = d_hn.t().contiguous()
        for t in reversed(range(steps)):  # per step, not all steps at once: the step's block stays in cache
            dh += d_out[:, t].t()
            a, g = acts[t], dgh[t]
            rz, n, g_rz = a[: 2 * hid], a[2 * hid :], g[: 2 * hid]
            dhz = dh * a[hid : 2 * hid]
            torch.sub(hs[t], n, out=g[hid : 2 * hid]).mul_(dh)  # dz = dh (h - n)
            dn = torch.sub(dh, dhz, out=dgi_n[t])  # dh (1 - z), then through tanh: * (1 - n^2)
            dn.addcmul_(dn * n, n, value=-1)
            torch.mul(dn, gh_n[t], out=g[:hid])  # dr
            torch.mul(dn, a[:hid], out=g[2 * hid :])  # d(W_hn h + b_hn)
            g_rz.mul_(rz).addcmul_(g_rz, rz, value=-1)  # through the sigmoid: * s (1 - s)
            d_whh.addmm_(g, hs[t].t())
            dh = torch.addmm(dhz, w_hh_t, g)
        need = ctx.needs_input_grad
        drz = dgh[:, : 2 * hid]  # the input side's r, z gradients; its n rows are dgi_n
        dx = None
        if need[0]:
            dx = (torch.matmul(w_ih[: 2 * hid].t(), drz) + torch.matmul(w_ih[2 * hid :].t(), dgi_n)).permute(2, 0, 1)
        d_wih = torch.cat((torch.bmm(drz, xt).sum(0), torch.bmm(dgi_n, xt).sum(0))) if need[2] else None
        d_bih = torch.cat((drz.sum((0, 2)), dgi_n.sum((0, 2)))) if need[4] else None
        d_bhh = dgh.sum((0, 2)) if need[5] else None
        return dx, dh.t() if need[1] else None, d_wih, d_whh if need[3] else None, d_bih, d_bhh


def run_rnn(rnn: nn.Module, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
    """`rnn(x, state)`: a one-layer, unidirectional, batch-first nn.GRU with biases is computed here
    (its weights; the same outputs and gradients); any other module (the LSTM: oneDNN's fused
    kernel is faster) runs as itself."""
    if not isinstance(rnn, nn.GRU) or rnn.num_layers != 1 or rnn.bidirectional or not rnn.batch_first or not rnn.bias:
        return rnn(x, state)
    h0 = x.new_zeros(x.size(0), rnn.hidden_size) if state is None else state[0]
    out, hn = _GRU.apply(x, h0, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
    return out, hn.unsqueeze(0)
