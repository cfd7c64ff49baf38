"""The whole network in one file: embeddings, bidirectional encoder, attention, decoder.

Recurrent state is a value (`DecoderState`) passed in and returned; modules hold parameters only.
The decoder is Luong-style (attend with the current decoder state), so without input feeding
the decoder RNN runs over a whole target sequence in one call; search calls the very same
`Decoder.forward` with T = 1.

Shapes: B batch, S source length, T target length, E emb_size, He encoder hidden per
direction, Hd decoder hidden, L layers, V target vocabulary, N rows in search (B * beam).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn

from .ids import PAD_ID

if TYPE_CHECKING:
    from .config import ModelConfig

RNNS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class Memory(NamedTuple):
    """What the decoder attends to, computed once per source batch."""

    states: Tensor  # (B, S, 2He) encoder outputs
    keys: Tensor  # (B, S, K) attention keys, projected once
    mask: Tensor  # (B, S) True at real source tokens

    def select(self, idx: Tensor) -> Memory:
        return Memory(*(t.index_select(0, idx) for t in self))


class DecoderState(NamedTuple):
    """Recurrent state of the decoder between steps (and between TBPTT chunks)."""

    rnn: tuple[Tensor, ...]  # (L, B, Hd) each: (h, c) for LSTM, (h,) for GRU/RNN
    feed: Tensor | None  # (B, E) previous attentional vector when input feeding, else None

    def select(self, idx: Tensor) -> DecoderState:
        feed = None if self.feed is None else self.feed.index_select(0, idx)
        return DecoderState(tuple(t.index_select(1, idx) for t in self.rnn), feed)

    def detach(self) -> DecoderState:
        feed = None if self.feed is None else self.feed.detach()
        return DecoderState(tuple(t.detach() for t in self.rnn), feed)


def _rnn_state(state: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, Tensor]:
    """The form torch's RNN modules take: (h, c) for LSTM, h otherwise."""
    return state if len(state) == 2 else state[0]


class Dropout(nn.Module):
    """Inverted dropout with a mask from 16 random bits per element (four per 64-bit draw): drops with p
    rounded to 1/65536, scales kept values by 1 / (1 - that p) (itself rounded to bf16 activations).
    2026-12-05, 688k elements: 2.4 ms float32, 1.6 ms bf16; from `rand_like` (one draw each) 4.4 / 4.0."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        dropped = min(round(p * 65536), 65535)  # of the 65,536 values of 16 bits
        self.threshold = dropped - 32768  # keep an element where its signed 16 bits are >= this
        self.scale = 65536 / (65536 - dropped)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)  # all 64 bits
        keep = bits.view(torch.int16)[:n].view(x.shape) >= self.threshold
        return x * keep.to(x.dtype).mul_(self.scale)


class Attention(nn.Module):
    """Additive (Bahdanau) or multiplicative (Luong general / dot) attention."""

    def __init__(self, kind: str, query_size: int, memory_size: int) -> None:
        super().__init__()
        self.kind = kind
        self.key_proj = None if kind == "dot" else nn.Linear(memory_size, query_size, bias=False)
        if kind == "bahdanau":
            self.query_proj = nn.Linear(query_size, query_size)
            self.v = nn.Linear(query_size, 1, bias=False)

    def keys(self, states: Tensor) -> Tensor:
        return states if self.key_proj is None else self.key_proj(states)  # (B, S, K)

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """Context (B, T, 2He) and weights (B, T, S) for queries (B, T, Hd)."""
        if self.kind == "bahdanau":
            hidden = torch.tanh(memory.keys[:, None] + self.query_proj(query)[:, :, None])  # (B, T, S, Hd)
            scores = self.v(hidden).squeeze(-1)  # (B, T, S)
        else:
            scores = torch.bmm(query, memory.keys.transpose(1, 2))  # (B, T, S)
        scores = scores.masked_fill(~memory.mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, T, S)
        return torch.bmm(weights, memory.states), weights  # (B, T, 2He)


def _embedding(vocab_size: int, cfg: ModelConfig) -> nn.Embedding:
    """Embeddings drawn from N(0, cfg.emb_init_std^2), padding row 0. torch draws N(0, 1): with Adam's
    steps of about the learning rate, embeddings that start 4x smaller move 4x faster relative to their
    size, and a fresh model predicts almost uniformly. On the 4-minute recipe 0.25 was worth ~4 BLEU on
    val over N(0, 1); 1/16 stalled on the unigram plateau for some seeds (docs/results.md)."""
    weight = torch.empty(vocab_size, cfg.emb_size).normal_(0.0, cfg.emb_init_std)  # std 1: torch's own draw
    weight[PAD_ID] = 0
    return nn.Embedding(vocab_size, cfg.emb_size, padding_idx=PAD_ID, _weight=weight)


def _reverse_within(x: Tensor, index: Tensor) -> Tensor:
    """Reverse each sequence of (B, S, D) within its own length (padding stays at the end)."""
    return x.gather(1, index[:, :, None].expand(-1, -1, x.size(2)))


class Encoder(nn.Module):
    """Embeddings and a bidirectional multi-layer RNN.

    Each direction is its own one-layer RNN over the padded batch; the backward one reads every
    sentence reversed within its length, so padding always comes last and never reaches a real
    position. (Measured on this CPU: 40 % faster than torch's packed bidirectional RNN, which
    falls back to a step-by-step kernel.)
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        self.embed = _embedding(vocab_size, cfg)
        self.dropout = Dropout(cfg.dropout)
        sizes = [cfg.emb_size] + [2 * cfg.enc_hidden] * (cfg.enc_layers - 1)
        rnn = RNNS[cfg.cell]
        self.layers = nn.ModuleList(
            nn.ModuleList([rnn(size, cfg.enc_hidden, batch_first=True) for _direction in range(2)]) for size in sizes
        )

    def forward(self, src_ids: Tensor, src_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Outputs (B, S, 2He) and the top layer's [last forward; first backward] output (B, 2He)."""
        batch, length = src_ids.shape
        lens = src_lens.to(src_ids.device)
        pos = torch.arange(length, device=src_ids.device)[None, :]  # (1, S)
        rev = torch.where(pos < lens[:, None], lens[:, None] - 1 - pos, pos)  # (B, S)
        x = self.dropout(self.embed(src_ids))  # (B, S, E)
        for i, (fwd, bwd) in enumerate(self.layers):
            if i:
                x = self.dropout(x)
            out_f, _ = fwd(x)  # (B, S, He)
            out_b = _reverse_within(bwd(_reverse_within(x, rev))[0], rev)  # (B, S, He)
            x = torch.cat([out_f, out_b], dim=-1)  # (B, S, 2He)
        rows = torch.arange(batch, device=src_ids.device)
        x = x * (pos < lens[:, None])[:, :, None]  # padded positions carry nothing
        return x, torch.cat([out_f[rows, lens - 1], out_b[:, 0]], dim=-1)


class Decoder(nn.Module):
    """Embeddings, an RNN, attention and the attentional vector tanh(W [h; context])."""

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        self.input_feeding = cfg.input_feeding
        self.embed = _embedding(vocab_size, cfg)
        self.dropout = Dropout(cfg.dropout)
        rnn_in = cfg.emb_size * (2 if cfg.input_feeding else 1)
        self.rnn = RNNS[cfg.cell](
            rnn_in,
            cfg.dec_hidden,
            cfg.dec_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.dec_layers > 1 else 0.0,
        )
        self.attention = Attention(cfg.attention, cfg.dec_hidden, 2 * cfg.enc_hidden)
        self.combine = nn.Linear(cfg.dec_hidden + 2 * cfg.enc_hidden, cfg.emb_size, bias=False)

    def _attend(self, h: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """Attentional vectors (N, T, E) and weights (N, T, S) for decoder outputs h (N, T, Hd).

        N is the memory's B, or a multiple of it in search: then the rows come in groups of N / B
        consecutive rows per sentence (its beams), which attend to their sentence's memory as one
        (B, N / B * T) query block instead of B * beam copies of the memory."""
        n, t = h.shape[:2]
        grouped = h.reshape(memory.states.size(0), -1, h.size(-1))  # (B, N / B * T, Hd)
        context, weights = self.attention(grouped, memory)  # (B, N / B * T, 2He), (B, N / B * T, S)
        att = torch.tanh(self.combine(torch.cat([grouped, context], dim=-1)))
        return att.reshape(n, t, -1), weights.reshape(n, t, -1)  # (N, T, E), (N, T, S)

    def forward(self, tgt_in: Tensor, state: DecoderState, memory: Memory) -> tuple[Tensor, DecoderState, Tensor]:
        """Attentional vectors (B, T, E), the new state, attention weights (B, T, S)."""
        emb = self.dropout(self.embed(tgt_in))  # (B, T, E)
        if not self.input_feeding:  # one fused RNN call over all T steps
            h, rnn = self.rnn(emb, _rnn_state(state.rnn))  # (B, T, Hd)
            att, weights = self._attend(h, memory)
            return att, DecoderState(rnn if isinstance(rnn, tuple) else (rnn,), None), weights
        rnn, feed, atts, all_weights = _rnn_state(state.rnn), state.feed, [], []
        for t in range(emb.size(1)):  # input feeding: step t needs step t-1's attentional vector
            h, rnn = self.rnn(torch.cat([emb[:, t : t + 1], feed[:, None]], dim=-1), rnn)  # (B, 1, Hd)
            att, weights = self._attend(h, memory)  # (B, 1, E)
            feed = att[:, 0]
            atts.append(att)
            all_weights.append(weights)
        rnn_t = rnn if isinstance(rnn, tuple) else (rnn,)
        return torch.cat(atts, 1), DecoderState(rnn_t, feed), torch.cat(all_weights, 1)


class Seq2Seq(nn.Module):
    """Encoder, bridge to the decoder's initial state, decoder and output layer."""

    def __init__(self, cfg: ModelConfig, src_vocab: int, tgt_vocab: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg, src_vocab)
        self.decoder = Decoder(cfg, tgt_vocab)
        self.bridge_h = nn.Linear(2 * cfg.enc_hidden, cfg.dec_hidden)
        self.bridge_c = nn.Linear(2 * cfg.enc_hidden, cfg.dec_hidden) if cfg.cell == "lstm" else None
        self.dropout = Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.emb_size, tgt_vocab)
        if cfg.tie_embeddings:
            self.out.weight = self.decoder.embed.weight

    def encode(self, src_ids: Tensor, src_lens: Tensor) -> tuple[Memory, DecoderState]:
        """Encoder memory and the decoder's initial state for a padded batch (B, S)."""
        states, final = self.encoder(src_ids, src_lens)  # (B, S, 2He), (B, 2He)
        layers = self.cfg.dec_layers

        def init(bridge: nn.Linear) -> Tensor:
            return torch.tanh(bridge(final)).unsqueeze(0).expand(layers, -1, -1).contiguous()  # (L, B, Hd)

        rnn = (init(self.bridge_h),) if self.bridge_c is None else (init(self.bridge_h), init(self.bridge_c))
        feed = states.new_zeros(states.size(0), self.cfg.emb_size) if self.cfg.input_feeding else None
        mask = torch.arange(src_ids.size(1), device=src_ids.device)[None, :] < src_lens[:, None].to(src_ids.device)
        return Memory(states, self.decoder.attention.keys(states), mask), DecoderState(rnn, feed)

    def logits(self, att: Tensor) -> Tensor:
        """Output scores (..., V) from attentional vectors (..., E)."""
        return self.out(self.dropout(att))

    def step(self, prev_ids: Tensor, state: DecoderState, memory: Memory) -> tuple[Tensor, DecoderState, Tensor]:
        """One search step: log-probs (N, V), new state, attention (N, S) given ids (N,)."""
        att, state, weights = self.decoder(prev_ids[:, None], state, memory)
        logits = self.logits(att[:, 0])
        return torch.log_softmax(logits.float(), dim=-1), state, weights[:, 0]


def count_parameters(model: nn.Module) -> int:
    """Number of distinct trainable parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
