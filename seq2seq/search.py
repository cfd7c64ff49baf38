"""Greedy and batched beam search over a small step interface.

Anything with `step(prev_ids (N,), state, memory) -> (log_probs (N, V), state, attention (N, S))`
can be searched, where `state` and `memory` have `.select(row_index)`; `Seq2Seq` is one, the
tests script another. All sentences of a batch and all their beams live in one tensor; a
sentence leaves the batch as soon as its search is over.

Scores: a finished hypothesis of `n` tokens (EOS included) with log-probability `lp` scores
`lp / n ** length_penalty`. With `stopping="bound"` beam search stops a sentence only when no
live hypothesis can beat its n-best finished ones under that penalty (the beam's exact result;
with a length penalty > 0 the bound is loose, so most sentences run to the length limit);
with `stopping="beam"` also as soon as `beam_size` hypotheses have finished (fairseq's rule).
Either way the length limit ends a sentence, with EOS forced.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
from torch import Tensor

from .base import Hypothesis
from .tokenizer import BOS_ID, EOS_ID


class Stepper(Protocol):
    def step(self, prev_ids: Tensor, state: Any, memory: Any) -> tuple[Tensor, Any, Tensor]: ...


def _force_eos(log_probs: Tensor, rows: Tensor) -> None:
    """At the length limit only EOS may follow (its own log-probability is kept)."""
    if rows.any():
        eos = log_probs[rows, EOS_ID].clone()
        log_probs[rows] = -math.inf
        log_probs[rows, EOS_ID] = eos


def greedy_search(
    model: Stepper,
    memory: Any,
    state: Any,
    max_lens: Tensor,
    length_penalty: float = 0.0,
    keep_attention: bool = False,
) -> list[Hypothesis]:
    """Pick the most probable piece at every step; `max_lens` (B,) caps output lengths."""
    batch = max_lens.size(0)
    sent = torch.arange(batch, device=max_lens.device)  # original index of each live row
    tokens = torch.full((batch, 1), BOS_ID, dtype=torch.long, device=max_lens.device)  # (B, t)
    scores = torch.zeros(batch, device=max_lens.device)
    attn: list[Tensor] = []  # per step (B_live, S), rows follow `tokens`
    out: list[Hypothesis | None] = [None] * batch
    for t in range(1, int(max_lens.max()) + 1):
        log_probs, state, weights = model.step(tokens[:, -1], state, memory)
        _force_eos(log_probs, max_lens[sent] <= t)
        step_lp, tok = log_probs.max(dim=-1)  # (B,)
        scores = scores + step_lp
        tokens = torch.cat([tokens, tok[:, None]], dim=1)
        if keep_attention:
            attn.append(weights.float())  # float32 maps whatever the autocast precision
        ended = tok == EOS_ID
        for row in ended.nonzero().flatten().tolist():
            lp = scores[row].item()
            att = torch.stack([a[row] for a in attn]) if keep_attention else None
            out[sent[row]] = Hypothesis(tokens[row, 1:-1].tolist(), lp / t**length_penalty, lp, att)
        if ended.all():
            break
        if ended.any():
            keep = (~ended).nonzero().flatten()
            state, memory = state.select(keep), memory.select(keep)
            sent, tokens, scores = sent[keep], tokens[keep], scores[keep]
            attn = [a[keep] for a in attn]
    return out  # type: ignore[return-value]


def _bound(best_live: Tensor, length: int, max_lens: Tensor, length_penalty: float) -> Tensor:
    """The best normalised score any continuation of each sentence's live hypotheses could still reach."""
    best_live = best_live.double()  # as exact as the Python-float scores of finished hypotheses
    final_len = max_lens.double() if length_penalty >= 0 else torch.full_like(best_live, length + 1)
    return best_live / final_len**length_penalty  # log-probs only fall; -inf stays -inf


def beam_search(
    model: Stepper,
    memory: Any,
    state: Any,
    max_lens: Tensor,
    beam_size: int,
    length_penalty: float = 1.0,
    n_best: int = 1,
    keep_attention: bool = False,
    stopping: str = "bound",
) -> list[list[Hypothesis]]:
    """Beam search for a batch; returns the `n_best` hypotheses of each sentence, best first."""
    if stopping not in ("bound", "beam"):
        raise ValueError(f"stopping must be 'bound' or 'beam', got {stopping!r}")
    batch, k, device = max_lens.size(0), beam_size, max_lens.device
    rows = torch.arange(batch, device=device).repeat_interleave(k)
    memory, state = memory.select(rows), state.select(rows)
    sent = torch.arange(batch, device=device)  # original index of each live sentence
    scores = torch.full((batch, k), -math.inf, device=device)  # raw log-probs (b, K)
    scores[:, 0] = 0.0
    tokens = torch.full((batch * k, 1), BOS_ID, dtype=torch.long, device=device)  # (b*K, t)
    attn = torch.zeros(batch * k, 0, memory.mask.size(1), device=device) if keep_attention else None
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    nth_best = torch.full((batch,), -math.inf, dtype=torch.float64, device=device)  # n_best-th finished score
    n_finished = torch.zeros(batch, dtype=torch.long, device=device)
    for t in range(1, int(max_lens.max()) + 1):
        log_probs, state, weights = model.step(tokens[:, -1], state, memory)  # (b*K, V)
        b, vocab = scores.size(0), log_probs.size(1)
        forced = max_lens[sent] <= t  # (b,)
        _force_eos(log_probs, forced.repeat_interleave(k))
        cand = (scores.view(-1, 1) + log_probs).view(b, k * vocab)
        top_s, top_i = cand.topk(min(2 * k, k * vocab), dim=1)  # (b, 2K), best first
        top_beam, top_tok = top_i // vocab, top_i % vocab
        if attn is not None:
            attn = torch.cat([attn, weights[:, None].float()], dim=1)
        # EOS among the K best candidates ends a hypothesis.
        is_eos = top_tok == EOS_ID
        ends = is_eos[:, :k] & torch.isfinite(top_s[:, :k])
        if ends.any():
            for bi, r in ends.nonzero().tolist():
                row, lp = bi * k + top_beam[bi, r].item(), top_s[bi, r].item()
                att = attn[row] if attn is not None else None
                finished[sent[bi]].append(Hypothesis(tokens[row, 1:].tolist(), lp / t**length_penalty, lp, att))
            n_finished.index_add_(0, sent, ends.sum(dim=1))
            for si in sent[ends.any(dim=1)].tolist():
                if len(finished[si]) >= n_best:
                    nth_best[si] = sorted(h.score for h in finished[si])[-n_best]
        # The K best candidates that do not end live on.
        live_s, live_r = top_s.masked_fill(is_eos, -math.inf).topk(k, dim=1)  # (b, K)
        src_rows = (torch.arange(b, device=device)[:, None] * k + top_beam.gather(1, live_r)).flatten()
        tokens = torch.cat([tokens[src_rows], top_tok.gather(1, live_r).view(-1, 1)], dim=1)
        state, scores = state.select(src_rows), live_s
        if attn is not None:
            attn = attn[src_rows]
        nth = nth_best[sent]
        done = forced | ((nth > -math.inf) & (nth >= _bound(scores[:, 0], t, max_lens[sent], length_penalty)))
        if stopping == "beam":
            done |= n_finished[sent] >= k
        if done.all():
            break
        if done.any():
            keep = (~done).nonzero().flatten()
            keep_rows = (keep[:, None] * k + torch.arange(k, device=device)).flatten()
            state, memory, tokens = state.select(keep_rows), memory.select(keep_rows), tokens[keep_rows]
            sent, scores = sent[keep], scores[keep]
            if attn is not None:
                attn = attn[keep_rows]
    return [sorted(fin, key=lambda h: -h.score)[:n_best] for fin in finished]
