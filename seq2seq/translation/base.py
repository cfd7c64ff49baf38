"""The text side of translation, shared by every engine: `Translating` cleans, tokenizes, searches
(search.py, over the engine the subclass provides), detokenizes and keeps the input order; the
str/list API with keyword decode options; and `memory_rows`, how the engines keep one memory row
per sentence's beams. Torch-free, so that translating with an exported model never imports torch.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ..search import search
from ..search_budget import OverBudget, check_search, split_parts
from ..text import clean, has_content

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..config import DecodeConfig
    from ..search import Engine, Hypothesis
    from ..tokenizer import Tokenizer
    from .alignment import Aligned

log = logging.getLogger("seq2seq")


def equal_groups(sents: np.ndarray) -> tuple[np.ndarray, int] | None:
    """(sentences, rows per sentence) when `sents` is each of some sentences repeated equally often in
    consecutive rows, else None. Engines keep one memory row per sentence for such rows (a beam's K
    rows attend to their sentence's memory), instead of K copies."""
    starts = np.flatnonzero(np.r_[True, sents[1:] != sents[:-1]])
    size = len(sents) // len(starts)
    if size * len(starts) != len(sents) or not (np.diff(np.r_[starts, len(sents)]) == size).all():
        return None
    return sents[starts], size


def memory_rows(rows: np.ndarray, group: int, sentences: int) -> tuple[np.ndarray | None, int]:
    """Which rows of a memory of `sentences` rows, each serving `group` consecutive search rows, the
    search's `rows` need, and how many search rows each then serves: (None, size) when every sentence
    stays, in order (the memory is kept, no copy); (kept sentences, size) for whole, equal groups;
    else (one sentence per search row, 1)."""
    sents = np.asarray(rows) // group
    grouped = equal_groups(sents) if len(sents) else None
    if grouped is None:
        return sents, 1
    keep, size = grouped
    if len(keep) == sentences and (keep == np.arange(len(keep))).all():
        return None, size
    return keep, size


def _describe(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        bad = next((v for v in value if not isinstance(v, str)), None)
        return f"a {type(value).__name__} holding a {type(bad).__name__} ({bad!r:.40})"
    return f"{type(value).__name__} {value!r:.40}"


def _check_sentences(sentences: Any, name: str, one: bool = False) -> None:
    """A list of str (`one`: or a str), without lone surrogates (which no UTF-8 tokenizer takes): else a
    TypeError / ValueError naming the argument or the sentence."""
    if (
        isinstance(sentences, str)
        or not isinstance(sentences, Sequence)
        or not all(isinstance(s, str) for s in sentences)
    ):
        takes = "a str or a list of str" if one else "a list of str (for one sentence: translate(str))"
        raise TypeError(f"{name}() takes {takes}, got {_describe(sentences)}")
    for i, s in enumerate(sentences):
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"sentences[{i}] holds a lone surrogate (not text UTF-8 can carry): {s!r:.60}") from None


def decode_config(cfg: DecodeConfig | None, options: dict[str, Any]) -> DecodeConfig:
    """`cfg` (default: DecodeConfig()) with the keyword `options` replacing its fields; an unknown
    option or a value of the wrong type is a TypeError naming it (a bad value is a ConfigError, and so
    is an option the search would ignore: `stopping` given with greedy search)."""
    from ..config import DecodeConfig, refuse_ignored_decode
    from ..config_dict import from_dict, to_dict

    if cfg is not None and not isinstance(cfg, DecodeConfig):
        raise TypeError(f"cfg must be a DecodeConfig, got {_describe(cfg)}")
    if not options:
        return cfg or DecodeConfig()
    out = from_dict(DecodeConfig, {**to_dict(cfg or DecodeConfig()), **options})
    refuse_ignored_decode({**options, "beam_size": out.beam_size})  # cfg's own settings are not the options'
    return out


@contextmanager
def _numbered(live: list[int], first: int) -> Iterator[None]:
    """An `OverBudget` naming a source (its index among the searched ones) names its sentence instead, counted
    from `first`."""
    try:
        yield
    except OverBudget as err:
        if err.index is None:
            raise
        raise OverBudget(err.reason, first + live[err.index]) from None


def _cut(text: str, cap: int, blank: Iterable[str] = ()) -> str:
    """`text` up to `cap` characters, at its last space past half of them, else at the cap-th. Characters of
    `blank` (which make no piece) are not counted, and where there are some, nor are spaces (a space next to one
    may make no piece either)."""
    if len(text) <= cap:
        return text
    skip = re.escape("".join(sorted({*blank, " "}))) if blank else ""

    def end(n: int) -> int:  # where the n-th counted character ends
        if not skip:
            return n
        found = re.match(f"(?:[{skip}]*[^{skip}]){{{n}}}", text)
        return found.end() if found else len(text)

    stop = end(cap)
    if stop == len(text):  # fewer than `cap` counted
        return text
    space = text.rfind(" ", end(cap // 2), stop)
    return text[:space] if space >= 0 else text[:stop]


class Translating:
    """Text in, text out around the search over piece ids: what every translator shares (torch
    `Translator`, `OnnxTranslator`, `EnsembleTranslator`)."""

    src_tok: Tokenizer
    tgt_tok: Tokenizer
    engine = ""  # each translator names its engine: "torch", "onnx", "ensemble"
    src_lang: str | None = None  # from the model file (None where it does not say)
    tgt_lang: str | None = None

    def search(
        self, src_ids: Sequence[Sequence[int]], cfg: DecodeConfig, keep_attention: bool = False, progress: bool = False
    ) -> list[list[Hypothesis]]:
        """The n-best hypotheses for each source (piece ids without EOS), in input order: the one search
        (search.py: sorted by length, batched, order restored) over this translator's engine for `cfg`."""
        return search(self.search_engine(cfg), src_ids, cfg, keep_attention, progress)

    def search_engine(self, cfg: DecodeConfig) -> Engine:
        """The search engine (search.py) for `cfg`, refusing in one line what it cannot run: the one thing
        each translator provides (an ensemble combines its members')."""
        raise NotImplementedError

    def translate_nbest(
        self,
        sentences: Sequence[str],
        cfg: DecodeConfig | None = None,
        keep_attention: bool = False,
        progress: bool = False,
        first: int = 0,
        **options: Any,
    ) -> list[list[tuple[str, Hypothesis]]]:
        """The n-best (text, hypothesis) pairs per sentence; empty input gives no hypotheses. Decode
        options as for `translate` (a `DecodeConfig` and/or keywords such as `n_best=3`). Messages number the
        sentences from `first` + 1 (`seq2seq translate`: its input's line numbers). Sentences whose search and
        n-best lists would not fit the memory budget together are searched in parts that do (`split_parts`, all
        checked before any search); a sentence that cannot fit alone is an `OverBudget` naming it."""
        cfg = decode_config(cfg, options)
        _check_sentences(sentences, "translate_nbest")
        live, src_ids = self._sources(sentences, cfg)
        long = [i for i, ids in zip(live, src_ids) if len(ids) > cfg.max_src_len]
        if long:  # the length policy: truncate (bounded time and memory, one output line per input line)
            msg = "%d of %d sentences are longer than max_src_len=%d pieces: translated truncated (first: sentence %d)"
            log.warning(msg, len(long), len(sentences), cfg.max_src_len, first + long[0] + 1)
        engine = self.search_engine(cfg)
        with _numbered(live, first):
            parts = list(split_parts(lambda a, b: check_search(engine, src_ids[a:b], cfg, keep_attention), len(live)))
        found = [hyps for a, b in parts for hyps in self.search(src_ids[a:b], cfg, keep_attention, progress)]
        decoded = iter(self.tgt_tok.decode([h.ids for hyps in found for h in hyps]))  # one batched call
        out: list[list[tuple[str, Hypothesis]]] = [[] for _ in sentences]
        for i, hyps in zip(live, found):
            out[i] = [(next(decoded), h) for h in hyps]
        return out

    def check_memory(self, sentences: Sequence[str], cfg: DecodeConfig, keep_attention: bool = False,
                     first: int = 0) -> None:  # fmt: skip
        """The `OverBudget` a search of these sentences in one part would raise, without searching: naming the
        sentence (from `first`) that cannot fit alone, or none where fewer at a time would fit (`split_parts`)."""
        live, src_ids = self._sources(sentences, cfg)
        with _numbered(live, first):
            check_search(self.search_engine(cfg), src_ids, cfg, keep_attention)

    def _sources(self, sentences: Sequence[str], cfg: DecodeConfig) -> tuple[list[int], list[list[int]]]:
        """The sentences that hold words, and their piece ids (a line of NUL, soft hyphens or BOMs, of no piece,
        or of <unk> alone holds none: an empty line, not an invented one)."""
        texts = [self._cut_source(clean(s), cfg) if has_content(s) else "" for s in sentences]
        encoded = self.src_tok.encode([s for s in texts if s])
        words = self.src_tok.has_words
        live = [i for i, ids in zip([i for i, s in enumerate(texts) if s], encoded) if words(ids)]
        return live, [ids for ids in encoded if words(ids)]

    def _cut_source(self, text: str, cfg: DecodeConfig) -> str:
        """`text` cut to what max_src_len keeps before encoding (a 25 MB line held ~26 bytes per byte): pieces
        never span a space, and half the cut holds max_src_len of the longest pieces, so the kept pieces are
        the same. Characters that make no piece (zero-width spaces, `Tokenizer.no_piece`) are not counted: 3,000
        of them before the words filled the cut, and the line translated to ''."""
        cap = 2 * self.src_tok.longest_piece * cfg.max_src_len
        return _cut(text, cap, self.src_tok.no_piece(text) if len(text) > cap else ())

    def translate_aligned(
        self,
        sentences: Sequence[str],
        cfg: DecodeConfig | None = None,
        progress: bool = False,
        first: int = 0,
        **options: Any,
    ) -> list[list[Aligned]]:
        """The n-best hypotheses per sentence as `Aligned(text, hypothesis, alignment)`: `str(alignment)`
        is the fast_align/Moses line `0-0 2-1 1-2` of its word alignment (alignment.py: the rule)."""
        from ..ids import EOS_ID
        from .alignment import Aligned, align

        cfg = decode_config(cfg, options)
        _check_sentences(sentences, "translate_aligned")
        nbest = self.translate_nbest(sentences, cfg, keep_attention=True, progress=progress, first=first)
        live = [i for i, hyps in enumerate(nbest) if hyps]
        texts = [self._cut_source(clean(sentences[i]), cfg) for i in live]  # what the search saw, not the line
        out: list[list[Aligned]] = [[] for _ in sentences]
        for i, text, ids in zip(live, texts, self.src_tok.encode(texts)):
            ids = ids[: cfg.max_src_len]  # the search's truncation
            src_pieces, src_of = self.src_tok.pieces(ids), self.src_tok.word_of_pieces(text.split(), ids)
            for out_text, hyp in nbest[i]:
                tgt_pieces = [p if t > EOS_ID else None for t, p in zip(hyp.ids, self.tgt_tok.pieces(hyp.ids))]
                weights = hyp.attention[:, : len(ids) + 1]  # the batch's padding columns cut
                out[i].append(Aligned(out_text, hyp, align(weights, src_pieces, tgt_pieces, text.split(),
                                                           out_text.split(), src_of)))  # fmt: skip
        return out

    @overload
    def translate(self, sentences: str, cfg: DecodeConfig | None = None, *, progress: bool = False,
                  **options: Any) -> str: ...  # fmt: skip
    @overload
    def translate(self, sentences: Sequence[str], cfg: DecodeConfig | None = None, *, progress: bool = False,
                  **options: Any) -> list[str]: ...  # fmt: skip
    def translate(
        self, sentences: str | Sequence[str], cfg: DecodeConfig | None = None, *, progress: bool = False, **options: Any
    ) -> str | list[str]:
        """A sentence's translation (a str gives a str), or one per sentence in order (a list gives a
        list); an empty sentence translates to ''. Decode options as a `DecodeConfig` and/or keywords
        (`beam_size=5`): keywords override `cfg`'s fields; a wrong name or type raises TypeError, and so does
        an n_best other than 1 (keyword or `cfg`'s: its search would be paid for and all but the best dropped)."""
        cfg = decode_config(cfg, options)
        if cfg.n_best != 1:
            raise TypeError(f"translate() gives each sentence's best translation, not n_best={cfg.n_best}: for n_best, "
                            "use translate_nbest()")  # fmt: skip
        if isinstance(sentences, str):
            return self.translate([sentences], cfg)[0]
        _check_sentences(sentences, "translate", one=True)
        return [nbest[0][0] if nbest else "" for nbest in self.translate_nbest(sentences, cfg, progress=progress)]

    def describe(self, cfg: DecodeConfig | None = None) -> dict[str, Any]:
        """What is loaded, for logs and a server's /health: engine, languages, device, and the precision
        it decodes in with `cfg` (default: DecodeConfig's, "auto")."""
        return {"engine": self.engine, "src_lang": self.src_lang, "tgt_lang": self.tgt_lang, **self._where(cfg)}

    def _where(self, cfg: DecodeConfig | None) -> dict[str, Any]:
        return {"device": "cpu", "precision": "fp32"}

    def check(self, cfg: DecodeConfig) -> None:
        """Raise a one-line error (ConfigError, HardwareError) for settings this translator cannot run."""
