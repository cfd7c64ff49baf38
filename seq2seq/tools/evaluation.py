"""`seq2seq evaluate`: sacreBLEU's BLEU, chrF and TER of one system's output against one or more
references, as sacreBLEU's own command line computes them: the BLEU breakdown (n-gram precisions,
brevity penalty, length ratio, lengths), bootstrap 95 % confidence intervals (`Metric.corpus_score`
with `n_bootstrap`), and a paired significance test against a baseline system's output
(`sacrebleu.significance.PairedTest`: paired bootstrap resampling or approximate randomisation),
each score with the signature that reproduces it (resamples and seed included), as text or JSON.

One deviation from sacreBLEU: two outputs of identical lines get p = 1 (sacreBLEU would say
1 / (n + 1), which reads as significant; see `evaluate`). Resampling is bounded: between
`MIN_RESAMPLES` and `MAX_RESAMPLES` resamples, and no more memory than half this machine's
(sacrebleu holds every resample's statistics of a metric at once). The metrics come from
`seq2seq.metrics`, imported when first needed: sacrebleu is slow to import, and the command line
reads this module's defaults for its --help.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import BLEU_TOKENIZERS, half_memory
from ..errors import ConfigError, CorpusError
from ..text import read_lines

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

METRICS = ("bleu", "chrf", "ter")  # seq2seq.metrics.METRICS
TER_TOKENIZERS = ("zh", "ja-mecab", "ko-mecab")  # --tokenize values that TER takes too: its CJK support (make_metric)
CONFIDENCE_N = 1000  # bootstrap resamples for --confidence (sacrebleu's --confidence-n default)
PAIRED_N = {"bs": 1000, "ar": 10000}  # resamples / trials of each paired test (sacrebleu's defaults)
PAIRED_TESTS = {"bs": "paired bootstrap resampling", "ar": "paired approximate randomization"}
MIN_RESAMPLES, MAX_RESAMPLES = 100, 100_000
SIGNIFICANCE = 0.05  # p below this is significant (sacrebleu marks those with *)
# Bytes per sentence and resample while sacrebleu resamples: an int64 index and the float32
# statistics of one sentence (BLEU 2 + 2 x 4 numbers, chrF 3 x 6, TER 2).
STATS_BYTES = {"bleu": 8 + 4 * 10, "chrf": 8 + 4 * 18, "ter": 8 + 4 * 2}


@dataclass(frozen=True)
class Paired:
    """A paired test of the system against the baseline on one metric (sacrebleu's `Result`s)."""

    test: str  # bs (paired bootstrap resampling) or ar (approximate randomization)
    n: int  # resamples (bs) or trials (ar)
    baseline: str  # the baseline's file
    baseline_score: float
    baseline_mean: float | None  # the baseline's bootstrap mean and 95 % half-width (bs; ar with confidence)
    baseline_ci: float | None
    p_value: float
    identical: bool  # the two outputs are the same lines: p is 1 (sacrebleu would say 1 / (n + 1))

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE


@dataclass(frozen=True)
class MetricResult:
    """One metric's corpus score, its sacreBLEU signature, and what was asked for beside it."""

    name: str  # BLEU, chrF (chrF2: beta 2) or TER
    score: float
    signature: str
    breakdown: dict[str, Any]  # BLEU: precisions, counts, totals, bp, ratio, hyp_len, ref_len; TER: edits, ref_len
    mean: float | None = None  # bootstrap mean and the half-width of its 95 % interval (sacrebleu's "± ")
    ci: float | None = None
    paired: Paired | None = None

    def text(self) -> str:
        """`NAME = score (μ = mean ± ci) breakdown  (signature)`, sacrebleu's layout, then the paired test's line."""
        parts = [f"{self.name} = {self.score:.2f}{_interval(self.mean, self.ci)}"]
        if self.name == "BLEU":
            b = self.breakdown
            parts.append("/".join(f"{p:.1f}" for p in b["precisions"]))
            parts.append(f"(BP = {b['bp']:.3f} ratio = {b['ratio']:.3f} hyp_len = {b['hyp_len']} "
                         f"ref_len = {b['ref_len']})")  # fmt: skip
        line = " ".join(parts) + f"  ({self.signature})"
        p = self.paired
        if p is None:
            return line
        base = f"{p.baseline_score:.2f}{_interval(p.baseline_mean, p.baseline_ci)}"
        verdict = "significant" if p.significant else "not significant"
        why = ", identical outputs" if p.identical else ""
        diff = self.score - p.baseline_score
        return (f"{line}\n  baseline {p.baseline}: {self.name} = {base}; difference {diff:+.2f}, p = {p.p_value:.4f} "
                f"({PAIRED_TESTS[p.test]}, n = {p.n}{why}): {verdict} at {SIGNIFICANCE}")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "score": self.score, "signature": self.signature, **self.breakdown}
        if self.mean is not None:
            out["confidence"] = {"mean": self.mean, "ci95": self.ci}
        if self.paired is not None:
            p = self.paired
            base = {"mean": p.baseline_mean, "ci95": p.baseline_ci} if p.baseline_mean is not None else None
            out["paired"] = {"test": p.test, "n": p.n, "baseline": p.baseline, "baseline_score": p.baseline_score,
                             "baseline_confidence": base, "p_value": p.p_value, "significant": p.significant,
                             "identical": p.identical}  # fmt: skip
        return out


def _interval(mean: float | None, ci: float | None) -> str:
    """` (μ = mean ± ci)` as sacrebleu prints a bootstrap estimate, or nothing without one."""
    return "" if mean is None else f" (μ = {mean:.2f} ± {ci:.2f})"


@dataclass(frozen=True)
class Evaluation:
    """What `seq2seq evaluate` prints: each metric's result, in the order BLEU, chrF, TER."""

    hyp: str
    refs: tuple[str, ...]
    sentences: int
    results: tuple[MetricResult, ...]

    def get(self, name: str) -> MetricResult:
        """The result of `name` (bleu, chrf or ter, any case); KeyError if it was not computed."""
        found = [r for r in self.results if r.name.lower() == name.lower()]
        if not found:
            raise KeyError(f"{name} was not computed (have: {', '.join(r.name for r in self.results)})")
        return found[0]

    def text(self) -> str:
        return "\n".join(r.text() for r in self.results)

    def to_json(self) -> str:
        data = {"hyp": self.hyp, "refs": list(self.refs), "sentences": self.sentences,
                "metrics": [r.to_dict() for r in self.results]}  # fmt: skip
        return json.dumps(data, indent=1, ensure_ascii=False)


@dataclass(frozen=True)
class EvalSettings:
    """What `evaluate` computes beside the scores; values out of range are a ConfigError."""

    tokenize: str = "13a"  # BLEU's tokenizer (seq2seq.config.BLEU_TOKENIZERS)
    metrics: tuple[str, ...] = METRICS  # any of bleu, chrf, ter (printed in that order)
    confidence_n: int = 0  # bootstrap resamples for 95 % intervals (0: none; --confidence: CONFIDENCE_N)
    paired_test: str = "bs"  # with a baseline: bs (paired bootstrap) or ar (approximate randomization)
    paired_n: int = 0  # the paired test's resamples (bs) or trials (ar); 0: PAIRED_N, sacrebleu's

    def __post_init__(self) -> None:
        if self.tokenize not in BLEU_TOKENIZERS:
            raise ConfigError(
                f"unknown BLEU tokenizer {self.tokenize!r}; sacrebleu offers {', '.join(BLEU_TOKENIZERS)}"
            )
        if isinstance(self.metrics, str):  # "bleu" would be read as the metrics b, l, e, u
            raise ConfigError(f"metrics must be a list of names, got the one string {self.metrics!r}")
        unknown = set(self.metrics) - set(METRICS)
        if unknown or not self.metrics:
            raise ConfigError(f"unknown metric(s) {sorted(unknown)}; choose from {', '.join(METRICS)}")
        if self.tokenize != "13a":  # the default goes with any metrics
            _check_tokenizer_used(self.tokenize, self.metrics)
        if self.paired_test not in PAIRED_N:
            raise ConfigError(f"unknown paired test {self.paired_test!r}; choose from {', '.join(PAIRED_N)}")
        for flag, n in (("--confidence-n", self.confidence_n), ("--paired-n", self.paired_n)):
            if n:  # 0: off (confidence_n), sacrebleu's default (paired_n)
                _check_resamples(flag, n)

    @classmethod
    def from_flags(
        cls, tokenize: str | None, metrics: Sequence[str], confidence: bool, confidence_n: int | None,
        paired_test: str | None, paired_n: int | None,
    ) -> EvalSettings:  # fmt: skip
        """The settings `seq2seq evaluate`'s flags ask for (None: not given). --confidence-n without
        --confidence, either with --paired-bs (whose intervals come from its own resamples), and
        --paired-n without a paired test would be ignored: ConfigErrors."""
        if tokenize is not None:  # given, so even the default 13a is refused where no metric uses it
            _check_tokenizer_used(tokenize, metrics)
        if confidence_n is not None and not confidence:
            raise ConfigError("--confidence-n needs --confidence")
        if paired_n is not None and paired_test is None:
            raise ConfigError("--paired-n needs --paired-bs or --paired-ar")
        if (confidence or confidence_n is not None) and paired_test == "bs":
            flag = "--confidence-n" if confidence_n is not None else "--confidence"
            raise ConfigError(f"{flag} does not apply to --paired-bs: its intervals come from the "
                              "--paired-n resamples of the test, which it prints anyway")  # fmt: skip
        for flag, n in (("--confidence-n", confidence_n), ("--paired-n", paired_n)):
            if n is not None:  # given, so 0 is out of bounds too
                _check_resamples(flag, n)
        n = (CONFIDENCE_N if confidence_n is None else confidence_n) if confidence and paired_test != "bs" else 0
        return cls(tokenize or "13a", tuple(metrics), n, paired_test or "bs", paired_n or 0)


def _check_tokenizer_used(tokenize: str, metrics: Sequence[str]) -> None:
    """BLEU, or TER with a CJK tokenizer, uses `tokenize`; else it would be ignored: a ConfigError."""
    if "bleu" not in metrics and not ("ter" in metrics and tokenize in TER_TOKENIZERS):
        raise ConfigError(f"--tokenize {tokenize} would be ignored: it is BLEU's tokenizer (TER takes only "
                          f"{', '.join(TER_TOKENIZERS)}), and --metrics {' '.join(metrics)} has no bleu; "
                          "add bleu or leave --tokenize out")  # fmt: skip


def _check_resamples(flag: str, n: int) -> None:
    if not MIN_RESAMPLES <= n <= MAX_RESAMPLES:
        raise ConfigError(f"{flag} must be in [{MIN_RESAMPLES}, {MAX_RESAMPLES:,}], got {n:,}")


_memory_budget = half_memory  # what the resamples may hold (a name of its own: tests lower it)


def check_memory(n: int, flag: str, sentences: int, metrics: Sequence[str]) -> None:
    """`n` resamples (asked for by `flag`) of `sentences` sentences fit in half this machine's memory
    (sacrebleu holds every resample's statistics of one metric at once); else a ConfigError."""
    per = max(STATS_BYTES[m] for m in metrics)
    need, budget = n * sentences * per, _memory_budget()
    if need > budget:
        raise ConfigError(
            f"{flag} {n:,} resamples of {sentences:,} sentences need about {need / 1e9:.1f} GB ({per} bytes per "
            f"sentence and resample); this machine allows {budget / 1e9:.1f} GB (half its memory): use fewer"
        )


def evaluate_files(
    hyp_path: str | Path,
    ref_paths: Sequence[str | Path],
    settings: EvalSettings | None = None,
    baseline_path: str | Path | None = None,
) -> Evaluation:
    """`evaluate` of line-aligned UTF-8 files: every reference and the baseline must have as many
    lines as the hypothesis file (a CorpusError naming the file and both counts otherwise)."""
    from ..metrics import bleu_metric

    if isinstance(ref_paths, (str, os.PathLike)):  # a string's characters would be taken as the files
        raise ConfigError(f"ref_paths must be a list of reference files, got the one path {str(ref_paths)!r}: "
                          f"use [{str(ref_paths)!r}]")  # fmt: skip
    settings = settings or EvalSettings()
    if "bleu" in settings.metrics:
        bleu_metric(settings.tokenize)  # a tokenizer that cannot run here fails before the files are read
    if not ref_paths:
        raise ConfigError("evaluate needs at least one reference file")
    hyps = read_lines(hyp_path)
    refs = []
    for path in ref_paths:
        lines = read_lines(path)
        if len(lines) != len(hyps):
            raise CorpusError(f"{hyp_path} has {len(hyps)} lines but {path} has {len(lines)}")
        refs.append(lines)
    if not hyps:
        raise CorpusError(f"{hyp_path} and {ref_paths[0]} are empty: nothing to score")
    baseline = None
    if baseline_path is not None:
        baseline = read_lines(baseline_path)
        if len(baseline) != len(hyps):
            raise CorpusError(f"{hyp_path} has {len(hyps)} lines but the baseline {baseline_path} has {len(baseline)}")
    names = (str(hyp_path), [str(p) for p in ref_paths], str(baseline_path or "baseline"))
    return evaluate(hyps, refs, settings, baseline, names)


def evaluate(
    hyps: Sequence[str],
    refs: Sequence[Sequence[str]],
    settings: EvalSettings | None = None,
    baseline: Sequence[str] | None = None,
    names: tuple[str, Sequence[str], str] = ("hyp", (), "baseline"),
) -> Evaluation:
    """Corpus-level scores of `hyps` against the reference streams `refs` (one list of lines per
    reference, each as long as `hyps`), with sacrebleu's signatures and the BLEU breakdown; `names`
    labels the output (the hypothesis, the references, the baseline).

    settings.confidence_n > 0: bootstrap mean and 95 % interval from that many resamples
    (sacrebleu's `corpus_score(n_bootstrap=...)`). `baseline`: sacrebleu's `PairedTest` of `hyps`
    against it (settings.paired_test, paired_n); with bs, the intervals come from the test's own
    resamples (confidence_n must then be 0). Two outputs of identical lines get p = 1: sacrebleu
    counts resampled differences strictly greater than the observed one, so there it would say
    1 / (n + 1), which reads as significant."""
    settings = settings or EvalSettings()
    if not refs or any(len(r) != len(hyps) for r in refs):
        raise ValueError(f"{len(hyps)} hypotheses but references of {[len(r) for r in refs]} lines")
    if not hyps:
        raise ValueError("no sentences to score")
    metrics = [m for m in METRICS if m in settings.metrics]
    if settings.confidence_n:
        if baseline is not None and settings.paired_test == "bs":
            raise ConfigError("confidence_n does not apply to a paired bootstrap test: its intervals come "
                              "from the test's own paired_n resamples")  # fmt: skip
        check_memory(settings.confidence_n, "--confidence-n", len(hyps), metrics)
    if baseline is None:
        results = tuple(_plain(m, hyps, refs, settings.tokenize, settings.confidence_n) for m in metrics)
    else:
        if len(baseline) != len(hyps):
            raise ValueError(f"{len(hyps)} hypotheses but a baseline of {len(baseline)} lines")
        check_memory(settings.paired_n or PAIRED_N[settings.paired_test], "--paired-n", len(hyps), metrics)
        results = _paired(metrics, hyps, refs, settings, baseline, names[2])
    hyp_name, ref_names, _ = names
    ref_labels = tuple(ref_names) or tuple(f"ref{i}" for i in range(1, len(refs) + 1))
    return Evaluation(hyp_name, ref_labels, len(hyps), results)


def _breakdown(score: Any) -> dict[str, Any]:
    """The parts of a sacrebleu score that explain it: BLEU's precisions and brevity penalty, TER's edits."""
    if score.name == "BLEU":
        return {"precisions": list(score.precisions), "counts": list(score.counts), "totals": list(score.totals),
                "bp": score.bp, "ratio": score.ratio, "hyp_len": score.sys_len, "ref_len": score.ref_len}  # fmt: skip
    if score.name == "TER":
        return {"edits": score.num_edits, "ref_len": score.ref_length}
    return {}


def _plain(name: str, hyps: Sequence[str], refs: Sequence[Sequence[str]], tokenize: str, n: int) -> MetricResult:
    """One metric's corpus score (with bootstrap resampling when `n` > 0), as sacrebleu computes it."""
    from ..metrics import NAMES, make_metric

    metric = make_metric(name, tokenize)
    score = metric.corpus_score(list(hyps), [list(r) for r in refs], n_bootstrap=n or 1)
    mean, ci = (float(score._mean), float(score._ci)) if n else (None, None)  # where sacrebleu keeps them
    return MetricResult(NAMES[name], float(score.score), str(metric.get_signature()), _breakdown(score), mean, ci)


def _paired(
    metrics: list[str],
    hyps: Sequence[str],
    refs: Sequence[Sequence[str]],
    settings: EvalSettings,
    baseline: Sequence[str],
    baseline_name: str,
) -> tuple[MetricResult, ...]:
    """Each metric's score and breakdown, and sacrebleu's PairedTest of `hyps` against `baseline`."""
    from sacrebleu.significance import PairedTest

    from ..metrics import make_metric

    kind, n = settings.paired_test, settings.paired_n or PAIRED_N[settings.paired_test]
    plain = [_plain(m, hyps, refs, settings.tokenize, 0) for m in metrics]  # the score and its breakdown
    paired = PairedTest([(baseline_name, list(baseline)), ("system", list(hyps))],
                        {m: make_metric(m, settings.tokenize) for m in metrics}, [list(r) for r in refs],
                        test_type=kind, n_samples=n, n_ar_confidence=settings.confidence_n or -1)  # fmt: skip
    signatures, scores = paired()  # keyed by sacrebleu's names, in the order of `metrics`; baseline first
    identical = list(hyps) == list(baseline)
    out = []
    for result, signature, (base, system) in zip(plain, signatures.values(), list(scores.values())[1:], strict=True):
        p = Paired(kind, n, baseline_name, float(base.score), _float(base.mean), _float(base.ci),
                   1.0 if identical else float(system.p_value), identical)  # fmt: skip
        out.append(MetricResult(result.name, result.score, str(signature), result.breakdown, _float(system.mean),
                                _float(system.ci), p))  # fmt: skip
    return tuple(out)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
