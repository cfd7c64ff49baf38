"""Ensembles: several models with one vocabulary, searched as one (`seq2seq translate --checkpoint A B C`).

`EnsembleEngine` wraps any search engines (search.py): the torch model's `TorchEngine` and the ONNX
`OnnxEngine` alike, since all the search sees is NumPy log-probs. It imports neither torch nor the
model: an ensemble of exported models translates without torch, and `.pt` and ONNX members mix freely.
`EnsembleTranslator` is its text side, built from loaded translators (`load_translator` with
several paths), which must share both SentencePiece models and languages.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import ConfigError, DecodeConfig
from ..errors import CheckpointError
from ..search_budget import engine_batch_size
from .base import Translating

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from ..search import Engine


class EnsembleEngine:
    """Several engines as one: the next piece is scored with the mean of the members' log-probs.

    Each step returns (log p_1 + ... + log p_N) / N, summed in float32 in member order: a log-linear
    mix (the log of the members' geometric mean), not renormalised, so its exponentials sum to at
    most 1 per row. Hypothesis scores are sums of these, that is the mean of the members' own
    sequence log-probabilities (then length-normalised as usual). One member gives exactly its
    own log-probs, a model twice exactly that model's. Attention is the mean of the members'
    weights; memory and state are tuples with one entry per member, and `select` takes the same
    rows of each. The members must score the same target vocabulary (`EnsembleTranslator`
    checks it).
    """

    def __init__(self, engines: Sequence[Engine]) -> None:
        if not engines:
            raise ValueError("an ensemble needs at least one engine")
        self.engines = tuple(engines)

    def encode(self, src_ids: list[list[int]]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        memories, states = [], []
        for engine in self.engines:
            memory, state = engine.encode(src_ids)
            memories.append(memory)
            states.append(state)
        return tuple(memories), tuple(states)

    def step(
        self, prev_ids: np.ndarray, state: tuple[Any, ...], memory: tuple[Any, ...]
    ) -> tuple[np.ndarray, tuple[Any, ...], np.ndarray]:
        outs = [engine.step(prev_ids, s, m) for engine, s, m in zip(self.engines, state, memory)]
        log_probs = _mean([out[0] for out in outs])
        weights = _mean([out[2] for out in outs])
        return log_probs, tuple(out[1] for out in outs), weights

    def select(self, obj: tuple[Any, ...], rows: np.ndarray) -> tuple[Any, ...]:
        return tuple(engine.select(part, rows) for engine, part in zip(self.engines, obj))

    @property
    def batch_size(self) -> int:
        """The smallest of the members' own batch sizes (search_budget.check_search)."""
        return min(engine_batch_size(e) for e in self.engines)

    def footprint(self, src_len: int) -> tuple[int, int]:
        """The members' vocabulary and their bytes per searched row together, plus the mean's log-probs."""
        sizes = [e.footprint(src_len) if hasattr(e, "footprint") else (0, 0) for e in self.engines]
        vocab = max(v for v, _ in sizes)
        return vocab, sum(b for _, b in sizes) + 4 * vocab


def _mean(arrays: Sequence[Any]) -> np.ndarray:
    """The float32 mean of equally shaped arrays, as a new array (the search writes into what step returns)."""
    total = np.array(arrays[0], dtype=np.float32)  # a copy
    for a in arrays[1:]:
        total += np.asarray(a, dtype=np.float32)
    if len(arrays) > 1:
        total /= np.float32(len(arrays))
    return total


def check_same_vocabulary(members: Sequence[Translating], names: Sequence[str]) -> None:
    """Every member must have the first one's languages (where both files say) and SentencePiece
    models, byte for byte: else one CheckpointError naming both files and the side that differs."""
    first, first_name = members[0], names[0]
    for member, name in zip(members[1:], names[1:]):
        for side, lang, theirs in (("source", first.src_lang, member.src_lang),
                                   ("target", first.tgt_lang, member.tgt_lang)):  # fmt: skip
            if lang and theirs and lang != theirs:
                raise CheckpointError(
                    f"{name}: {side} language {theirs}, but {first_name} has {lang}: ensembled models share languages"
                )
        for side, tok, other in (("source", first.src_tok, member.src_tok), ("target", first.tgt_tok, member.tgt_tok)):
            if tok.model_proto != other.model_proto:
                raise CheckpointError(
                    f"{name}: its {side} vocabulary (SentencePiece model) differs from {first_name}'s: "
                    "ensembled models must share both vocabularies"
                )


class EnsembleTranslator(Translating):
    """Translating with the mean of several models' log-probs (`EnsembleEngine`); N models take
    about N times as long as one. `names` (default `model 1`, ...) name the members in errors."""

    engine = "ensemble"

    def __init__(self, members: Sequence[Translating], names: Sequence[str | Path] | None = None) -> None:
        if not members:
            raise ConfigError("an ensemble needs at least one model")
        if stray := next((m for m in members if not hasattr(m, "search_engine")), None):  # a path, say
            raise TypeError(f"an ensemble's members are loaded translators (load_translator takes paths), got "
                            f"{type(stray).__name__} {str(stray)[:60]!r}")  # fmt: skip
        self.members = tuple(members)
        self.names = [str(n) for n in names or [f"model {i}" for i in range(1, len(members) + 1)]]
        if len(self.names) != len(self.members):
            raise ValueError(f"{len(self.members)} models but {len(self.names)} names")
        check_same_vocabulary(self.members, self.names)
        first = self.members[0]
        self.src_tok, self.tgt_tok = first.src_tok, first.tgt_tok
        self.src_lang, self.tgt_lang = first.src_lang, first.tgt_lang

    def _member_cfg(self, member: Translating, cfg: DecodeConfig) -> DecodeConfig:
        """With torch members, `--precision fp32` is theirs: an ONNX member (int8 alone refuses it) runs
        its file's precision beside them."""
        theirs = member.engine == "onnx" and cfg.precision == "fp32" and any(m.engine == "torch" for m in self.members)
        return dataclasses.replace(cfg, precision="auto") if theirs else cfg

    def check(self, cfg: DecodeConfig) -> None:
        """What every member can run."""
        for member in self.members:
            member.check(self._member_cfg(member, cfg))

    def search_engine(self, cfg: DecodeConfig) -> EnsembleEngine:
        """The members' engines as one; settings a member cannot run are one-line errors."""
        self.check(cfg)
        return EnsembleEngine([member.search_engine(self._member_cfg(member, cfg)) for member in self.members])

    def describe(self, cfg: DecodeConfig | None = None) -> dict[str, Any]:
        """As for one model, with `engine` saying `ensemble of N models (torch, numpy)` and the member files."""
        parts = [member.describe(cfg) for member in self.members]
        engines = ", ".join(dict.fromkeys(str(p["engine"]) for p in parts))
        where = {key: ", ".join(dict.fromkeys(str(p[key]) for p in parts)) for key in ("device", "precision")}
        return {
            "engine": f"ensemble of {len(parts)} models ({engines})",
            "models": list(self.names),
            "src_lang": self.src_lang,
            "tgt_lang": self.tgt_lang,
            **where,
        }
