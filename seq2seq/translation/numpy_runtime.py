"""Translation without torch: the trained network in NumPy, searched by search.py.

`seq2seq export` writes a checkpoint's weights (float32), model config and both SentencePiece
models into one `.npz` of plain arrays (loaded with `allow_pickle=False`: it can
hold no code). `Network` is a search engine (search.py): `RuntimeTranslator` translates with
the same search, batching and order restoring as the torch `Translator`. `seq2seq translate
--checkpoint model.npz` uses it and never imports torch, whose import alone takes 1.3-1.8 s on
a 2-core machine: a whole translation process starts in about 0.2 s instead.

It computes in float32 like the reference path, with its own kernels (OpenBLAS through NumPy
instead of oneDNN), so scores agree to rounding and outputs are identical except where two
candidates are within rounding of each other; tests/test_runtime.py pins it to the torch path.
Decoding only, in fp32: no bf16 (that stays with `Translator`).

Shapes as in model.py: B batch, S source length, N search rows, E emb_size, V target pieces.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..atomic import atomic_write, check_output
from ..config import ConfigError, DecodeConfig, ModelConfig, from_dict
from ..errors import CheckpointError
from ..ids import PAD_ID
from ..tokenizer import Tokenizer
from .base import Translating

FORMAT = "seq2seq-runtime"
MARKER = "format"  # the array that marks this file (checkpoint.EXPORTED_MARKERS names it too)
VERSION = 1
TABLE_MAX_BYTES = 64 << 20  # precompute embedding x input weights for all target pieces up to this size


def is_runtime_model(path: str | Path) -> bool:
    """True for a file written by `export_runtime` (an .npz holding a `format` array)."""
    try:
        with zipfile.ZipFile(path) as z:
            return f"{MARKER}.npy" in z.namelist()
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

    def encode(self, src_ids: list[list[int]]) -> tuple[Memory, State]:
        """The search engine's encode (search.py): memory and initial state for EOS-terminated sources."""
        lens = np.array([len(s) for s in src_ids])
        src = np.full((len(src_ids), lens.max()), PAD_ID, dtype=np.int64)
        for row, s in enumerate(src_ids):
            src[row, : len(s)] = s
        return self.encode_padded(src, lens)

    def select(self, obj: Memory | State, rows: np.ndarray) -> Memory | State:
        return obj.select(rows)

    def footprint(self, src_len: int) -> tuple[int, int]:
        """The vocabulary and the bytes per searched row (search.check_search)."""
        vocab = self.out_b.shape[0]
        return vocab, self.cfg.decode_row_bytes(src_len, vocab)

    def encode_padded(self, src: np.ndarray, lens: np.ndarray) -> tuple[Memory, State]:
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

    def step(self, prev: np.ndarray, state: State, memory: Memory) -> tuple[np.ndarray, State, np.ndarray]:
        """Log-probs (N, V) of the next piece after pieces `prev` (N,), the new state, attention (N, S)."""
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
        top = logits.max(axis=1, keepdims=True)
        logits -= top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True))  # log-softmax in place
        return logits, State(rnn, att if self.feed_w is not None else None), weights


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
            if str(arrays[MARKER]) != FORMAT or version > VERSION:
                found = f"{arrays['format']} v{version}"
                raise CheckpointError(f"{path}: runtime model format {found}; this seq2seq reads {FORMAT} v{VERSION}")
            cfg = from_dict(ModelConfig, json.loads(str(arrays["model_config"])))
            weights = {name[2:]: a for name, a in arrays.items() if name.startswith("w.")}
            src_tok, tgt_tok = Tokenizer(arrays["src_spm"].tobytes()), Tokenizer(arrays["tgt_spm"].tobytes())
            net = Network(cfg, weights)
            langs = [str(arrays[key]) if key in arrays else None for key in ("src_lang", "tgt_lang")]
        except CheckpointError:
            raise
        except (KeyError, ValueError, TypeError, IndexError, OSError, zipfile.BadZipFile, ConfigError) as err:
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CheckpointError(f"{path}: incomplete or corrupt runtime model ({msg})") from None
        translator = cls(net, src_tok, tgt_tok)
        translator.src_lang, translator.tgt_lang = langs
        return translator

    def search_engine(self, cfg: DecodeConfig) -> Network:
        """The network itself is the engine; settings it cannot run are a ConfigError."""
        self.check(cfg)
        return self.net

    def check(self, cfg: DecodeConfig) -> None:
        """The runtime decodes in fp32 (`auto` means fp32 here), with a beam no wider than the vocabulary."""
        cfg.check_vocab(len(self.tgt_tok))
        if cfg.precision not in ("auto", "fp32"):
            raise ConfigError("the NumPy runtime decodes in fp32: use the .pt checkpoint for --precision bf16")


def export_runtime(checkpoint: str | Path, out: str | Path) -> Path:
    """Write this engine's model file from a torch checkpoint: float32 weights, model config, tokenizers.

    Reading the checkpoint imports torch; translating with the file written here does not."""
    from ..checkpoint import check_vocab, read_model

    out = Path(out)
    if out.suffix != ".npz":
        raise CheckpointError(f"{out}: the runtime model file must end in .npz")
    check_output(out, inputs=[checkpoint], make_folder=True)  # before reading: a folder, or the checkpoint itself
    model = read_model(checkpoint)
    check_vocab(checkpoint, model)
    try:
        arrays = {f"w.{name}": t.float().numpy() for name, t in model.state_dict.items()}
        arrays |= {
            MARKER: np.array(FORMAT),
            "version": np.array(VERSION),
            "model_config": np.array(json.dumps(model.model_config)),
            "src_spm": np.frombuffer(model.src_spm, dtype=np.uint8),
            "tgt_spm": np.frombuffer(model.tgt_spm, dtype=np.uint8),
            "src_lang": np.array(model.src_lang),
            "tgt_lang": np.array(model.tgt_lang),
        }
    except (AttributeError, TypeError) as err:
        raise CheckpointError(f"{checkpoint}: incomplete checkpoint, cannot export it ({err})") from None
    with atomic_write(out, "wb") as f:  # a file object: np.savez adds no .npz to its name
        np.savez(f, **arrays)
    return out
