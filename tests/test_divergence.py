"""A diverged run says so: non-finite losses in a row, or a loss grown past `loss_growth` times the
first one, stop training with one true line (which checkpoint is kept, from which update, or that
there is none) and exit status 3, so that `train && translate` stops."""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from corpora import write_corpus

import seq2seq.updater as updater_module
from seq2seq.checkpoint import load_checkpoint
from seq2seq.cli import main
from seq2seq.config import ConfigError, TrainConfig
from seq2seq.progress import TrainState, growth_stop

if TYPE_CHECKING:
    from pathlib import Path

# --emb-init-std 1 (torch's N(0, 1)): at lr 1e30 these weights overflow to NaN losses after one update (the
# default 0.25 start gives a huge but finite loss there, which the loss-growth rule catches instead)
TINY = ["--vocab-size", "60", "--emb-size", "16", "--enc-hidden", "16", "--dec-hidden", "32", "--max-tokens", "120",
        "--threads", "1", "--valid-bleu-sentences", "0", "-q", "--emb-init-std", "1"]  # fmt: skip


def _train(corpus: Path, run: Path, *flags: str) -> list[str]:
    return ["train", "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(run), *TINY, *flags]


def _inject(monkeypatch: pytest.MonkeyPatch, bad, change) -> None:
    """The real forward/backward; on the calls `bad(n)` is true its returned loss becomes `change(loss)`."""
    real, calls = updater_module.forward_backward, {"n": 0}

    def patched(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return change(loss) if bad(calls["n"]) else loss

    monkeypatch.setattr(updater_module, "forward_backward", patched)


def _one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_divergence_before_the_first_checkpoint_exits_3_and_says_there_is_none(tmp_path: Path) -> None:
    """A real divergence (Adam at lr 1e30: infinite weights after one update, NaN losses after it), through
    the real command: `train && translate` stops."""
    corpus, run = write_corpus(tmp_path / "c", n_train=120), tmp_path / "run"
    train = [sys.executable, "-m", "seq2seq", *_train(corpus, run, "--lr", "1e30", "--max-nan-steps", "3",
                                                       "--max-steps", "50", "--valid-every", "10")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "-c", f"{shlex.join(train)} && echo translate"], capture_output=True, text=True,
                          env=env, timeout=240)  # fmt: skip
    assert done.returncode == 3 and "translate" not in done.stdout
    *skipped, line = done.stderr.strip().splitlines()
    assert len(skipped) == 3 and all("non-finite loss or gradient" in s and "skipped" in s for s in skipped)
    assert line == (
        "seq2seq train: error: training diverged after update 1 (3 non-finite losses in a row); no checkpoint was "
        "written (none is saved before the first validation, at update 10): start again with a lower --lr "
        "(now 1e+30) and --overwrite"
    )
    assert not (run / "last.pt").exists() and not (run / "best.pt").exists()


def test_divergence_after_a_checkpoint_exits_3_and_names_the_update_it_is_from(tmp_path, monkeypatch, capsys) -> None:
    corpus, run = write_corpus(tmp_path / "c", n_train=120), tmp_path / "run"
    _inject(monkeypatch, lambda n: n > 5, lambda loss: math.nan)  # updates 1-5 good, NaN from then on
    assert main(_train(corpus, run, "--max-nan-steps", "3", "--max-steps", "50", "--valid-every", "2")) == 3
    line = _one_line(capsys)
    last, best = load_checkpoint(run / "last.pt"), load_checkpoint(run / "best.pt")
    assert last["train_state"]["step"] == 4  # update 5 was never saved: it came before the NaNs
    assert line == (
        "seq2seq train: error: training diverged after update 5 (3 non-finite losses in a row); the checkpoint "
        f"before it is kept: {run / 'last.pt'} is from update 4; best.pt is from update {best['step']}; continue "
        "with --resume and a lower --lr (now 0.001)"
    )


def test_a_loss_grown_past_loss_growth_times_the_first_is_divergence(tmp_path, monkeypatch, capsys) -> None:
    corpus, run = write_corpus(tmp_path / "c", n_train=120), tmp_path / "run"
    _inject(monkeypatch, lambda n: n == 4, lambda loss: loss * 1e5)  # one finite loss 100,000 x the others
    assert main(_train(corpus, run, "--max-steps", "6", "--valid-every", "2")) == 3
    line = _one_line(capsys)
    assert line.startswith("seq2seq train: error: training diverged after update 4 (training loss ")
    assert "over loss_growth=10000 x the first one (" in line and f"{run / 'last.pt'} is from update 2;" in line
    assert load_checkpoint(run / "last.pt")["train_state"]["step"] == 2  # the grown update was not saved
    # the same run with the check off trains to the end
    assert main(_train(corpus, tmp_path / "off", "--max-steps", "6", "--valid-every", "2", "--loss-growth", "0")) == 0
    assert load_checkpoint(tmp_path / "off" / "last.pt")["train_state"]["step"] == 6


def test_the_growth_threshold_is_loss_growth_times_the_first_loss() -> None:
    cfg, st = TrainConfig(), TrainState()
    assert cfg.loss_growth == 1e4  # the documented default
    assert growth_stop(cfg, st, 2.5) is None and st.first_loss == 2.5  # the first loss sets the scale
    assert growth_stop(cfg, st, 2.5e4) is None  # at the threshold: not yet
    assert growth_stop(cfg, st, 2.5001e4) == "training loss 2.5e+04 over loss_growth=10000 x the first one (2.5)"
    assert growth_stop(TrainConfig(loss_growth=0), st, 1e30) is None  # 0: off
    assert growth_stop(TrainConfig(loss_growth=10), TrainState(first_loss=2.0), 20.5) is not None
    for bad in (0.5, 1.0, -1.0, math.nan):
        with pytest.raises(ConfigError, match="loss_growth must be > 1"):
            TrainConfig(loss_growth=bad)


def test_a_skipped_last_update_still_saves_what_the_run_learned(tmp_path: Path, monkeypatch, capsys) -> None:
    """The run ends (its epochs used up) on a skipped non-finite update, below --max-nan-steps: the updates
    since the last validation are saved, as at any other end."""
    corpus = write_corpus(tmp_path / "c", n_train=120)
    assert main(_train(corpus, tmp_path / "count", "--max-epochs", "1", "--valid-every", "1000")) == 0
    updates = load_checkpoint(tmp_path / "count" / "last.pt")["train_state"]["step"]
    _inject(monkeypatch, lambda n: n == updates, lambda loss: math.nan)  # the epoch's last batch
    run = tmp_path / "run"
    assert main(_train(corpus, run, "--max-epochs", "1", "--valid-every", "1000")) == 0
    state = load_checkpoint(run / "last.pt")["train_state"]  # no checkpoint at all before the fix
    assert (state["step"], state["skipped_steps"]) == (updates - 1, 1)
