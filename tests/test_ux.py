"""What a new user stumbled on (issue 29: 5): the training clock, a missing val split, the test split
to pass, the precision line, the progress bar's ETA, translate's summary, --help, attention's beam,
and the pictures' axes."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import datasets
import huggingface_hub
import pytest
from corpora import write_corpus

from seq2seq.cli import build_parser, main
from seq2seq.cli.flags import DefaultsHelp
from seq2seq.config import DataConfig, DecodeConfig, ModelConfig, TrainConfig
from seq2seq.errors import CorpusError
from seq2seq.machine import hardware
from seq2seq.preprocess import preprocess
from seq2seq.progress import bar_total
from seq2seq.runfiles import read_metrics
from seq2seq.science.span_plots import plot_memory_span
from seq2seq.science.span_settings import MemorySpanResult, SpanSettings
from seq2seq.sources.download import HoldOut, download
from seq2seq.text import read_lines
from seq2seq.tools import plots
from seq2seq.train import RunOptions, RunSpec, train
from seq2seq.translation.torch_engine import Translator

if TYPE_CHECKING:
    from pathlib import Path

TINY_MODEL = ModelConfig(emb_size=16, enc_hidden=16, dec_hidden=32)
TINY_DATA = DataConfig(vocab_size=60)


def _corpus_args(corpus: Path, run: Path) -> list[str]:
    return ["--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(run), "--vocab-size", "60"]


def _one_error_line(args: list[str], capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"seq2seq {args[0]}: error: "), err
    return err[0]


# --- the training clock and the progress bar -----------------------------------------------------


class _Bar:
    """A stand-in for tqdm that records every total it is given."""

    def __init__(self, total: int | None = None, initial: int = 0, **kwargs: Any) -> None:
        self.n, self.totals = initial, [total]
        _Bar.last = self

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "total":
            self.totals.append(value)
        object.__setattr__(self, name, value)

    def update(self, k: int) -> None:
        self.n += k

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def test_bar_total_is_the_update_the_budget_ends_at() -> None:
    assert bar_total(TrainConfig(), 10, 5.0) is None  # no budget: no total, no ETA
    assert bar_total(TrainConfig(max_steps=300), 0, 0.0) == 300
    assert bar_total(TrainConfig(max_minutes=1.0), 0, 0.0) is None  # no pace yet
    assert bar_total(TrainConfig(max_minutes=1.0), 10, 6.0) == 100  # 10 updates in 6 s: 100 in 60 s
    assert bar_total(TrainConfig(max_minutes=1.0, max_steps=50), 10, 6.0) == 50  # the steps end first
    assert bar_total(TrainConfig(max_minutes=1.0, max_steps=500), 10, 6.0) == 100  # the clock ends first
    assert bar_total(TrainConfig(max_minutes=0.05), 10, 6.0) == 10  # over time: never below the updates done


def test_max_minutes_counts_training_not_preprocessing_and_the_bar_has_a_total(tmp_path, monkeypatch) -> None:
    """A preparation that takes 1.5 s is not on the clock; with --max-minutes the bar gets a total (an ETA)."""
    import seq2seq.train as train_module
    import seq2seq.trainer as trainer_module

    slow_prepare = train_module.ensure_prepared

    def prepare(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.5)
        return slow_prepare(*args, **kwargs)

    monkeypatch.setattr(train_module, "ensure_prepared", prepare)
    monkeypatch.setattr(trainer_module, "tqdm", _Bar)
    corpus = write_corpus(tmp_path / "corpus", n_train=60)
    cfg = TrainConfig(max_tokens=120, max_minutes=10.0, max_epochs=1, valid_every=1000, valid_bleu_sentences=0,
                      log_every=1, threads=1)  # fmt: skip
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), TINY_DATA, TINY_MODEL, cfg, RunOptions())
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")["train"]
    assert records[0]["elapsed_s"] < 1.5  # the clock started after the 1.5 s preparation
    bar = _Bar.last
    assert bar.totals[0] is None and all(isinstance(t, int) for t in bar.totals[1:]) and len(bar.totals) > 1
    assert bar.totals[-1] >= bar.n == len(records)

    monkeypatch.setattr(train_module, "ensure_prepared", slow_prepare)
    steps = TrainConfig(max_tokens=120, max_steps=3, valid_every=3, valid_bleu_sentences=0, threads=1)
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), TINY_DATA, TINY_MODEL, steps, RunOptions(overwrite=True))
    assert _Bar.last.totals == [3]  # --max-steps alone: its total from the start


# --- the val and test splits -----------------------------------------------------------------------


def test_preprocess_without_a_val_split_exits_2_naming_the_file(tmp_path, capsys) -> None:
    corpus, run = write_corpus(tmp_path / "corpus", n_train=60), tmp_path / "run"
    (corpus / "val.yy").unlink()
    line = _one_error_line(["preprocess", *_corpus_args(corpus, run)], capsys)
    assert f"no validation split: {corpus / 'val.yy'} not found" in line
    assert "val.xx" not in line.split("not found")[0]  # the file that is there is not named missing
    assert "--val-size N" in line and "--val-split NAME" in line
    assert not (run / "preprocess.json").exists()

    (corpus / "val.xx").rename(corpus / "valid.xx")  # a val split under another name: the flag that takes it
    (corpus / "test.yy").rename(corpus / "valid.yy")
    line = _one_error_line(["preprocess", *_corpus_args(corpus, run)], capsys)
    assert line.endswith("found valid.xx/valid.yy: pass --val-split valid")


def test_a_split_file_that_is_a_folder_is_named_as_a_folder(tmp_path, capsys, caplog) -> None:
    corpus, run = write_corpus(tmp_path / "corpus", n_train=60), tmp_path / "run"
    val = (corpus / "val.xx").read_text()
    (corpus / "val.xx").unlink()
    (corpus / "val.xx").mkdir()
    line = _one_error_line(["preprocess", *_corpus_args(corpus, run)], capsys)
    assert f"no validation split: {corpus / 'val.xx'} is a folder, not a text file" in line
    assert "not found" not in line
    (corpus / "val.xx").rmdir()
    (corpus / "val.xx").write_text(val)
    for lang in ("xx", "yy"):
        (corpus / f"test.{lang}").unlink()
        (corpus / f"test.{lang}").mkdir()
    caplog.set_level(logging.WARNING, logger="seq2seq")
    preprocess(corpus, "xx", "yy", run, TINY_DATA)
    (warning,) = [r.getMessage() for r in caplog.records if "no test split" in r.getMessage()]
    assert warning == f"no test split: {corpus / 'test.xx'} and {corpus / 'test.yy'} are folders, not text files"


def test_a_missing_test_split_warning_names_the_test_split_to_pass(tmp_path, caplog) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=60)
    for lang in ("xx", "yy"):
        (corpus / f"test.{lang}").rename(corpus / f"test_2016_flickr.{lang}")
    caplog.set_level(logging.WARNING, logger="seq2seq")
    manifest = preprocess(corpus, "xx", "yy", tmp_path / "run", TINY_DATA)
    assert sorted(manifest["splits"]) == ["train", "val"]
    (warning,) = [r.getMessage() for r in caplog.records if "no test split" in r.getMessage()]
    assert warning.endswith("found test_2016_flickr.xx/test_2016_flickr.yy: pass --test-split test_2016_flickr")
    named = dataclasses.replace(TINY_DATA, test_split="test_2016")  # a test split asked for by name: an error
    with pytest.raises(CorpusError, match=r"^no test split 'test_2016': .*pass --test-split test_2016_flickr"):
        preprocess(corpus, "xx", "yy", tmp_path / "run2", named)


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`datasets` without the network (as tests/test_download.py)."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: pytest.fail("a test tried to use the network"))


def _jsonl(path: Path, n: int) -> list[tuple[str, str]]:
    pairs = [(f"Satz {i}", f"sentence {i}") for i in range(n)]
    path.write_text("".join(json.dumps({"de": d, "en": e}) + "\n" for d, e in pairs), encoding="utf-8")
    return pairs


def _pairs(out: Path, split: str) -> list[tuple[str, str]]:
    return list(zip(read_lines(out / f"{split}.de"), read_lines(out / f"{split}.en")))


@pytest.mark.parametrize("streaming", [False, True])
def test_download_holds_out_exactly_n_val_pairs(tmp_path, offline, streaming) -> None:
    pairs = _jsonl(tmp_path / "corpus.jsonl", 12)
    manifest = download(tmp_path / "corpus.jsonl", "de", "en", tmp_path / "a", streaming=streaming,
                        hold_out=HoldOut(4, seed=7))  # fmt: skip
    train_, val = _pairs(tmp_path / "a", "train"), _pairs(tmp_path / "a", "val")
    assert len(val) == 4 and len(train_) == 8
    assert sorted(train_ + val) == sorted(pairs) and not set(train_) & set(val)  # the union is the input
    assert [p for p in pairs if p in val] == val and [p for p in pairs if p in train_] == train_  # order kept
    assert manifest["splits"]["val"] == {"from_split": "train", "lines": 4, "held_out_of": 12, "seed": 7,
                                         "fingerprint": None}  # fmt: skip
    assert manifest["splits"]["train"]["lines"] == 8
    assert sorted(p.name for p in (tmp_path / "a").iterdir() if p.name != ".lock") == [
        "manifest.json", "train.de", "train.en", "val.de", "val.en"]  # fmt: skip
    download(tmp_path / "corpus.jsonl", "de", "en", tmp_path / "b", hold_out=HoldOut(4, seed=7))
    assert _pairs(tmp_path / "b", "val") == val  # deterministic: the same seed picks the same pairs


def test_download_refuses_a_val_size_it_cannot_hold_out(tmp_path, offline, capsys) -> None:
    _jsonl(tmp_path / "corpus.jsonl", 5)
    args = ["download", "--dataset", str(tmp_path / "corpus.jsonl"), "--src", "de", "--tgt", "en"]
    line = _one_error_line([*args, "--out", str(tmp_path / "a"), "--val-size", "5"], capsys)
    assert line.endswith("--val-size 5: the train split has 5 lines; hold out fewer, so that training keeps some")
    assert not (tmp_path / "a").exists()
    line = _one_error_line([*args, "--out", str(tmp_path / "s"), "--val-size", "9", "--streaming"], capsys)
    assert "--val-size 9: the train split has 5 lines" in line  # known once streamed: nothing left behind
    assert not (tmp_path / "s").exists()  # the folder the download's lock made goes too
    (tmp_path / "g").mkdir()  # a glob's files each name their split
    _jsonl(tmp_path / "g" / "train.jsonl", 5), _jsonl(tmp_path / "g" / "validation.jsonl", 2)
    both = ["download", "--dataset", str(tmp_path / "g" / "*.jsonl"), "--src", "de", "--tgt", "en", "--val-size", "1"]
    line = _one_error_line([*both, "--out", str(tmp_path / "c")], capsys)
    assert "has a val split already ('validation')" in line
    assert main([*args, "--out", str(tmp_path / "d"), "--val-size", "2"]) == 0
    assert "wrote" in capsys.readouterr().out and len(read_lines(tmp_path / "d" / "val.de")) == 2


# --- translate, serve and attention: the precision line, the summary, the beam ---------------------


def test_the_precision_line_is_one_debug_record_when_translating(run_dir, monkeypatch, caplog) -> None:
    monkeypatch.setattr(hardware, "_LOGGED", set())
    caplog.set_level(logging.DEBUG, logger="seq2seq")
    translator = Translator.from_checkpoint(run_dir / "best.pt")
    translator.describe()  # what `serve` logs and /health reports
    for _ in range(2):
        translator.translate(["red cat", "big dog"])
    precision = [r for r in caplog.records if r.getMessage().startswith("precision:")]
    assert len(precision) == 1 and precision[0].levelno == logging.DEBUG


def test_translate_ends_with_a_summary_line_on_stderr(run_dir, tmp_path) -> None:
    (tmp_path / "in.txt").write_text("red cat\nbig dog\nold tree\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "seq2seq", "translate", "--checkpoint", str(run_dir / "best.pt"),
           "--input", str(tmp_path / "in.txt"), "--beam-size", "2"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    assert len(done.stdout.splitlines()) == 3
    (line,) = done.stderr.strip().splitlines()  # the summary, and no precision line at INFO
    assert " INFO translated 3 sentences in " in line and " sentences/s; the model loaded in " in line


def test_attention_decodes_with_translates_default_beam(run_dir, tmp_path, monkeypatch) -> None:
    beams: list[int] = []
    search = Translator.translate_nbest

    def spy(self: Translator, sentences: list[str], cfg: DecodeConfig | None = None, **kwargs: Any) -> Any:
        beams.append((cfg or DecodeConfig()).beam_size)
        return search(self, sentences, cfg, **kwargs)

    monkeypatch.setattr(Translator, "translate_nbest", spy)
    assert main(["attention", "--checkpoint", str(run_dir / "best.pt"), "--sentence", "red cat",
                 "--out", str(tmp_path / "a.png")]) == 0  # fmt: skip
    assert main(["attention", "--checkpoint", str(run_dir / "best.pt"), "--sentence", "red cat",
                 "--out", str(tmp_path / "b.png"), "--beam-size", "1"]) == 0  # fmt: skip
    assert beams == [DecodeConfig().beam_size, 1]


# --- --help -------------------------------------------------------------------------------------------


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_help_names_docs_pages_not_source_files_and_shows_every_default() -> None:
    commands = _subcommands()
    assert {"download", "preprocess", "train", "translate", "attention", "serve"} <= set(commands)
    assert ".py" not in build_parser().format_help()
    for name, parser in commands.items():
        text = parser.format_help()
        assert ".py" not in text, f"seq2seq {name} --help names a source file"
        formatter = parser._get_formatter()
        assert isinstance(formatter, DefaultsHelp), name
        for action in parser._actions:
            if not action.option_strings or action.required or action.nargs == 0:
                continue  # positionals, required options, on/off switches
            shown = formatter._get_help_string(action)
            assert "default" in shown or "required" in shown, f"seq2seq {name} {action.option_strings[0]}"
    demo = commands["demo"].format_help()
    assert "training wall-clock budget (minutes; > 0: the demo's only stop) (default: 2.5)" in " ".join(demo.split())
    train_help = " ".join(commands["train"].format_help().split())
    assert "--max-minutes FLOAT stop after this many training minutes: preprocessing not counted" in train_help
    attention = " ".join(commands["attention"].format_help().split())
    assert f"--beam-size BEAM_SIZE 1: greedy (default: {DecodeConfig().beam_size}, as translate)" in attention


# --- pictures -----------------------------------------------------------------------------------------


def test_piece_labels_mark_words_not_the_sentencepiece_glyph() -> None:
    labels, starts = plots.piece_labels(["\u2581Ein", "\u2581Spiel", "haus", "\u2581", "Ä", ".", "</s>"])
    assert labels == ["Ein", "Spiel", "\u00b7haus", "\u00b7", "\u00b7Ä", "\u00b7.", "</s>"]
    assert starts == [1, 3, 6]  # a white line before each word (and before </s>)
    assert plots.piece_labels(["haus", "\u2581aus"]) == (["haus", "aus"], [1])


def _captured(monkeypatch: pytest.MonkeyPatch, module: Any) -> dict[str, Any]:
    """The figures `module` saves, by file name, drawn (so that tick labels are final)."""
    figures: dict[str, Any] = {}

    def keep(fig: Any, out_png: Any) -> Any:
        fig.canvas.draw()
        figures[str(out_png).rsplit("/", 1)[-1]] = fig
        return out_png

    monkeypatch.setattr(module, "save_figure", keep)
    return figures


def test_attention_axes_show_words_without_the_glyph(monkeypatch, tmp_path) -> None:
    figures = _captured(monkeypatch, plots)
    src, tgt = ["\u2581Ein", "\u2581Spiel", "haus", "</s>"], ["\u2581A", "\u2581play", "house", "</s>"]
    plots.plot_attention([[0.25] * 4] * 4, src, tgt, tmp_path / "a.png")
    ax = figures["a.png"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Ein", "Spiel", "\u00b7haus", "</s>"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "play", "\u00b7house", "</s>"]
    assert "\u2581" not in "".join(t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels())


def test_a_constant_learning_rate_plot_has_a_plain_axis(monkeypatch, tmp_path) -> None:
    assert plots.flat_limits([1e-3, 1e-3 + 1e-19, 1e-3]) == (0.0, 2e-3 + 2e-19)
    assert plots.flat_limits([0.0, 0.0]) == (-1.0, 1.0)
    assert plots.flat_limits([1e-3, 5e-4]) is None  # a decaying rate: matplotlib's range
    run = tmp_path / "run"
    run.mkdir()
    lrs = [1e-3, 1e-3 + 2e-19, 1e-3 - 1e-19, 1e-3]  # an annealed-then-restored float: rounding noise
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"type": "train", "step": 10 * (i + 1), "loss": 5.0 - i, "lr": lr, "grad_norm": 1.0}) + "\n"
        for i, lr in enumerate(lrs)
    ))  # fmt: skip
    figures = _captured(monkeypatch, plots)
    plots.plot_run(run)
    ax = figures["lr.png"].axes[0]
    assert ax.get_ylim() == pytest.approx((0.0, 2e-3))
    assert ax.yaxis.get_offset_text().get_text() in ("", "1e\u22123")  # a scale at most, never "+1e-19"
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(set(labels)) == len(labels) > 2  # distinct, readable ticks


def test_a_run_with_one_validation_plots_a_visible_point_on_a_plain_step_axis(monkeypatch, tmp_path) -> None:
    """A short run (the README's 1-minute demo) logs one validation and no train record: its lr and
    BLEU curves are one point, drawn as a marker on a step axis from 0 with whole-number ticks."""
    run = tmp_path / "run"
    run.mkdir()
    record = {"type": "valid", "step": 12, "val_loss": 1.67, "val_bleu": 18.4, "lr": 0.002}
    (run / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    figures = _captured(monkeypatch, plots)
    plots.plot_run(run)
    for name in ("lr.png", "bleu.png", "loss.png"):
        ax = figures[name].axes[0]
        (line,) = ax.get_lines()
        assert line.get_marker() == "o" and list(line.get_xdata()) == [12], name
        assert ax.get_xlim() == (0, 24), name
        ticks = [t for t in ax.get_xticks() if 0 <= t <= 24]
        assert ticks and all(float(t).is_integer() for t in ticks), (name, ticks)


def test_memory_span_delays_are_plain_ticks(monkeypatch, tmp_path) -> None:
    from seq2seq.science import span_plots

    figures = _captured(monkeypatch, span_plots)
    scores = ((10, 1.0), (20, 0.99), (50, 0.5), (100, 0.2), (500, 0.1))
    rows = [{"task": "recall", "cell": cell, "delay": d, "score": s, "params": 100}
            for cell in ("gru", "lstm") for d, s in scores]  # fmt: skip
    result = MemorySpanResult(rows=rows, largest={"recall": {"gru": 20, "lstm": 20}}, settings=SpanSettings(),
                              seconds=1.0)  # fmt: skip
    plot_memory_span(result, tmp_path / "span.png")
    ax = figures["span.png"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "20", "50", "100", "500"]
    assert not ax.xaxis.get_minorticklocs().size
