"""Bounded decoding: every DecodeConfig number is finite and in range, a beam is no wider than the
target vocabulary, and a search that would not fit in memory is refused before anything is allocated."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np
import pytest

from seq2seq.cli import main
from seq2seq.config import DECODE_BATCH, DECODE_BOUNDS, ConfigError, DecodeConfig, ModelConfig
from seq2seq.config_dict import from_dict
from seq2seq.search import search
from seq2seq.search_budget import kept_bytes, search_bytes
from seq2seq.translation.ensemble import EnsembleEngine
from seq2seq.translation.onnx_model import OnnxEngine
from seq2seq.translation.torch_engine import TorchEngine, Translator

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"length_penalty": math.nan}, "length_penalty must be a finite number, got nan"),
        ({"length_penalty": math.inf}, "length_penalty must be a finite number, got inf"),
        ({"length_penalty": 1e6}, "length_penalty must be <= 10.0"),
        ({"max_len_a": math.nan}, "max_len_a must be a finite number"),
        ({"max_len_a": 1e300}, "max_len_a must be <= 100.0"),
        ({"max_len_b": 10**9}, "max_len_b must be <= 100000"),
        ({"beam_size": 10**6}, "beam_size must be <= 1000"),
        ({"batch_size": 10**9}, "batch_size must be <= 100000"),
        ({"max_src_len": 10**9}, "max_src_len must be <= 100000"),
        ({"n_best": 10**30}, "n_best must be <= 1000"),
        ({"memory_budget_gb": math.inf}, "memory_budget_gb must be a finite number"),
        ({"memory_budget_gb": -1.0}, "memory_budget_gb must be >= 0.0"),
        ({"beam_size": 0}, "beam_size must be >= 1"),
        ({"beam_size": 10**400}, "beam_size must be <= 1000"),  # math.isfinite would overflow
        ({"max_len_a": 10**400}, "max_len_a must be"),  # float(10**400) would overflow
    ],
)
def test_decode_config_refuses_non_finite_and_out_of_range_values(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        DecodeConfig(**values)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):  # a TOML [decode] table or a request
        from_dict(DecodeConfig, values)


def test_every_number_of_decode_config_has_bounds_and_the_defaults_are_inside() -> None:
    numbers = {name for name, value in vars(DecodeConfig()).items() if type(value) in (int, float)}
    assert numbers == set(DECODE_BOUNDS)
    for name, (low, high) in DECODE_BOUNDS.items():
        assert low <= getattr(DecodeConfig(), name) <= high, name


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--length-penalty", "nan"], "length_penalty must be a finite number, got nan"),
        (["--max-len-b", "1000000000"], "max_len_b must be <= 100000"),
        (["--max-len-a", "1e300"], "max_len_a must be <= 100.0"),
        (["--beam-size", "1000000"], "beam_size must be <= 1000"),
        (["--beam-size", "10000"], "beam_size must be <= 1000"),
        (["--beam-size", "1" + "0" * 400], "beam_size must be <= 1000"),
        (["--beam-size", "1", "--stopping", "beam"], "stopping applies to beam search; with beam_size 1 (greedy"),
        # greedy search's length penalty changes only scores, which a plain output never prints
        (["--beam-size", "1", "--length-penalty", "0.6"], "length_penalty with beam_size 1 (greedy search) changes"),
        (["--nbest-format", "tsv"], "--nbest-format tsv applies only with --n-best > 1"),
        (["--beam-size", "3", "--nbest-format", "tsv"], "--nbest-format tsv applies only with --n-best > 1"),
    ],
)
def test_translate_refuses_bad_decode_values_in_one_line(tmp_path: Path, capsys, flags, message) -> None:
    (tmp_path / "in.txt").write_text("red cat\n")
    code = main(["translate", "--checkpoint", str(tmp_path / "no.pt"), "--input", str(tmp_path / "in.txt"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err


@pytest.fixture(scope="module")
def translator(run_dir: Path) -> Translator:
    return Translator.from_checkpoint(run_dir / "best.pt")


def test_a_beam_wider_than_the_target_vocabulary_is_refused(translator: Translator, run_dir: Path, capsys) -> None:
    vocab = len(translator.tgt_tok)
    wide = DecodeConfig(beam_size=vocab + 1)
    expected = f"beam_size {vocab + 1} is larger than the model's target vocabulary ({vocab} pieces)"
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        translator.check(wide)  # where the CLI and the server check a request, before any input is read
    with pytest.raises(ConfigError, match="larger than the model's target vocabulary"):
        translator.translate(["red cat"], wide)  # the library path: the search checks it too
    with pytest.raises(ConfigError, match="larger than the model's target vocabulary"):  # and for any engine
        search(EnsembleEngine([translator.search_engine(wide)] * 2), [[5, 6]], wide)
    assert translator.translate(["red cat"], DecodeConfig(beam_size=vocab))  # the whole vocabulary is fine
    code = main(["translate", "--checkpoint", str(run_dir / "best.pt"), "--beam-size", str(vocab + 1)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and expected in err


def test_the_onnx_engine_refuses_a_beam_wider_than_the_vocabulary(run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from seq2seq.translation import export_model, load_translator

    out = export_model(run_dir / "best.pt", tmp_path / "model.onnx.zip")
    translator = load_translator(out)
    vocab = len(translator.tgt_tok)
    with pytest.raises(ConfigError, match=f"beam_size {vocab + 1} is larger than the model's target vocabulary"):
        translator.check(DecodeConfig(beam_size=vocab + 1))
    engine = translator.search_engine(DecodeConfig())
    assert engine.footprint(10)[0] == vocab
    with pytest.raises(ConfigError, match="larger than the model's target vocabulary"):
        search(engine, [[5, 6]], DecodeConfig(beam_size=vocab + 1))


class Endless:
    """An engine whose best next piece is never EOS: every output runs to its length limit."""

    def encode(self, src_ids):
        return np.zeros(len(src_ids)), np.zeros(len(src_ids))

    def step(self, prev_ids, state, memory):
        log_probs = np.full((len(prev_ids), 8), -5.0, np.float32)
        log_probs[:, 4] = -0.1
        return log_probs, state, np.ones((len(prev_ids), 4), np.float32) / 4

    def select(self, obj, rows):
        return obj[rows]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_the_length_limit_is_a_times_the_source_with_its_eos_plus_b_eos_included(beam_size: int) -> None:
    """docs/decoding.md: a 3-piece source with the defaults (a=2, b=10) gets 2 * (3 + 1) + 10 = 18 output
    pieces, EOS included: 17 before the forced EOS (not 2 * 3 + 10 = 16)."""
    best = search(Endless(), [[5, 6, 7]], DecodeConfig(beam_size=beam_size))[0][0]
    assert len(best.ids) == 17


class NoAllocation:
    """An engine that fails the test if the search gets as far as encoding (allocating) anything."""

    def footprint(self, src_len: int) -> tuple[int, int]:
        return 8000, ModelConfig().decode_row_bytes(src_len, 8000)

    def encode(self, src_ids):
        raise AssertionError("the search started although it cannot fit in the budget")


def test_a_search_too_large_for_the_memory_budget_is_refused_before_allocating() -> None:
    cfg = DecodeConfig(beam_size=1000, batch_size=64, max_len_a=100.0, max_len_b=100_000, memory_budget_gb=8.0)
    with pytest.raises(ConfigError) as err:
        search(NoAllocation(), [[5] * 30] * 64, cfg)
    line = str(err.value)
    assert "\n" not in line and "over the budget of 8.0 GB (memory_budget_gb)" in line
    assert "the search of 64 sentences and their n-best lists would need about 309.6 GB" in line  # one alone fits
    with pytest.raises(ConfigError) as err:  # one sentence whose search alone cannot fit: named, with its batch of one
        search(NoAllocation(), [[5] * 30], dataclasses.replace(cfg, memory_budget_gb=4.0))
    assert "batch 1 x beam 1000 x up to 103100 output pieces, 8000-piece vocabulary" in str(err.value)
    # the same sentences with an ordinary beam and length limit fit easily: the engine is reached
    with pytest.raises(AssertionError, match="the search started"):
        search(NoAllocation(), [[5] * 30] * 64, DecodeConfig(beam_size=5, memory_budget_gb=8.0))


class Batches:
    """Records the batches the search encodes, then stops it (`size`: the engine's own batch size, if any)."""

    def __init__(self, size: int | None = None) -> None:
        self.seen: list[int] = []
        if size is not None:
            self.batch_size = size

    def footprint(self, src_len: int) -> tuple[int, int]:
        return 8000, ModelConfig().decode_row_bytes(src_len, 8000)

    def encode(self, src_ids):
        self.seen.append(len(src_ids))
        raise StopIteration  # the batch size is all this test wants


def _first_batch(engine: Batches, cfg: DecodeConfig, n: int = 600, length: int = 30) -> int:
    with pytest.raises(StopIteration):
        search(engine, [[5] * length] * n, cfg)
    return engine.seen[0]


def test_batch_size_0_takes_the_engines_own_and_halves_it_until_the_search_fits() -> None:
    """0 (the default): the engine's batch size (DECODE_BATCH: torch 256, ONNX 64; 64 for an engine that names
    none), at most the sentences there are; where that would not fit the memory budget, the largest halving that
    does, instead of a refusal. An explicit batch_size is never changed: too large is refused, as before."""
    assert DecodeConfig().batch_size == 0 and DECODE_BATCH == {"torch": 256, "onnx": 64}
    assert TorchEngine.batch_size == 256 and OnnxEngine.batch_size == 64
    roomy = DecodeConfig(memory_budget_gb=1000.0)
    assert _first_batch(Batches(256), roomy) == 256 and _first_batch(Batches(), roomy) == 64
    assert _first_batch(Batches(256), roomy, n=100) == 100
    assert EnsembleEngine([Batches(256), Batches()]).batch_size == 64  # the smallest member's
    assert _first_batch(Batches(256), DecodeConfig(batch_size=7, memory_budget_gb=1000.0)) == 7
    row = search_bytes(5, int(2.0 * 31 + 10), 31, Batches().footprint(31), False)  # one sentence, beam 5
    tight = DecodeConfig(memory_budget_gb=row * 40 / 1e9)  # room for 40 sentences, not 64 or 256
    assert _first_batch(Batches(256), tight) == 32
    with pytest.raises(ConfigError, match="translate fewer sentences at a time, or lower batch_size"):
        search(Batches(), [[5] * 30] * 600, DecodeConfig(batch_size=64, memory_budget_gb=row * 40 / 1e9))


def test_the_estimate_counts_batch_beam_length_vocabulary_and_attention() -> None:
    base = search_bytes(rows=10, steps=100, src_len=20, footprint=(1000, 5000), keep_attention=False)
    assert base == 10 * (8 * 101 + 12 * 1000 + 5000 + 2 * 36 * 100)  # + two finished hypotheses' ids a row
    assert search_bytes(20, 100, 20, (1000, 5000), False) == 2 * base  # twice the rows (batch x beam)
    assert search_bytes(10, 100, 20, (1000, 5000), True) == base + 10 * (8 + 2 * 4) * 100 * 20  # kept attention
    longer = search_bytes(10, 10_000, 20, (1000, 5000), False)
    assert longer - base == 10 * (8 + 2 * 36) * (10_000 - 100)  # the token ids of every step
    # the default budget is half of this machine's memory; an explicit one replaces it
    assert DecodeConfig(memory_budget_gb=2.5).memory_budget() == 2_500_000_000
    assert DecodeConfig().memory_budget() > 0


def test_the_estimate_bounds_what_the_numpy_search_allocates(translator: Translator, run_dir: Path, tmp_path) -> None:
    """The search's own arrays (tokens, top-k work, kept attention) stay under the estimate, measured
    with tracemalloc over the ONNX engine (the arrays it hands the search are NumPy's, so all traced)."""
    import tracemalloc

    pytest.importorskip("onnxruntime")
    from seq2seq.translation import export_model, load_translator

    runtime = load_translator(export_model(run_dir / "best.pt", tmp_path / "m.onnx.zip"))
    engine = runtime.search_engine(DecodeConfig())
    sources = [list(np.random.default_rng(0).integers(4, 30, size=12)) for _ in range(16)]
    cfg = DecodeConfig(beam_size=len(runtime.tgt_tok), batch_size=16, max_len_a=0.0, max_len_b=200, length_penalty=0)
    steps, src_len = cfg.max_len_b, 13
    kept = 1 + cfg.n_best / cfg.beam_size
    estimate = search_bytes(16 * cfg.beam_size, steps, src_len, engine.footprint(src_len), True, kept)
    tracemalloc.start()
    search(engine, sources, cfg, keep_attention=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert 0.05 * estimate < peak < estimate  # loose: it counts the kept finished hypotheses at full length


@pytest.mark.parametrize(
    "flags",
    [
        ["--beam-size", "1", "--length-penalty", "0.6", "--nbest-format", "moses"],  # Moses lines print the score
        ["--beam-size", "3", "--length-penalty", "0.6"],  # the beam's ranking uses it
        ["--beam-size", "3", "--n-best", "2", "--length-penalty", "0.6", "--nbest-format", "tsv"],
    ],
)
def test_a_length_penalty_or_nbest_format_that_shows_in_the_output_is_kept(
    run_dir: Path, tmp_path: Path, flags, translator: Translator, capsys
) -> None:
    """The greedy Moses line's score is checked to be the penalised log-prob: only the exit status was, so
    greedy search printing its log-prob as the score passed."""
    (tmp_path / "in.txt").write_text("red cat\n")
    code = main(["translate", "--checkpoint", str(run_dir / "best.pt"), "--input", str(tmp_path / "in.txt"), "-q",
                 *flags])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    if "moses" in flags:
        index, text, log_prob, score = out.out.rstrip("\n").split(" ||| ")
        [[(_, hyp)]] = translator.translate_nbest(["red cat"], DecodeConfig(beam_size=1))
        log_prob = float(log_prob.removeprefix("LogProb= "))
        assert (index, text) == ("0", translator.tgt_tok.decode([hyp.ids])[0]) and log_prob < -0.01
        assert float(score) == pytest.approx(log_prob / (len(hyp.ids) + 1) ** 0.6, abs=1e-4)  # EOS counts


def test_a_decode_table_shared_with_serve_may_hold_a_length_penalty(run_dir: Path, tmp_path: Path, capsys) -> None:
    """`serve` prints scores, so a [decode] table shared with it may hold length_penalty beside beam_size 1:
    `translate --config` on it was refused, and no flag could clear a value from the table. The flag itself
    given with greedy plain output stays refused."""
    (tmp_path / "in.txt").write_text("red cat\n")
    (tmp_path / "decode.toml").write_text("[decode]\nbeam_size = 1\nlength_penalty = 0.6\n")
    args = ["translate", "--checkpoint", str(run_dir / "best.pt"), "--input", str(tmp_path / "in.txt"), "-q"]
    assert main([*args, "--config", str(tmp_path / "decode.toml")]) == 0, capsys.readouterr().err
    assert main([*args, "--beam-size", "1", "--length-penalty", "0.6"]) == 2
    assert "length_penalty with beam_size 1" in capsys.readouterr().err


LINES = ["red cat", "big old dog", "new house tree", "small bird", "green blue cat dog", "sun", "", "tree house"] * 25


def _kept(translator: Translator, sentences: list[str], cfg: DecodeConfig, keep_attention: bool) -> int:
    lens = np.array([len(ids) + 1 for ids in translator.src_tok.encode([s for s in sentences if s])])
    return kept_bytes(lens, cfg, keep_attention)


@pytest.mark.parametrize("aligned", [False, True])
def test_the_kept_n_best_lists_stay_under_their_estimate(translator: Translator, aligned: bool) -> None:
    """What a translate_nbest / translate_aligned call holds once it returns (ids, texts, attention, alignments),
    measured with tracemalloc, is below `kept_bytes` (and above a tenth of it: it is meant as a bound, not a guess)."""
    import tracemalloc

    cfg = DecodeConfig(beam_size=4, n_best=4)
    tracemalloc.start()
    found = translator.translate_aligned(LINES, cfg) if aligned else translator.translate_nbest(LINES, cfg)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert sum(map(len, found)) == 4 * 175
    assert 0.1 * _kept(translator, LINES, cfg, aligned) < held < _kept(translator, LINES, cfg, aligned)


def test_the_n_best_lists_of_a_chunk_count_against_the_budget(translator: Translator) -> None:
    """search() kept every sentence's n-best lists (and attention, for alignments) until the chunk of up to 16,384
    lines ended, unchecked (172 kB a sentence with --alignments --beam-size 20 --n-best 20: 2.8 GB a chunk). Now they
    count: a search whose lists would take over half the budget is refused naming no line (fewer at a time fit), and
    `translate` cuts such a chunk into parts that fit, writing the same translations in the same order."""
    from dataclasses import replace

    from seq2seq.search_budget import OverBudget
    from seq2seq.translation.stream import output_lines, stream_translate

    roomy = DecodeConfig(beam_size=4, n_best=4)
    tight = replace(roomy, memory_budget_gb=1.5 * _kept(translator, LINES, roomy, True) / 1e9)
    with pytest.raises(OverBudget, match=r"^the n-best lists of 175 sentences would need about .* over half") as err:
        translator.check_memory(LINES, tight, keep_attention=True)
    assert err.value.index is None
    out: list[str] = []
    assert stream_translate(translator, iter([LINES]), out.append, lambda: None, tight, alignments=True) == len(LINES)
    unscored = [line.split("\t")[::2] for line in output_lines(translator, LINES, roomy, alignments=True)]
    assert [line.split("\t")[::2] for line in "".join(out).splitlines()] == unscored  # scores: to float32 rounding


def test_the_library_searches_a_long_list_in_parts_that_fit(translator: Translator) -> None:
    """translate / translate_nbest / translate_aligned refused a list whose n-best lists would take over half the
    budget ("the n-best lists of 175 sentences ... translate fewer sentences at a time"), though each sentence fits:
    a call that worked before the lists counted. They now search it in parts that fit (`split_parts`), as `translate`
    on the command line does; only a sentence that cannot fit alone is refused."""
    greedy = DecodeConfig(beam_size=1)
    tight = 1.5 * _kept(translator, LINES, greedy, False) / 1e9
    assert translator.translate(LINES, beam_size=1, memory_budget_gb=tight) == translator.translate(LINES, greedy)
    aligned = DecodeConfig(beam_size=4, n_best=4)
    gb = 1.5 * _kept(translator, LINES, aligned, True) / 1e9
    got = translator.translate_aligned(LINES, aligned, memory_budget_gb=gb)
    expected = translator.translate_aligned(LINES, aligned)
    assert [[(a.text, str(a.alignment)) for a in hyps] for hyps in got] == [
        [(a.text, str(a.alignment)) for a in hyps] for hyps in expected
    ]


def test_a_line_that_fits_alone_is_not_blamed_for_the_n_best_lists_of_the_others() -> None:
    """check_search blamed the longest source whenever its search plus the n-best lists of ALL the sources were
    over the budget (with the lists under half of it), and translate refused that line instead of halving the chunk:
    600 train lines and one 600-word line, --n-best 5 --memory-budget-gb 0.015, which translated before the lists
    counted, stopped at line 601 ("about 16.0 MB ... over the budget of 15.0 MB"), though that line alone fits. Now
    only a source whose own search and lists do not fit is named; else none (fewer at a time fit: split_parts)."""
    from seq2seq.search_budget import OverBudget, check_search, max_lengths, split_parts

    sources = [[5] * 3] * 50 + [[5] * 30]
    cfg = DecodeConfig(beam_size=5, n_best=5)
    steps = int(max_lengths(np.array([31]), cfg.max_len_a, cfg.max_len_b)[0])
    search_1 = search_bytes(5, steps, 31, NoAllocation().footprint(31), False, 2.0)  # batch 1, n-best 5 of beam 5
    lists = kept_bytes(np.array([len(s) + 1 for s in sources]), cfg, False)
    alone = search_1 + kept_bytes(np.array([31]), cfg, False)
    low = max(alone, 2 * lists)  # the long line fits alone; all the lists fit in half the budget
    assert low < search_1 + lists  # ... but its search beside all the lists does not
    tight = DecodeConfig(beam_size=5, n_best=5, memory_budget_gb=(low + search_1 + lists) / 2 / 1e9)
    check_search(NoAllocation(), sources[-1:], tight, False)
    with pytest.raises(OverBudget, match="translate fewer sentences at a time") as err:
        check_search(NoAllocation(), sources, tight, False)
    assert err.value.index is None
    parts = list(split_parts(lambda a, b: check_search(NoAllocation(), sources[a:b], tight, False), len(sources)))
    assert parts[-1][1] == len(sources) and all(a == b for (_, a), (b, _) in zip(parts, parts[1:]))
    # a line that does not fit even alone is named, by its index among all the sources
    over = DecodeConfig(beam_size=5, n_best=5, memory_budget_gb=(alone - 1000) / 1e9)
    with pytest.raises(OverBudget, match="this search would need") as err:
        list(split_parts(lambda a, b: check_search(NoAllocation(), sources[a:b], over, False), len(sources)))
    assert err.value.index == 50 and str(err.value).startswith("sentence 51: ")


def test_nothing_to_search_is_never_over_the_budget() -> None:
    """A list of blank lines reaches the check with no source: argmax of an empty array was a ValueError (a
    traceback from `translate` on a file of blank lines with a small budget; a 500 from the server)."""
    from seq2seq.search_budget import check_search

    assert check_search(NoAllocation(), [], DecodeConfig(beam_size=1000, memory_budget_gb=1e-6), False) == 1
