"""`seq2seq memory-span` and `seq2seq gradflow` refuse, in one line with exit status 2 and before any
training, model or allocation: sizes past their bounds or past this machine's memory, non-finite
numbers, seeds torch cannot take, settings the run would ignore, and outputs that cannot be written."""

from __future__ import annotations

import importlib.util
import time
from typing import TYPE_CHECKING

import pytest

from seq2seq.cli import main
from seq2seq.config import ConfigError
from seq2seq.science import gradflow, memory_span
from seq2seq.science.memory_span import matched_hidden
from seq2seq.science.span_settings import SpanSettings
from seq2seq.science.span_tasks import Task

if TYPE_CHECKING:
    from pathlib import Path

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs seq2seq-nmt[plot]")


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line of a command that must exit with status 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any sweep, model or fresh gradient flow started fails the test: the refusal must come first."""

    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("the work started before the refusal")

    monkeypatch.setattr(memory_span, "sweep", started)
    monkeypatch.setattr(gradflow, "fresh_gradient_flow", started)
    monkeypatch.setattr(gradflow, "checkpoint_gradient_flow", started)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--hidden", "10000000"], "--hidden must be in [1, 4,096]"),
        (["--delays", "1000000000"], "--delays must be in [2, 100,000]"),
        (["--val-size", "1000000000"], "--val-size must be in [1, 1,000,000]"),
        (["--seeds", "1000000000"], "--seeds must be in [1, 100]"),
        (["--steps", "1000000000000"], "--steps must be in [1, 1,000,000]"),
        (["--delays", "20000", "--val-size", "1000000"], "GB"),  # each within bounds, together past the memory
        (["--workers", "-1"], "--workers must be in [1, 256]"),
        (["--workers", "100000"], "--workers must be in [1, 256]"),
        (["--lr", "nan"], "--lr must be a finite number"),
        (["--lr", "inf"], "--lr must be a finite number"),
        (["--clip-norm", "nan"], "--clip-norm must be a finite number"),
        (["--init", "forget-bias", "--forget-bias", "nan"], "--forget-bias must be a finite number"),
        (["--retry-lrs", "nan"], "--retry-lrs"),
        (["--lr", "1e308"], "need --lr in (0, 1,000]"),  # a traceback mid-run (Adam's step overflows float32)
        (["--retry-lrs", "3e-3 1e30"], "--retry-lrs must be learning rates in (0, 1,000]"),
        (["--seed", "100000000000000000000000"], "--seed must be in [0, "),
        (["--init", "chrono", "--forget-bias", "5"], "--forget-bias 5.0 would be ignored"),
        (["--init", "default", "--chrono-tmax", "50"], "--chrono-tmax 50 would be ignored"),
        (["--cells", "rnn", "--init", "forget-bias"], "--init forget-bias would be ignored"),
        (["--copy-length", "5"], "--copy-length 5 would be ignored"),  # tasks recall and adding
        (["--task", "copy", "--n-symbols", "4"], "--n-symbols 4 would be ignored"),
        (["--task", "adding", "--alphabet", "4"], "--alphabet 4 would be ignored"),
        (["--cells", "rnn", "--init", "chrono"], "--init chrono would be ignored"),  # given at the default
        (["--copy-length", "10"], "--copy-length 10 would be ignored"),  # the default, given
        (
            ["--task", "adding", "--tbptt", "8"],
            "--tbptt 8 would be ignored on adding: its longest sequence in this run has 8 steps",
        ),  # fmt: skip
        (
            ["--task", "recall", "adding", "--tbptt", "10"],  # recall's 12 steps are cut, adding's 8 would not be
            "--tbptt 10 would be ignored on adding: its longest sequence in this run has 8 steps",
        ),
        (["--seed", "0"], "seed 0 at delay 2 would train on its own test set"),  # --quick: delays 2 and 8
        (["--seed", "0", "--delays", "3", "5"], "seed 0 at delay 3 would train on its own probe set"),
    ],
)
def test_memory_span_refuses_in_one_line_before_training(
    flags: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_training: None
) -> None:
    err = refused(["memory-span", "--quick", "--out", str(tmp_path / "ms"), *flags], capsys)
    assert says in err
    assert not (tmp_path / "ms").exists()  # a refused run leaves no folder behind


def test_memory_span_refuses_an_out_that_is_a_file_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_training: None
) -> None:
    (tmp_path / "msfile").write_text("mine\n")
    err = refused(["memory-span", "--quick", "--out", str(tmp_path / "msfile")], capsys)
    assert "msfile" in err and "not a folder" in err
    assert (tmp_path / "msfile").read_text() == "mine\n"


def test_memory_span_refuses_an_out_that_holds_a_result_unless_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second run into the same --out replaced a study of hours (memory_span.json, its csv and pictures)."""
    monkeypatch.setattr(memory_span, "sweep", lambda *a, **k: [])
    monkeypatch.setattr(memory_span, "write_result", lambda *a: [])
    monkeypatch.setattr(memory_span, "plot_memory_span", lambda *a: None)
    monkeypatch.setattr(memory_span, "plot_gradient_flow", lambda *a: None)
    (tmp_path / "ms").mkdir()
    (tmp_path / "ms" / "memory_span.json").write_text("{}")
    err = refused(["memory-span", "--quick", "--out", str(tmp_path / "ms")], capsys)
    assert "already holds a memory-span result" in err and "--overwrite" in err
    from seq2seq.cli import main

    assert main(["memory-span", "--quick", "--out", str(tmp_path / "ms"), "--overwrite", "--task", "adding"]) == 0


def test_the_ignored_settings_still_apply_where_they_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[tuple[str, str]] = []
    monkeypatch.setattr(memory_span, "sweep", lambda task, cell, *a, **k: ran.append((task, cell)) or [])
    monkeypatch.setattr(memory_span, "write_result", lambda *a: [])
    monkeypatch.setattr(memory_span, "plot_memory_span", lambda *a: None)
    monkeypatch.setattr(memory_span, "plot_gradient_flow", lambda *a: None)
    s = SpanSettings(hidden=8, init="forget-bias", forget_bias=5.0, copy_length=4, n_symbols=2, alphabet=4, seeds=1)
    memory_span.run_memory_span(tmp_path, ["recall", "copy"], ["lstm"], [3], settings=s, workers=1)
    assert ran == [("recall", "lstm"), ("copy", "lstm")]


def test_matched_hidden_is_quick_for_the_largest_hidden_size() -> None:
    start = time.monotonic()
    sizes = matched_hidden(["rnn", "gru", "lstm"], Task("recall", 10, SpanSettings(hidden=4096)))
    assert time.monotonic() - start < 2 and sizes["lstm"] == 4096 and sizes["gru"] > sizes["lstm"]


def test_span_settings_refuse_what_the_command_line_would() -> None:
    with pytest.raises(ConfigError, match="--steps"):
        SpanSettings(steps=10**12)
    with pytest.raises(ConfigError, match="--lr must be a finite number"):
        SpanSettings(lr=float("nan"))


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--cell", "lstm", "--length", "1000000000"], "--length must be in [1, 10,000]"),
        (["--cell", "lstm", "--batch-size", "1000000000"], "--batch-size must be in [1, 10,000]"),
        (["--cell", "lstm", "--length", "10000", "--batch-size", "10000"], "GB"),
        (["--cell", "lstm", "--seed", "100000000000000000000000"], "--seed must be in [0, "),
        (["--cell", "lstm", "--input", "IN"], "--input would be ignored"),
        (["--cell", "lstm", "--references", "IN"], "--references would be ignored"),
        (["--cell", "lstm", "--device", "cuda"], "--device cuda would be ignored"),
        (
            ["--checkpoint", "CKPT", "--input", "IN", "--length", "7", "--batch-size", "99"],
            "--length 7, --batch-size 99",
        ),
        (["--checkpoint", "CKPT", "--input", "IN", "--seed", "5"], "--seed 5 would be ignored"),
        (["--checkpoint", "CKPT", "--input", "IN", "--seed", "1234"], "--seed 1234 would be ignored"),  # the default
        (["--checkpoint", "CKPT", "--input", "IN", "--length", "100"], "--length 100 would be ignored"),
        (["--cell", "lstm", "--out", "OUT/g/s.txt"], "not txt"),
        (["--checkpoint", "CKPT", "--input", "IN", "--out", "OUT/g/s.txt"], "not txt"),
        (["--checkpoint", "CKPT", "--input", "IN", "--references", "REF"], "IN has 2 lines but REF has 1"),
        (["--checkpoint", "CKPT", "--input", "BLANK"], "BLANK: no non-empty source sentences"),
    ],
)
def test_gradflow_refuses_in_one_line_before_any_model(
    flags: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_training: None
) -> None:
    files = {"IN": "a b\nc d\n", "REF": "x\n", "BLANK": "\n  \n", "CKPT": "not read\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    given = [str(tmp_path / f) if f in files or f.startswith("OUT/") else f for f in flags]
    given = [g.replace("OUT/", "") for g in given]
    out = [] if "--out" in flags else ["--out", str(tmp_path / "g.png")]
    err = refused(["gradflow", *given, *out], capsys)
    for name in files:
        says = says.replace(name, str(tmp_path / name))
    assert says in err
    assert not (tmp_path / "g.png").exists()


@needs_matplotlib
def test_gradflow_still_plots_fresh_models(tmp_path: Path) -> None:
    assert (
        main(["gradflow", "--cell", "gru", "--length", "5", "--batch-size", "2", "--out", str(tmp_path / "g.svg")]) == 0
    )
    assert (tmp_path / "g.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")


def test_a_trained_models_input_too_large_for_memory_is_refused_before_its_backward(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The input's sentences are one batch: `gradflow --checkpoint C --input BIG` was unbounded."""
    sentences = ["red cat", "small dog bird"] * 50
    assert gradflow.checkpoint_gradient_flow(run_dir / "best.pt", sentences)["decoder"]  # fits: runs
    assert gradflow.checkpoint_gradient_flow(run_dir / "best.pt", sentences[:2], device="auto")["decoder"]  # its help
    from seq2seq.translation.torch_engine import Translator

    translator = Translator.from_checkpoint(run_dir / "best.pt")
    longest = max(len(ids) for ids in translator.src_tok.encode(sentences)) + 1
    need = gradflow.flow_memory(longest, len(sentences), translator.model.cfg, len(translator.tgt_tok))
    assert need < gradflow.flow_memory(longest, len(sentences)) // 4  # a tiny model: far below the default sizes'
    monkeypatch.setattr(gradflow, "memory_budget", lambda: need * 2)  # the estimate is this model's, not the default's
    assert gradflow.checkpoint_gradient_flow(run_dir / "best.pt", sentences)["decoder"]
    monkeypatch.setattr(gradflow, "memory_budget", lambda: need // 2)
    monkeypatch.setattr(gradflow, "gradient_flow", lambda *a, **k: pytest.fail("the backward ran"))
    with pytest.raises(ConfigError, match=r"gradflow on 100 sentences of up to \d+ pieces \(one batch\) needs about"):
        gradflow.checkpoint_gradient_flow(run_dir / "best.pt", sentences)


def test_the_gradflow_memory_estimate_grows_with_the_models_width_and_its_logits_under_loss_all() -> None:
    """The estimate was ModelConfig()'s for any checkpoint: 100 kB a token, whatever the model's sizes (measured
    172 kB at twice the width, 338 at four times) and vocabulary (loss all: +85 kB at 4,000 pieces)."""
    from seq2seq.config import ModelConfig

    default = 125 * (256 + 2 * 128 + 256)  # bytes per token: embedding, both encoder directions, decoder
    assert gradflow.flow_memory(10, 2) == 2 * 10 * (default + 48 * 10)
    assert gradflow.flow_memory(10, 2, None, 4000, "all") == 2 * 10 * (default + 22 * 4000 + 48 * 10)
    wide = ModelConfig(emb_size=512, enc_hidden=256, dec_hidden=512, enc_layers=2, dec_layers=2)
    assert gradflow.flow_memory(10, 2, wide) == 2 * 10 * (125 * (512 + 2 * 256 * 2 + 512 * 2) + 48 * 10)
