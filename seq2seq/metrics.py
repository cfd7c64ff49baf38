"""sacreBLEU BLEU and chrF on detokenised output against raw references, with signatures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sacrebleu

from .errors import CorpusError
from .text import read_lines


@dataclass(frozen=True)
class Scores:
    """Corpus BLEU and chrF with the sacreBLEU signatures that make them reproducible."""

    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str

    def __str__(self) -> str:
        return f"BLEU = {self.bleu:.2f}  ({self.bleu_signature})\nchrF = {self.chrf:.2f}  ({self.chrf_signature})"


def score_files(hyp_path: str | Path, ref_path: str | Path) -> Scores:
    """`score` of two line-aligned UTF-8 files; different line counts are a CorpusError naming both."""
    hyps, refs = read_lines(hyp_path), read_lines(ref_path)
    if len(hyps) != len(refs):
        raise CorpusError(f"{hyp_path} has {len(hyps)} lines but {ref_path} has {len(refs)}")
    if not refs:
        raise CorpusError(f"{hyp_path} and {ref_path} are empty: nothing to score")
    return score(hyps, refs)


def score(hyps: Sequence[str], refs: Sequence[str]) -> Scores:
    """Corpus-level BLEU (13a, cased) and chrF2 of `hyps` against one reference each."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    if not refs:
        raise ValueError("no sentences to score")
    bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    b = bleu.corpus_score(list(hyps), [list(refs)])
    c = chrf.corpus_score(list(hyps), [list(refs)])
    return Scores(b.score, c.score, str(bleu.get_signature()), str(chrf.get_signature()))
