"""Translation without torch: the trained network and its searches in NumPy.

`seq2seq export` writes a checkpoint's weights (float32), model config and both SentencePiece
models into one `.npz` of plain arrays (loaded with `allow_pickle=False`: it can
hold no code). `RuntimeTranslator` reads it and translates with the rules of search.py:
same batching, length limits, scores, stopping and n-best lists. `seq2seq translate
--checkpoint model.npz` uses it and never imports torch, whose import alone takes 1.3-1.8 s on
a 2-core machine: a whole translation process starts in about 0.2 s instead.

It computes in float32 like the reference path, with its own kernels (OpenBLAS through NumPy
instead of oneDNN), so scores agree to rounding and outputs are identical except where two
candidates are within rounding of each other; tests/test_runtime.py pins it to the torch path.
Decoding only: no attention maps, bf16 or shortlist (those stay with `Translator`).

Shapes as in model.py: B batch, S source length, N search rows, E emb_size, V target pieces.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .base import CheckpointError, Hypothesis, Translating
from .config import ConfigError, DecodeConfig, ModelConfig, from_dict
from .tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer

FORMAT = "seq2seq-runtime"
VERSION = 1
TABLE_MAX_BYTES = 64 << 20  # precompute embedding x input weights for all target pieces up to this size


def is_runtime_model(path: str | Path) -> bool:
    """True for a file written by `export_runtime` (an .npz holding a `format` array)."""
    try:
        with zipfile.ZipFile(path) as z:
            return "format.npy" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.tanh(x * 0.5) * 0.5 + 0.5  # = 1 / (1 + exp(-x)), one vectorised tanh


class Cell:
    """One RNN layer (torch's gate order and weight layout): LSTM, GRU or tanh RNN."""

    def __init__(self, kind: str, w: dict[str, np.ndarray], prefix: str, suffix: str = "_l0") -> None:
        self.kind = kind
        self.w_ih = np.ascontiguousarray(w[f"{prefix}weight_ih{suffix}"].T)  # (I, G*H)
        self.w_hh = np.ascontiguousarray(w[f"{prefix}weight_hh{suffix}"].T)  # (H, G*H)
        b_ih, b_hh = w[f"{prefix}bias_ih{suffix}"], w[f"{prefix}bias_hh{suffix}"]
        # GRU keeps the hidden bias inside r * (W_hn h + b_hn); the others add both biases to the input part
        self.b_in, self.b_hid = (b_ih, b_hh) if kind == "gru" else (b_ih + b_hh, None)
        self.hidden = self.w_hh.shape[0]

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """The input part of the gates, (..., I) -> (..., G*H), biases included (one 2-D GEMM)."""
        return (x.reshape(-1, x.shape[-1]) @ self.w_ih + self.b_in).reshape(*x.shape[:-1], -1)

    def step(self, x_in: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """New (h,) or (h, c) from the input part (N, G*H) and the previous state."""
        h, hid = state[0], state[0] @ self.w_hh  # hid is a fresh array: added to in place below
        if self.kind == "lstm":
            hid += x_in
            i, f, g, o = np.split(hid, 4, axis=1)
            c = _sigmoid(f) * state[1] + _sigmoid(i) * np.tanh(g)
            return _sigmoid(o) * np.tanh(c), c
        if self.kind == "gru":
            hid += self.b_hid
            (xr, xz, xn), (hr, hz, hn) = np.split(x_in, 3, axis=1), np.split(hid, 3, axis=1)
            z, n = _sigmoid(xz + hz), np.tanh(xn + _sigmoid(xr + hr) * hn)
            return (n + z * (h - n),)
        hid += x_in
        return (np.tanh(hid),)


class Memory(NamedTuple):
    states: np.ndarray  # (B, S, 2He)
    keys: np.ndarray  # (B, S, K)
    mask: np.ndarray  # (B, S) True at real source tokens

    def select(self, idx: np.ndarray) -> Memory:
        return Memory(*(t[idx] for t in self))


class State(NamedTuple):
    rnn: list[tuple[np.ndarray, ...]]  # per decoder layer: (h, c) for LSTM, (h,) otherwise, each (N, Hd)
    feed: np.ndarray | None  # (N, E) previous attentional vector when input feeding

    def select(self, idx: np.ndarray) -> State:
        return State(
            [tuple(t[idx] for t in layer) for layer in self.rnn], None if self.feed is None else self.feed[idx]
        )


class Network:
    """The inference half of model.Seq2Seq (eval mode: no dropout) over a state dict of arrays."""

    def __init__(self, cfg: ModelConfig, w: dict[str, np.ndarray]) -> None:
        self.cfg = cfg
        self.src_embed, self.tgt_embed = w["encoder.embed.weight"], w["decoder.embed.weight"]
        self.enc = [[Cell(cfg.cell, w, f"encoder.layers.{i}.{d}.") for d in range(2)] for i in range(cfg.enc_layers)]
        self.dec = [Cell(cfg.cell, w, "decoder.rnn.", f"_l{i}") for i in range(cfg.dec_layers)]
        self.bridges = [(w["bridge_h.weight"].T, w["bridge_h.bias"])]
        if cfg.cell == "lstm":
            self.bridges.append((w["bridge_c.weight"].T, w["bridge_c.bias"]))
        self.key_proj = None if cfg.attention == "dot" else w["decoder.attention.key_proj.weight"].T
        if cfg.attention == "bahdanau":
            self.query_proj = (w["decoder.attention.query_proj.weight"].T, w["decoder.attention.query_proj.bias"])
            self.v = w["decoder.attention.v.weight"][0]  # (Hd,)
        combine = w["decoder.combine.weight"]  # (E, Hd + 2He)
        self.combine_h = np.ascontiguousarray(combine[:, : cfg.dec_hidden].T)
        self.combine_c = np.ascontiguousarray(combine[:, cfg.dec_hidden :].T)
        self.out_w, self.out_b = np.ascontiguousarray(w["out.weight"].T), w["out.bias"]  # (E, V), (V,)
        # The first layers' input parts for every piece, looked up instead of multiplied.
        first, emb = self.dec[0], cfg.emb_size
        self.emb_table = None
        if self.tgt_embed.shape[0] * first.w_ih.shape[1] * 4 <= TABLE_MAX_BYTES:
            self.emb_table = self.tgt_embed @ first.w_ih[:emb] + first.b_in
        self.src_tables = []
        if 2 * self.src_embed.shape[0] * self.enc[0][0].w_ih.shape[1] * 4 <= TABLE_MAX_BYTES:
            self.src_tables = [self.src_embed @ cell.w_ih + cell.b_in for cell in self.enc[0]]
        self.feed_w = first.w_ih[emb:] if cfg.input_feeding else None

    def encode(self, src: np.ndarray, lens: np.ndarray) -> tuple[Memory, State]:
        """Memory and the decoder's initial state for padded source ids (B, S) with lengths (B,)."""
        batch, length = src.shape
        pos = np.arange(length)[None, :]
        rev = np.where(pos < lens[:, None], lens[:, None] - 1 - pos, pos)  # reverse within each length
        rows = np.arange(batch)[:, None]
        x = self.src_embed[src]  # (B, S, E)
        for i, (fwd, bwd) in enumerate(self.enc):
            if i == 0 and self.src_tables:  # looked up, not multiplied
                in_f, in_b = self.src_tables[0][src], self.src_tables[1][src[rows, rev]]
            else:
                in_f, in_b = fwd.inputs(x), bwd.inputs(x[rows, rev])
            out_f, out_b = _run(fwd, in_f), _run(bwd, in_b)[rows, rev]
            x = np.concatenate([out_f, out_b], axis=2)  # (B, S, 2He)
        mask = pos < lens[:, None]
        states = x * mask[:, :, None]
        final = np.concatenate([out_f[np.arange(batch), lens - 1], out_b[:, 0]], axis=1)  # (B, 2He)
        init = [np.tanh(final @ wt + b) for wt, b in self.bridges]  # (B, Hd) each
        rnn = [tuple(init) for _ in self.dec]
        feed = np.zeros((batch, self.cfg.emb_size), np.float32) if self.cfg.input_feeding else None
        keys = states if self.key_proj is None else states @ self.key_proj
        return Memory(states, keys, mask), State(rnn, feed)

    def step(self, prev: np.ndarray, state: State, memory: Memory) -> tuple[np.ndarray, np.ndarray, State]:
        """Output scores (N, V) and their log-sum-exp (N,) after pieces `prev` (N,), and the new state."""
        if self.emb_table is not None:
            x_in = self.emb_table[prev]
        else:
            x_in = self.tgt_embed[prev] @ self.dec[0].w_ih[: self.cfg.emb_size] + self.dec[0].b_in
        if self.feed_w is not None:
            x_in = x_in + state.feed @ self.feed_w
        rnn = []
        for i, cell in enumerate(self.dec):
            layer = cell.step(x_in if i == 0 else cell.inputs(rnn[-1][0]), state.rnn[i])
            rnn.append(layer)
        h = rnn[-1][0]  # (N, Hd)
        if self.cfg.attention == "bahdanau":
            query = h @ self.query_proj[0] + self.query_proj[1]
            scores = np.tanh(memory.keys + query[:, None, :]) @ self.v  # (N, S)
        else:
            scores = np.einsum("nsk,nk->ns", memory.keys, h)
        scores[~memory.mask] = -np.inf
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights = scores / scores.sum(axis=1, keepdims=True)
        context = np.einsum("ns,nsk->nk", weights, memory.states)  # (N, 2He)
        att = np.tanh(h @ self.combine_h + context @ self.combine_c)  # (N, E)
        logits = att @ self.out_w + self.out_b  # (N, V)
        top = logits.max(axis=1)
        lse = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
        return logits, lse, State(rnn, att if self.feed_w is not None else None)


def _run(cell: Cell, x_in: np.ndarray) -> np.ndarray:
    """Outputs (B, S, H) of one direction over precomputed input parts (B, S, G*H), from a zero state."""
    batch, length, _ = x_in.shape
    zero = np.zeros((batch, cell.hidden), np.float32)
    state: tuple[np.ndarray, ...] = (zero, zero) if cell.kind == "lstm" else (zero,)
    out = np.empty((batch, length, cell.hidden), np.float32)
    for t in range(length):
        state = cell.step(x_in[:, t], state)
        out[:, t] = state[0]
    return out


def greedy_search(
    net: Network, memory: Memory, state: State, max_lens: np.ndarray, length_penalty: float
) -> list[Hypothesis]:
    """search.greedy_search in NumPy: the most probable piece at every step, EOS forced at the limit."""
    batch, limit = len(max_lens), int(max_lens.max())
    sent = np.arange(batch)  # original index of each live row
    tokens = np.full((batch, limit + 1), BOS_ID, dtype=np.int64)
    scores = np.zeros(batch, np.float32)
    out: list[Hypothesis | None] = [None] * batch
    for t in range(1, limit + 1):
        logits, lse, state = net.step(tokens[:, t - 1], state, memory)
        tok = logits.argmax(axis=1)
        tok[max_lens[sent] <= t] = EOS_ID
        scores = scores + (logits[np.arange(len(tok)), tok] - lse)
        tokens[:, t] = tok
        ended = tok == EOS_ID
        for row in np.flatnonzero(ended).tolist():
            lp = float(scores[row])
            out[sent[row]] = Hypothesis(tokens[row, 1:t].tolist(), lp / t**length_penalty, lp, None)
        if ended.all():
            break
        if ended.any():
            keep = np.flatnonzero(~ended)
            state, memory, sent, tokens, scores = (
                state.select(keep),
                memory.select(keep),
                sent[keep],
                tokens[keep],
                scores[keep],
            )
    return out


def _topk(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest values of each row, best first, and their column indices.

    Wide rows are cut into 16-way groups (columns equal modulo width / 16, so that the group
    maxima are one vectorised reduction). The k groups with the largest maxima hold the k
    largest values: the k-th largest value is at least the k-th largest group maximum m (those
    maxima are k distinct values), and a value in any other group is at most m. So only 16 k
    candidates per row are sorted; ties may pick other columns of equal value, as torch's topk
    may. Measured 9x faster than np.argpartition on (64, 20000): 1.9 vs 17 ms.
    """
    n, width = x.shape
    blk = 16
    if width % blk or width < 64 * k:
        return _topk_exact(x, k)
    groups = x.reshape(n, blk, width // blk)  # group g: columns g, g + width / blk, ...
    best = np.argpartition(-groups.max(axis=1), k - 1, axis=1)[:, None, :k]  # (n, 1, k) group ids
    cols = (np.arange(blk)[None, :, None] * (width // blk) + best).reshape(n, -1)  # (n, 16 k)
    vals, pos = _topk_exact(np.take_along_axis(groups, best, axis=2).reshape(n, -1), k)
    return vals, np.take_along_axis(cols, pos, axis=1)


def _topk_exact(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if k < x.shape[1]:
        idx = np.argpartition(-x, k - 1, axis=1)[:, :k]
    else:
        idx = np.broadcast_to(np.arange(x.shape[1]), x.shape)
    vals = np.take_along_axis(x, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(idx, order, axis=1)


def beam_search(
    net: Network,
    memory: Memory,
    state: State,
    max_lens: np.ndarray,
    beam_size: int,
    length_penalty: float = 1.0,
    n_best: int = 1,
    stopping: str = "bound",
) -> list[list[Hypothesis]]:
    """search.beam_search in NumPy: the same candidates, finishing rule, bound and n-best lists."""
    batch, k, limit = len(max_lens), beam_size, int(max_lens.max())
    rows = np.repeat(np.arange(batch), k)
    memory, state = memory.select(rows), state.select(rows)
    sent = np.arange(batch)
    scores = np.full((batch, k), -np.inf, np.float32)
    scores[:, 0] = 0.0
    tokens = np.full((batch * k, limit + 1), BOS_ID, dtype=np.int64)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    nth_best = np.full(batch, -np.inf)  # n_best-th finished score (float64, like Python floats)
    n_finished = np.zeros(batch, np.int64)
    for t in range(1, limit + 1):
        logits, lse, state = net.step(tokens[:, t - 1], state, memory)  # (b*K, V)
        b, vocab = scores.shape[0], logits.shape[1]
        forced = max_lens[sent] <= t
        logits -= (lse - scores.reshape(-1))[:, None]  # candidate scores: beam score + log-prob
        if forced.any():
            at_limit = np.repeat(forced, k)
            eos = logits[at_limit, EOS_ID]
            logits[at_limit] = -np.inf
            logits[at_limit, EOS_ID] = eos
        top_s, top_i = _topk(logits.reshape(b, k * vocab), min(2 * k, k * vocab))  # (b, 2K)
        top_beam, top_tok = np.divmod(top_i, vocab)
        is_eos = top_tok == EOS_ID
        ends = is_eos[:, :k] & np.isfinite(top_s[:, :k])
        if ends.any():
            for bi, r in np.argwhere(ends).tolist():
                row, lp = bi * k + int(top_beam[bi, r]), float(top_s[bi, r])
                finished[sent[bi]].append(Hypothesis(tokens[row, 1:t].tolist(), lp / t**length_penalty, lp, None))
            np.add.at(n_finished, sent, ends.sum(axis=1))
            for si in sent[ends.any(axis=1)].tolist():
                if len(finished[si]) >= n_best:
                    nth_best[si] = sorted(h.score for h in finished[si])[-n_best]
        live_r = np.argsort(is_eos, axis=1, kind="stable")[:, :k]  # the K best that do not end, best first
        live_s = np.where(
            np.take_along_axis(is_eos, live_r, axis=1), -np.inf, np.take_along_axis(top_s, live_r, axis=1)
        )
        src_rows = (np.arange(b)[:, None] * k + np.take_along_axis(top_beam, live_r, axis=1)).reshape(-1)
        tokens = tokens[src_rows]
        tokens[:, t] = np.take_along_axis(top_tok, live_r, axis=1).reshape(-1)
        state, scores = state.select(src_rows), live_s
        nth = nth_best[sent]
        final_len = max_lens[sent].astype(np.float64) if length_penalty >= 0 else np.full(b, t + 1.0)
        bound = scores[:, 0].astype(np.float64) / final_len**length_penalty  # log-probs only fall
        done = forced | ((nth > -np.inf) & (nth >= bound))
        if stopping == "beam":
            done |= n_finished[sent] >= k
        if done.all():
            break
        if done.any():
            keep = np.flatnonzero(~done)
            keep_rows = (keep[:, None] * k + np.arange(k)).reshape(-1)
            state, memory, tokens = state.select(keep_rows), memory.select(keep_rows), tokens[keep_rows]
            sent, scores = sent[keep], scores[keep]
    return [sorted(fin, key=lambda h: -h.score)[:n_best] for fin in finished]


class RuntimeTranslator(Translating):
    """`Translator`'s translate/translate_nbest over an exported model, without torch."""

    def __init__(self, net: Network, src_tok: Tokenizer, tgt_tok: Tokenizer) -> None:
        self.net, self.src_tok, self.tgt_tok = net, src_tok, tgt_tok

    @classmethod
    def load(cls, path: str | Path) -> RuntimeTranslator:
        """Read a file written by `seq2seq export`; anything else raises CheckpointError."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such model file")
        if not is_runtime_model(path):
            raise CheckpointError(f"{path}: not a runtime model (write one with `seq2seq export`)")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
            version = int(arrays["version"])
            if str(arrays["format"]) != FORMAT or version > VERSION:
                found = f"{arrays['format']} v{version}"
                raise CheckpointError(f"{path}: runtime model format {found}; this seq2seq reads {FORMAT} v{VERSION}")
            cfg = from_dict(ModelConfig, json.loads(str(arrays["model_config"])))
            weights = {name[2:]: a for name, a in arrays.items() if name.startswith("w.")}
            src_tok, tgt_tok = Tokenizer(arrays["src_spm"].tobytes()), Tokenizer(arrays["tgt_spm"].tobytes())
            net = Network(cfg, weights)
        except CheckpointError:
            raise
        except (KeyError, ValueError, TypeError, IndexError, OSError, zipfile.BadZipFile, ConfigError) as err:
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CheckpointError(f"{path}: incomplete or corrupt runtime model ({msg})") from None
        return cls(net, src_tok, tgt_tok)

    def search(
        self, src_ids: Sequence[Sequence[int]], cfg: DecodeConfig, keep_attention: bool = False, progress: bool = False
    ) -> list[list[Hypothesis]]:
        """translate.search without torch: sort by length, batch, search, restore the input order."""
        if cfg.precision not in ("auto", "fp32") or cfg.shortlist or keep_attention:  # auto: fp32 here
            raise ConfigError(
                "the NumPy runtime decodes in fp32 with the full vocabulary and keeps no attention: "
                "use the .pt checkpoint for --precision bf16, --shortlist or attention maps"
            )
        order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))
        results: list[list[Hypothesis]] = [[] for _ in src_ids]
        from tqdm.std import tqdm  # tqdm.auto costs 0.1 s more to import

        bar = tqdm(total=len(order), desc="translate", unit="sent", disable=not progress, leave=False)
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            seqs = [list(src_ids[i][: cfg.max_src_len]) + [EOS_ID] for i in idx]
            lens = np.array([len(s) for s in seqs])
            src = np.full((len(seqs), lens.max()), PAD_ID, dtype=np.int64)
            for row, s in enumerate(seqs):
                src[row, : len(s)] = s
            # as torch computes it: float32 a * length + b, truncated
            max_lens = (np.float32(cfg.max_len_a) * lens.astype(np.float32) + np.float32(cfg.max_len_b)).astype(
                np.int64
            )
            memory, state = self.net.encode(src, lens)
            if cfg.beam_size == 1:
                hyps = [[h] for h in greedy_search(self.net, memory, state, max_lens, cfg.length_penalty)]
            else:
                hyps = beam_search(
                    self.net, memory, state, max_lens, cfg.beam_size, cfg.length_penalty, cfg.n_best, cfg.stopping
                )
            for i, h in zip(idx, hyps):
                results[i] = h
            bar.update(len(idx))
        bar.close()
        return results
