"""Torch-free pieces shared by the toolkit and the NumPy runtime (`runtime.py`).

Error types, the search result record and strict UTF-8 line reading live here, so that
`seq2seq translate` with an exported runtime model starts without importing torch.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .config import DecodeConfig
    from .tokenizer import Tokenizer


class CorpusError(ValueError):
    """A corpus file that cannot be used as it is; the message names the file and line."""


class CheckpointError(ValueError):
    """A file that is not a loadable seq2seq checkpoint; the message says why in one line."""


class Hypothesis(NamedTuple):
    """One finished output: ids without BOS/EOS, its normalised score and raw log-probability."""

    ids: list[int]
    score: float
    log_prob: float
    attention: Any  # (len(ids) + 1, S) weights per output step (EOS included), or None


def read_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file (\\n or \\r\\n endings); bad bytes are errors naming the line."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    return decode_lines(path.read_bytes(), str(path))


def decode_lines(data: bytes, name: str) -> list[str]:
    """Split UTF-8 bytes into lines; a NUL byte or invalid UTF-8 is an error naming `name:line`."""
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise CorpusError(f"{name}:{line}: NUL byte (is this a binary file?)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise CorpusError(f"{name}:{line}: invalid UTF-8 (byte 0x{data[err.start]:02x})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [s.removesuffix("\r") for s in lines]


def clean(text: str) -> str:
    """Unicode NFC and single spaces between words."""
    return " ".join(unicodedata.normalize("NFC", text).split())


class Translating:
    """Text in, text out around a `search` over piece ids: the part `Translator` (torch) and
    `RuntimeTranslator` (NumPy) share."""

    src_tok: Tokenizer
    tgt_tok: Tokenizer

    def search(
        self, src_ids: Sequence[Sequence[int]], cfg: DecodeConfig, keep_attention: bool = False, progress: bool = False
    ) -> list[list[Hypothesis]]:
        """The n-best hypotheses for each source (piece ids without EOS), in input order."""
        raise NotImplementedError

    def translate_nbest(
        self,
        sentences: Sequence[str],
        cfg: DecodeConfig | None = None,
        keep_attention: bool = False,
        progress: bool = False,
    ) -> list[list[tuple[str, Hypothesis]]]:
        """The n-best (text, hypothesis) pairs per sentence; empty input gives no hypotheses."""
        from .config import DecodeConfig

        texts = [clean(s) for s in sentences]
        live = [i for i, s in enumerate(texts) if s]
        found = self.search(
            self.src_tok.encode([texts[i] for i in live]), cfg or DecodeConfig(), keep_attention, progress
        )
        decoded = iter(self.tgt_tok.decode([h.ids for hyps in found for h in hyps]))  # one batched call
        out: list[list[tuple[str, Hypothesis]]] = [[] for _ in sentences]
        for i, hyps in zip(live, found):
            out[i] = [(next(decoded), h) for h in hyps]
        return out

    def translate(self, sentences: Sequence[str], cfg: DecodeConfig | None = None, progress: bool = False) -> list[str]:
        """One translation per sentence, in order; an empty sentence translates to ''."""
        return [nbest[0][0] if nbest else "" for nbest in self.translate_nbest(sentences, cfg, progress=progress)]
