"""`seq2seq evaluate` as sacreBLEU does it: several references, the BLEU breakdown, bootstrap
confidence intervals, paired significance tests against a baseline, JSON; and `translate
--nbest-format moses`. Hand-computable cases, and the one-line refusals."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import pytest
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest

from seq2seq.cli import main
from seq2seq.config import DecodeConfig
from seq2seq.errors import ConfigError
from seq2seq.search import Hypothesis
from seq2seq.tools import evaluation
from seq2seq.tools.evaluation import EvalSettings, evaluate, evaluate_files
from seq2seq.translation.stream import output_lines

if TYPE_CHECKING:
    from pathlib import Path

REF = "the cat sat on the mat"
WORDS = "red blue green small big old new dog cat bird house tree runs sleeps eats sees".split()


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def run(argv: list[object], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def sentences(n: int, seed: int = 0) -> list[str]:
    """`n` different 6-word sentences (a fixed pattern, no randomness)."""
    return [" ".join(WORDS[(i * 7 + j * (seed + 3)) % len(WORDS)] for j in range(6)) for i in range(n)]


def damaged(lines: list[str]) -> list[str]:
    """Every other line with one word dropped (a different word each time)."""
    out = []
    for i, line in enumerate(lines):
        words = line.split()
        out.append(" ".join(w for j, w in enumerate(words) if i % 2 == 0 or j != i % len(words)))
    return out


def test_identical_output_is_100_with_every_precision_100(tmp_path: Path, capsys) -> None:
    ref = write(tmp_path / "ref.en", sentences(20))
    code, out, _ = run(["evaluate", "--hyp", ref, "--ref", ref, "--metrics", "bleu"], capsys)
    assert code == 0
    assert out.startswith(
        "BLEU = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 hyp_len = 120 ref_len = 120)"
    )
    assert "(nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" in out


def test_the_breakdown_counts_the_n_grams_as_by_hand() -> None:
    """'the cat sat on a mat' against 'the cat sat on the mat': 1-grams 5/6 (`a` misses), 2-grams 3/5
    (`on a`, `a mat`), 3-grams 2/4, 4-grams 1/3; same length, so BP 1 and BLEU (1/12)^(1/4)."""
    r = evaluate(["the cat sat on a mat"], [[REF]], EvalSettings(metrics=("bleu",))).get("bleu")
    b = r.breakdown
    assert b["counts"] == [5, 3, 2, 1] and b["totals"] == [6, 5, 4, 3]
    assert b["precisions"] == pytest.approx([500 / 6, 60, 50, 100 / 3])
    assert (b["bp"], b["ratio"], b["hyp_len"], b["ref_len"]) == (1.0, 1.0, 6, 6)
    assert r.score == pytest.approx(100 * (1 / 12) ** 0.25)  # 53.73


def test_a_short_output_pays_the_brevity_penalty() -> None:
    """'the cat sat on the': every n-gram is in the reference, but 5 words for 6: BP = exp(1 - 6/5)."""
    r = evaluate(["the cat sat on the"], [[REF]], EvalSettings(metrics=("bleu",))).get("bleu")
    assert r.breakdown["precisions"] == [100.0] * 4
    assert r.breakdown["bp"] == pytest.approx(math.exp(-0.2)) and r.breakdown["ratio"] == pytest.approx(5 / 6)
    assert r.score == pytest.approx(100 * math.exp(-0.2))  # 81.87
    assert "100.0/100.0/100.0/100.0 (BP = 0.819 ratio = 0.833 hyp_len = 5 ref_len = 6)" in r.text()


def test_a_second_reference_that_matches_raises_the_score(tmp_path: Path, capsys) -> None:
    hyp = write(tmp_path / "hyp.en", ["the cat sat on a mat", "a dog runs in the park"])
    ref1 = write(tmp_path / "ref1.en", [REF, "a dog runs in the park"])
    ref2 = write(tmp_path / "ref2.en", ["the cat sat on a mat", "the dog is running in a park"])
    scores = {}
    for refs in ([ref1], [ref1, ref2]):
        code, out, _ = run(["evaluate", "--hyp", hyp, "--ref", *refs, "--format", "json"], capsys)
        assert code == 0
        scores[len(refs)] = {m["name"]: m for m in json.loads(out)["metrics"]}
    assert scores[2]["BLEU"]["score"] == pytest.approx(100)  # each line equals one of its references
    # one reference: line 1 matches 5/6, 3/5, 2/4, 1/3 n-grams (as above), line 2 all 6, 5, 4, 3
    assert scores[1]["BLEU"]["score"] == pytest.approx(100 * (11 / 12 * 8 / 10 * 6 / 8 * 4 / 6) ** 0.25)  # 77.82
    assert scores[2]["chrF"]["score"] == pytest.approx(100) and scores[1]["chrF"]["score"] < 99
    assert scores[2]["TER"]["score"] == 0 < scores[1]["TER"]["score"]
    assert all("nrefs:2" in m["signature"] for m in scores[2].values())
    code, out, _ = run(["evaluate", "--hyp", hyp, "--ref", ref1, "--ref", ref2, "--metrics", "bleu"], capsys)
    assert code == 0 and out.startswith("BLEU = 100.00") and "nrefs:2" in out  # --ref repeated: the same


def test_the_metric_names_agree_with_the_core_and_the_command_line() -> None:
    import seq2seq.cli.parser
    import seq2seq.metrics

    assert evaluation.METRICS == seq2seq.metrics.METRICS == seq2seq.cli.parser.METRICS


def test_json_has_each_metric_score_signature_and_breakdown(tmp_path: Path, capsys) -> None:
    hyp = write(tmp_path / "hyp.en", ["the cat sat on a mat"])
    ref = write(tmp_path / "ref.en", [REF])
    code, out, _ = run(["evaluate", "--hyp", hyp, "--ref", ref, "--format", "json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["hyp"] == str(hyp) and data["refs"] == [str(ref)] and data["sentences"] == 1
    bleu, chrf, ter = data["metrics"]
    assert [m["name"] for m in data["metrics"]] == ["BLEU", "chrF", "TER"]
    assert all(m["signature"].startswith("nrefs:1|") and "version:" in m["signature"] for m in data["metrics"])
    assert bleu["counts"] == [5, 3, 2, 1] and bleu["score"] == pytest.approx(100 * (1 / 12) ** 0.25)
    assert ter["edits"] == 1 and ter["score"] == pytest.approx(100 / 6)  # one substitution in six words
    assert "confidence" not in bleu and "paired" not in bleu


def test_confidence_of_a_perfect_output_is_100_plus_minus_0(tmp_path: Path, capsys) -> None:
    """Every bootstrap resample of a perfect output scores 100: mean 100, interval 0; the signature
    names the resamples and sacrebleu's seed."""
    ref = write(tmp_path / "ref.en", sentences(30))
    code, out, _ = run(["evaluate", "--hyp", ref, "--ref", ref, "--confidence", "--confidence-n", 200], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("BLEU = 100.00 (μ = 100.00 ± 0.00) 100.0/100.0/100.0/100.0")
    assert lines[1].startswith("chrF = 100.00 (μ = 100.00 ± 0.00)") and lines[2].startswith("TER = 0.00 (μ = 0.00")
    assert all("|bs:200|seed:12345|" in line for line in lines)


def test_confidence_interval_is_sacrebleus_own() -> None:
    refs = sentences(40)
    hyps = damaged(refs)
    r = evaluate(hyps, [refs], EvalSettings(metrics=("bleu",), confidence_n=300)).get("bleu")
    expected = BLEU().corpus_score(hyps, [refs], n_bootstrap=300)
    assert (r.score, r.mean, r.ci) == (expected.score, expected._mean, expected._ci) and r.ci > 0


def test_a_system_against_itself_is_not_significant(tmp_path: Path, capsys) -> None:
    """sacrebleu counts resampled differences strictly above the observed 0: p = 1/(n+1), which
    would read as significant; identical outputs are reported with p = 1."""
    refs = sentences(40)
    hyp = write(tmp_path / "hyp.en", sentences(40, seed=1))
    ref = write(tmp_path / "ref.en", refs)
    raw = PairedTest([("a", sentences(40, seed=1)), ("b", sentences(40, seed=1))], {"BLEU": BLEU()}, [refs],
                     test_type="bs", n_samples=200)()[1]["BLEU"][1]  # fmt: skip
    assert raw.p_value == pytest.approx(1 / 201)  # what sacrebleu itself says
    for flag in ("--paired-bs", "--paired-ar"):
        code, out, _ = run(["evaluate", "--hyp", hyp, "--ref", ref, flag, hyp, "--paired-n", 200, "--format", "json"],
                           capsys)  # fmt: skip
        assert code == 0
        for m in json.loads(out)["metrics"]:
            assert m["paired"]["p_value"] == 1.0 and not m["paired"]["significant"] and m["paired"]["identical"]
            assert m["paired"]["baseline_score"] == m["score"] and f"{flag[-2:]}:200|seed:12345" in m["signature"]
    code, out, _ = run(["evaluate", "--hyp", hyp, "--ref", ref, "--paired-bs", hyp, "--paired-n", 200], capsys)
    assert (
        "difference +0.00, p = 1.0000 (paired bootstrap resampling, n = 200, identical outputs): not significant" in out
    )


def test_a_much_better_system_is_significant_and_p_is_sacrebleus(tmp_path: Path) -> None:
    refs = sentences(60)
    good = refs[:50] + sentences(10, seed=2)  # 50 of 60 lines right
    bad = sentences(60, seed=2)  # none right
    for test in ("bs", "ar"):
        settings = EvalSettings(metrics=("bleu", "chrf"), paired_test=test, paired_n=200)
        result = evaluate(good, [refs], settings, bad, ("good", (), "bad"))
        raw = PairedTest([("bad", bad), ("good", good)], {"BLEU": BLEU()}, [refs], test_type=test, n_samples=200)()
        for r in result.results:
            assert r.paired.significant and r.paired.p_value < 0.05 and r.score > r.paired.baseline_score
        assert result.get("bleu").paired.p_value == raw[1]["BLEU"][1].p_value
        assert (result.get("bleu").mean is None) == (test == "ar")  # bs: intervals of both from its resamples


def test_paired_ar_with_confidence_gives_intervals(tmp_path: Path) -> None:
    refs = sentences(30)
    settings = EvalSettings(metrics=("bleu",), confidence_n=150, paired_test="ar", paired_n=200)
    r = evaluate(sentences(30, seed=1), [refs], settings, sentences(30, seed=2)).get("bleu")
    assert r.mean is not None and r.paired.baseline_mean is not None
    assert "|bs:150|ar:200|seed:12345|" in r.signature


def test_a_reference_or_baseline_of_another_length_is_one_line(tmp_path: Path, capsys) -> None:
    hyp = write(tmp_path / "hyp.en", sentences(4))
    ref = write(tmp_path / "ref.en", sentences(4))
    short = write(tmp_path / "short.en", sentences(3))
    for argv, message in (
        (["--ref", ref, short], f"{hyp} has 4 lines but {short} has 3"),
        (["--ref", ref, "--paired-bs", short], f"{hyp} has 4 lines but the baseline {short} has 3"),
        (["--ref", ref, "--paired-ar", tmp_path / "none.en"], f"{tmp_path / 'none.en'}: no such file"),
    ):
        code, out, err = run(["evaluate", "--hyp", hyp, *argv], capsys)
        assert code == 2 and out == "" and err.count("\n") == 1 and err.strip().endswith(message), err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--confidence", "--confidence-n", 10**7], "--confidence-n must be in [100, 100,000], got 10,000,000"),
        (["--confidence", "--confidence-n", 0], "--confidence-n must be in [100, 100,000], got 0"),
        (["--confidence-n", 500], "--confidence-n needs --confidence"),
        (["--paired-n", 500], "--paired-n needs --paired-bs or --paired-ar"),
        (["--paired-ar", "REF", "--paired-n", -1], "--paired-n must be in [100, 100,000], got -1"),
        (["--paired-bs", "REF", "--confidence", "--confidence-n", 500], "--confidence-n does not apply to --paired-bs"),
        (["--paired-bs", "REF", "--confidence"], "--confidence does not apply to --paired-bs"),  # printed the same
    ],
)
def test_resampling_flags_out_of_bounds_or_ignored_are_one_line(tmp_path: Path, capsys, flags, message) -> None:
    ref = write(tmp_path / "ref.en", sentences(4))
    code, out, err = run(["evaluate", "--hyp", ref, "--ref", ref, *[ref if f == "REF" else f for f in flags]], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err


def test_resampling_that_would_not_fit_in_memory_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    ref = write(tmp_path / "ref.en", sentences(1000))
    monkeypatch.setattr(evaluation, "_memory_budget", lambda: 10**8)
    code, _, err = run(["evaluate", "--hyp", ref, "--ref", ref, "--confidence", "--confidence-n", 2000], capsys)
    # chrF: 8 + 4 x 18 bytes per sentence and resample, 2000 x 1000 of them: 0.16 GB over 0.1 GB
    assert code == 2 and "--confidence-n 2,000 resamples of 1,000 sentences need about 0.2 GB" in err
    assert "allows 0.1 GB" in err and err.count("\n") == 1
    with pytest.raises(ConfigError, match="--paired-n 2,000 resamples of 1,000 sentences need about 0.2 GB"):
        evaluate_files(ref, [ref], EvalSettings(metrics=("bleu", "chrf"), paired_n=2000), ref)
    evaluation.check_memory(2000, "--paired-n", 1000, ["ter"])  # TER: 8 + 4 x 2 bytes, 0.03 GB: fits


class Stub:
    """A translator whose n-best lists are given: output_lines' formats without a model."""

    def __init__(self, nbest: list[list[tuple[str, Hypothesis]]]) -> None:
        self.nbest = nbest

    def translate_nbest(self, sentences, cfg, progress=False, first=0):  # noqa: ANN001, ANN201
        return self.nbest


def test_moses_nbest_lines_are_zero_based_with_log_prob_and_score() -> None:
    hyp = lambda score, log_prob: Hypothesis([5, 6], score, log_prob, None)  # noqa: E731
    nbest = [[("a cat", hyp(-0.25, -0.75)), ("the cat", hyp(-0.5, -1.5))], [], [("dog", hyp(-0.125, -0.25))]]
    cfg = DecodeConfig(beam_size=2, n_best=2)
    assert output_lines(Stub(nbest), ["x", "", "y"], cfg, first_index=10, nbest_format="moses") == [
        "10 ||| a cat ||| LogProb= -0.7500 ||| -0.2500",
        "10 ||| the cat ||| LogProb= -1.5000 ||| -0.5000",
        "12 ||| dog ||| LogProb= -0.2500 ||| -0.1250",
    ]
    assert output_lines(Stub(nbest), ["x", "", "y"], cfg)[0] == "0\t-0.2500\ta cat"  # the default: as before
    one = [[h[0]] if h else [] for h in nbest]
    assert output_lines(Stub(one), ["x", "", "y"], DecodeConfig(beam_size=2), nbest_format="moses")[1].startswith(
        "2 |||"
    )
    with pytest.raises(ConfigError, match="unknown n-best format 'xml'"):
        output_lines(Stub(nbest), ["x"], cfg, nbest_format="xml")


def test_translate_writes_moses_nbest_lines_that_match_the_default_format(
    run_dir: Path, tmp_path: Path, capsys
) -> None:
    src = write(tmp_path / "in.xx", ["red cat", "big old dog", "new house tree"])
    ckpt = run_dir / "best.pt"
    flags = ["translate", "--checkpoint", ckpt, "--input", src, "--beam-size", 3, "--n-best", 3, "--quiet"]
    code, tsv, _ = run(flags, capsys)
    assert code == 0
    code, moses, _ = run([*flags, "--nbest-format", "moses"], capsys)
    assert code == 0
    fields = [line.split(" ||| ") for line in moses.splitlines()]
    assert [f[0] for f in fields] == ["0"] * 3 + ["1"] * 3 + ["2"] * 3 and all(
        f[2].startswith("LogProb= -") for f in fields
    )
    assert [(f[0], f[3], f[1]) for f in fields] == [tuple(line.split("\t")) for line in tsv.splitlines()]
