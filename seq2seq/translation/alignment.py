"""Word alignments from attention: `seq2seq translate --alignments`, `Translating.translate_aligned`,
and the server's `"alignments"` and `"attention"` (docs/decoding.md, "Word alignments").

The attention of a hypothesis is piece-level: one row per output piece (and the EOS step), one
column per source piece (and the source EOS), each row a probability distribution. Alignments are
word-level, as fast_align and Moses write them (`i-j`: source word i, target word j, both 0-based):

1. Pieces to words. A piece that starts with SentencePiece's word-start marker `▁` starts a word;
   one without it continues the word before it. A bare `▁` piece starts a word that its next piece
   fills (SentencePiece writes `▁` `(` for a word of a rare first character), and a bare `▁` at the
   end belongs to the word before it. The EOS row and column belong to no word, nor do special
   output pieces (`<unk>`: detokenizing drops it). These words are the whitespace-separated tokens
   of the source (after `text.clean`) and of the output. On the source side the tokens themselves
   decide (`Tokenizer.word_of_pieces`: SentencePiece segments each token on its own), so that a
   token that makes no piece (a zero-width space, which Python's `str.split` keeps as a token and
   SentencePiece drops) keeps its index, with no link, and the indices stay those of the source's
   tokens.
2. Word-level weights. Source side: the **sum** of the word's pieces' weights. A row is a
   distribution over source pieces, so a word's share of it is the sum over its pieces; the
   maximum would count a word SentencePiece cut in three pieces of 0.2 each (0.6 of the attention)
   below a one-piece word holding 0.4. Output side: the **mean** over the word's pieces' rows, so
   that each word's row stays a distribution (over source words and the source EOS) whatever its
   number of pieces; the argmax is the sum's.
3. Each output word is linked to the source word of largest weight (the first on a tie). The source
   EOS is not a word: attention parked there (LSTM decoders park much of it on EOS, at the end of
   the output above all) never makes a link, the largest weight among the words does. So every
   output word gets exactly one link, and a source word may get none or several.

Links are written in output-word order (`0-0 2-1 1-2`), as fast_align does. NumPy only, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..search import Hypothesis

WORD_START = "\u2581"  # SentencePiece's word-start marker
EOS_PIECE = "</s>"


def piece_words(pieces: Sequence[str | None]) -> tuple[list[int | None], list[str]]:
    """The word (0-based) of each piece, None for a piece in no word (given as None: special pieces),
    and the words' text (pieces joined, `▁` dropped); the rule of this module's point 1."""
    of: list[int | None] = []
    words: list[str] = []
    for piece in pieces:
        if piece is None:
            of.append(None)
            continue
        starts = piece.startswith(WORD_START)
        text = piece[1:] if starts else piece
        if not words or (starts and words[-1] != ""):  # a bare `▁` word is filled by the next piece
            words.append("")
        words[-1] += text
        of.append(len(words) - 1)
    if words and words[-1] == "":  # a bare `▁` at the end: part of the word before it
        last = len(words) - 1
        words.pop()
        of = [(w if w != last else (last - 1 if last else None)) for w in of]
    return of, words


@dataclass(frozen=True, eq=False)
class WordAlignment:
    """One hypothesis's alignment, and the attention it came from. `str()` gives the `i-j` line."""

    pairs: tuple[tuple[int, int], ...]  # (source word i, output word j), in output-word order
    src_words: tuple[str, ...]
    tgt_words: tuple[str, ...]
    src_pieces: tuple[str, ...]  # the source's pieces, then "</s>"
    tgt_pieces: tuple[str, ...]  # the output's pieces, then "</s>"
    src_word_of_piece: tuple[int | None, ...]  # one per entry of src_pieces (None: EOS, special)
    tgt_word_of_piece: tuple[int | None, ...]
    attention: np.ndarray  # (len(tgt_pieces), len(src_pieces)) float32: the search's weights, rows sum to 1
    word_attention: np.ndarray  # (len(tgt_words), len(src_words)) float32: the weights the links are taken from

    def __str__(self) -> str:
        return " ".join(f"{i}-{j}" for i, j in self.pairs)


def align(
    attention: np.ndarray,
    src_pieces: Sequence[str],
    tgt_pieces: Sequence[str | None],
    src_words: Sequence[str] | None = None,
    tgt_words: Sequence[str] | None = None,
    src_word_of: Sequence[int] | None = None,
) -> WordAlignment:
    """The word alignment of piece-level `attention` of shape (len(tgt_pieces) + 1, len(src_pieces) + 1):
    a row per output piece then the EOS step, a column per source piece then the source EOS (what the
    search keeps: `Hypothesis.attention`, its columns cut to the source's length). An output piece
    given as None is special (`<unk>`): in no word. `src_words`/`tgt_words`, the texts' whitespace
    tokens, name the words when they are as many as the pieces' words (else the pieces' words do);
    with `src_word_of`, the word of `src_words` each source piece belongs to, the source's words are
    `src_words` (up to the last with a piece) whatever their pieces (`Tokenizer.word_of_pieces`)."""
    weights = np.asarray(attention, dtype=np.float32)
    shape = (len(tgt_pieces) + 1, len(src_pieces) + 1)
    if weights.shape != shape:
        raise ValueError(f"attention of shape {weights.shape} for {shape[0] - 1} output and {shape[1] - 1} "
                         f"source pieces: expected {shape} (the EOS row and column included)")  # fmt: skip
    src_of, src_text = piece_words(src_pieces)
    if src_word_of is not None:  # up to the last word with a piece: a truncated source's rest was not searched
        src_of, src_text = list(src_word_of), list(src_words or ())[: max(src_word_of, default=-1) + 1]
    tgt_of, tgt_text = piece_words(tgt_pieces)
    src_names = list(src_words) if src_words is not None and len(src_words) == len(src_text) else src_text
    tgt_names = list(tgt_words) if tgt_words is not None and len(tgt_words) == len(tgt_text) else tgt_text
    n_src, n_tgt = len(src_text), len(tgt_text)
    to_src = np.zeros((len(src_pieces) + 1, n_src), np.float32)  # piece -> word: sum over a word's pieces
    for piece, word in enumerate(src_of):
        if word is not None:
            to_src[piece, word] = 1.0
    from_tgt = np.zeros((n_tgt, len(tgt_pieces) + 1), np.float32)  # word <- pieces: their mean
    for piece, word in enumerate(tgt_of):
        if word is not None:
            from_tgt[word, piece] = 1.0
    from_tgt /= np.maximum(from_tgt.sum(axis=1, keepdims=True), 1.0)
    words = from_tgt @ weights @ to_src  # (n_tgt, n_src)
    pairs = tuple((int(i), j) for j, i in enumerate(words.argmax(axis=1))) if n_src else ()
    return WordAlignment(
        pairs, tuple(src_names), tuple(tgt_names),
        (*src_pieces, EOS_PIECE), tuple(p if p is not None else "<unk>" for p in (*tgt_pieces, EOS_PIECE)),
        (*src_of, None), (*tgt_of, None), weights, words,
    )  # fmt: skip


class Aligned(NamedTuple):
    """One hypothesis of `Translating.translate_aligned`: its text, the search's hypothesis (ids,
    score, log_prob, attention) and its word alignment."""

    text: str
    hypothesis: Hypothesis
    alignment: WordAlignment
