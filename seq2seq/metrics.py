"""sacreBLEU BLEU, chrF and TER on detokenised output against raw references, with signatures.

BLEU's tokenizer is the user's choice (`13a` for most languages, `zh` for Chinese, `ja-mecab` for
Japanese, `char`, `intl`, ...: what sacrebleu offers); the signature printed with every score
names it. Torch-free: `seq2seq evaluate` starts in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sacrebleu

from .config import BLEU_TOKENIZERS, ConfigError
from .errors import CorpusError
from .text import read_lines

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

METRICS = ("bleu", "chrf", "ter")
NAMES = {"bleu": "BLEU", "chrf": "chrF", "ter": "TER"}


@dataclass(frozen=True)
class Score:
    """One corpus-level score with the sacreBLEU signature that makes it reproducible."""

    name: str  # BLEU, chrF (chrF2: beta 2, in the signature's defaults) or TER
    value: float
    signature: str

    def __str__(self) -> str:
        return f"{self.name} = {self.value:.2f}  ({self.signature})"


@dataclass(frozen=True)
class Scores:
    """The scores asked for, in order (BLEU, chrF, TER)."""

    scores: tuple[Score, ...]

    def get(self, metric: str) -> Score:
        """The score of `metric` (bleu, chrf or ter); KeyError if it was not computed."""
        found = [s for s in self.scores if s.name.lower().startswith(metric)]
        if not found:
            raise KeyError(f"{metric} was not computed (have: {', '.join(s.name for s in self.scores)})")
        return found[0]

    @property
    def bleu(self) -> float:
        return self.get("bleu").value

    @property
    def chrf(self) -> float:
        return self.get("chrf").value

    def __str__(self) -> str:
        return "\n".join(str(s) for s in self.scores)


def bleu_metric(tokenize: str = "13a") -> sacrebleu.metrics.BLEU:
    """sacreBLEU's BLEU with this tokenizer; one that cannot run here (e.g. ja-mecab without its
    package) is a ConfigError saying what to install."""
    if tokenize not in BLEU_TOKENIZERS:
        raise ConfigError(f"unknown BLEU tokenizer {tokenize!r}; sacrebleu offers {', '.join(BLEU_TOKENIZERS)}")
    try:
        return sacrebleu.metrics.BLEU(tokenize=tokenize)
    except OSError as err:  # flores101, flores200, spm: the SentencePiece model's download failed (URLError)
        raise ConfigError(f"BLEU tokenizer {tokenize!r} needs a SentencePiece model that sacrebleu downloads on "
                          f"first use, and the download failed ({getattr(err, 'reason', err)}): run it once online, "
                          "or use another tokenizer") from None  # fmt: skip
    except (ImportError, RuntimeError, ValueError) as err:  # the tokenizer's optional package is missing
        why = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise ConfigError(
            f"BLEU tokenizer {tokenize!r} cannot run here: {why} (pip install 'sacrebleu[ja]' or [ko])"
        ) from None


def make_metric(name: str, tokenize: str = "13a") -> sacrebleu.metrics.base.Metric:
    """sacreBLEU's metric `name` (bleu, chrf or ter) as `score` computes it; TER with its own CJK
    handling where BLEU's tokenizer is zh, ja-mecab or ko-mecab."""
    if name == "bleu":
        return bleu_metric(tokenize)
    asian = tokenize in ("zh", "ja-mecab", "ko-mecab")
    return sacrebleu.metrics.CHRF() if name == "chrf" else sacrebleu.metrics.TER(normalized=asian, asian_support=asian)


def bleu_signature(tokenize: str = "13a") -> str:
    """The signature `score` reports for BLEU with this tokenizer and one reference per sentence."""
    metric = bleu_metric(tokenize)
    metric.corpus_score(["x"], [["x"]])  # sacrebleu fills in the signature (nrefs) once it has scored
    return str(metric.get_signature())


def score_files(
    hyp_path: str | Path, ref_path: str | Path, tokenize: str = "13a", metrics: Sequence[str] = METRICS
) -> Scores:
    """`score` of two line-aligned UTF-8 files; different line counts are a CorpusError naming both."""
    bleu_metric(tokenize)  # an unusable tokenizer fails before the files are read
    hyps, refs = read_lines(hyp_path), read_lines(ref_path)
    if len(hyps) != len(refs):
        raise CorpusError(f"{hyp_path} has {len(hyps)} lines but {ref_path} has {len(refs)}")
    if not refs:
        raise CorpusError(f"{hyp_path} and {ref_path} are empty: nothing to score")
    return score(hyps, refs, tokenize, metrics)


def score(
    hyps: Sequence[str], refs: Sequence[str], tokenize: str = "13a", metrics: Sequence[str] = ("bleu", "chrf")
) -> Scores:
    """Corpus-level BLEU (cased, `tokenize`), chrF2 and/or TER of `hyps` against one reference each."""
    for name, given in (("hyps", hyps), ("refs", refs), ("metrics", metrics)):
        if isinstance(given, (str, bytes)):  # its characters would be scored as sentences, or read as metrics
            raise ConfigError(f"{name} must be a list of strings, got one {type(given).__name__} {given[:40]!r}")
    if not metrics:
        raise ConfigError(f"no metric asked for; choose from {', '.join(METRICS)}")
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    if not refs:
        raise ValueError("no sentences to score")
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ConfigError(f"unknown metric(s) {sorted(unknown)}; choose from {', '.join(METRICS)}")
    out = []
    for name in (m for m in METRICS if m in metrics):
        metric = make_metric(name, tokenize)
        result = metric.corpus_score(list(hyps), [list(refs)])
        out.append(Score(NAMES[name], result.score, str(metric.get_signature())))
    return Scores(tuple(out))
