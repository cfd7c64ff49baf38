"""`seq2seq plot` on damaged run files and `seq2seq attention` on an output it cannot write: one line
naming the file (and line or field), exit status 2, no traceback, nothing loaded or drawn first."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from seq2seq.cli import main
from seq2seq.errors import RunFolderError
from seq2seq.runfiles import read_metrics

if TYPE_CHECKING:
    from pathlib import Path

GOOD = {"type": "train", "step": 50, "loss": 5.7, "lr": 0.002, "grad_norm": 0.2}


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b'{"type": "train", "step": 60, "loss": \xff}', "metrics.jsonl:2: not UTF-8 text"),
        (b'{"type": "train", "step": "abc", "loss": 1}', "metrics.jsonl:2: step is 'abc', not a whole number"),
        (b'{"type": "train", "step": 1.5, "loss": 1}', "metrics.jsonl:2: step is 1.5, not a whole number"),
        (b'{"type": "train", "step": null, "loss": 1}', "metrics.jsonl:2: step is None"),
        (b'{"type": "train", "step": 60, "loss": "abc"}', "metrics.jsonl:2: loss is 'abc', not a number"),
        (b'{"type": "train", "step": 60, "loss": [1, 2]}', "metrics.jsonl:2: loss is [1, 2], not a number"),
        (b'{"type": "valid", "step": 60, "val_bleu": {"a": 1}}', "metrics.jsonl:2: val_bleu is {'a': 1}"),
    ],
)
def test_plot_names_the_line_of_a_damaged_metrics_record(
    line: bytes, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "metrics.jsonl").write_bytes(json.dumps(GOOD).encode() + b"\n" + line + b"\n")
    err = refused(["plot", "--run", str(tmp_path)], capsys)
    assert f"{tmp_path}/{says}" in err
    assert not list(tmp_path.glob("*.png"))


def test_read_metrics_keeps_what_a_run_writes(tmp_path: Path) -> None:
    lines = [{"type": "hardware", "step": 0, "device": "cpu", "threads": 2}, GOOD,
             {"type": "valid", "step": 50, "val_loss": None, "val_bleu": 1.5, "best": True, "lr": 2e-3},
             {"type": "stop", "step": 50.0, "reason": "max_steps"}]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + "\n")
    recs = read_metrics(tmp_path / "metrics.jsonl")
    assert recs["train"] == [GOOD] and recs["valid"][0]["best"] is True and recs["stop"][0]["step"] == 50.0
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"type": "train", "step": True, "loss": 1}) + "\n")
    with pytest.raises(RunFolderError, match=r"metrics.jsonl:1: step is True"):
        read_metrics(tmp_path / "metrics.jsonl")


@pytest.mark.parametrize(
    ("config", "says"),
    [
        (b"not json", "config.json:1: not JSON"),
        (b"\xff\xfe", "config.json: not UTF-8 text"),
        (b"[1]", "config.json: a JSON list, not an object of settings"),
        (b'{"train": [1]}', "config.json: train is [1], not an object of settings"),
        (b'{"train": {"clip_norm": "x"}}', "config.json: train.clip_norm is 'x', not a number"),
        (b'{"train": {"label_smoothing": [0.1]}}', "config.json: train.label_smoothing is [0.1], not a number"),
    ],
)
def test_plot_names_the_field_of_a_damaged_config(
    config: bytes, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "metrics.jsonl").write_text(json.dumps(GOOD) + "\n")
    (tmp_path / "config.json").write_bytes(config)
    err = refused(["plot", "--run", str(tmp_path)], capsys)
    assert f"{tmp_path}/{says}" in err


def test_attention_refuses_a_suffix_no_figure_has_before_loading_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from seq2seq.translation import torch_engine

    def load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr(torch_engine.Translator, "from_checkpoint", load)
    (tmp_path / "model.pt").write_bytes(b"never read")
    out = tmp_path / "a" / "a.txt"
    err = refused(["attention", "--checkpoint", str(tmp_path / "model.pt"), "--sentence", "hallo", "--out", str(out)],
                  capsys)  # fmt: skip
    assert f"cannot write {out}" in err and "png" in err and "not txt" in err
    assert not out.exists()


def test_a_diverged_runs_plot_draws_its_finite_points_and_says_what_it_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A NaN first loss, an Infinity loss and an lr of 1e308 (a constant whose double overflows) gave a traceback
    (axis limits of NaN or Inf) or an empty plot: the finite points are drawn, on finite axes, with one warning."""
    pytest.importorskip("matplotlib")
    import math

    from seq2seq.tools import plots

    recs = [{"type": "train", "step": s, "loss": loss, "lr": 1e308, "grad_norm": 0.5} for s, loss in
            ((10, float("nan")), (20, 4.0), (30, float("inf")), (40, 3.0))]  # fmt: skip
    recs.append({"type": "valid", "step": 40, "val_loss": float("inf"), "val_bleu": 1.0})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))  # NaN, Infinity as written
    drawn, save = {}, plots.save_figure

    def keep(fig, path):
        ax = fig.axes[0]
        drawn[path.name] = (ax.get_ylim(), [list(line.get_ydata()) for line in ax.get_lines()])
        return save(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    with caplog.at_level("WARNING", logger="seq2seq"):
        assert main(["plot", "--run", str(tmp_path), "-q"]) == 0
    assert {"loss.png", "lr.png", "bleu.png", "grad_norm.png"} <= set(drawn)
    assert drawn["loss.png"][1][0] == [4.0, 3.0]  # the train loss's finite points; the val loss had none
    for name, (limits, _) in drawn.items():
        assert all(math.isfinite(x) for x in limits), name
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"{tmp_path / 'metrics.jsonl'}: values left out of the plots: "
                        "loss at steps 10, 30; val_loss at step 40 (not finite: a diverged run?)"]  # fmt: skip


@pytest.mark.parametrize("norms", [(0.0, 0.5, 0.0, 0.25), (0.0, 0.0, 0.0, 0.0)])
def test_a_gradient_norm_of_zero_is_left_off_its_log_axis_and_said_in_the_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, norms: tuple[float, ...]
) -> None:
    """A norm of 0 (nothing to clip: a frozen model, an underflow) has no place on the log axis: all zeros drew an
    empty axis with matplotlib's own warning. The positive ones are drawn, the others named with the non-finite."""
    pytest.importorskip("matplotlib")
    import warnings

    recs = [{"type": "train", "step": 10 * (i + 1), "loss": float("nan") if i == 3 else 2.0, "lr": 1e-3,
             "grad_norm": g} for i, g in enumerate(norms)]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    with caplog.at_level("WARNING", logger="seq2seq"), warnings.catch_warnings():
        warnings.simplefilter("error")  # none of matplotlib's
        assert main(["plot", "--run", str(tmp_path), "-q"]) == 0
    zeros = [10 * (i + 1) for i, g in enumerate(norms) if g == 0]
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said == [f"{tmp_path / 'metrics.jsonl'}: values left out of the plots: loss at step 40 (not finite: a "
                    f"diverged run?); grad_norm at steps {', '.join(map(str, zeros))} (0 or below: no place on a log "
                    "axis)"]  # fmt: skip
    assert (tmp_path / "grad_norm.png").exists() == any(norms)
