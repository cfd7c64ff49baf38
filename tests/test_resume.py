"""Exact resume, interrupted runs and atomic checkpoints."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from corpora import write_corpus

from seq2seq import runfiles, trainer
from seq2seq.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_model,
    save_checkpoint,
)
from seq2seq.cli import main
from seq2seq.config import ConfigError, DataConfig, ModelConfig, TrainConfig
from seq2seq.train import RunOptions, RunSpec, train

if TYPE_CHECKING:
    from pathlib import Path

MODEL = ModelConfig(emb_size=16, enc_hidden=16, dec_hidden=32, dropout=0.3)
DATA = DataConfig(vocab_size=60)


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.mark.parametrize("alpha", [0.0, 0.5])  # 0.5: segmentations re-sampled every epoch
def test_stop_and_resume_is_bitwise_identical(tmp_path: Path, alpha: float) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    cfg = TrainConfig(
        max_tokens=120, max_steps=14, valid_every=4, valid_bleu_sentences=5, lr_patience=1, subword_alpha=alpha
    )
    full = train(RunSpec(corpus, "xx", "yy", tmp_path / "full"), DATA, MODEL, cfg, RunOptions(progress=False))
    assert full.steps == 14
    first = TrainConfig(**{**cfg.__dict__, "max_steps": 8})  # stop at a validation, as a kill would
    part = train(RunSpec(corpus, "xx", "yy", tmp_path / "part"), DATA, MODEL, first, RunOptions(progress=False))
    assert part.steps == 8
    resumed = train(
        RunSpec(corpus, "xx", "yy", tmp_path / "part"), DATA, MODEL, cfg, RunOptions(resume=True, progress=False)
    )
    assert resumed.steps == 14
    again = train(
        RunSpec(corpus, "xx", "yy", tmp_path / "part"), DATA, MODEL, cfg, RunOptions(resume=True, progress=False)
    )
    assert again.steps == 14 and again.stop_reason == "max_steps=14"  # a finished run stays finished
    assert_same_weights(tmp_path / "full" / "last.pt", tmp_path / "part" / "last.pt")
    full_state = load_checkpoint(tmp_path / "full" / "last.pt")
    part_state = load_checkpoint(tmp_path / "part" / "last.pt")
    assert full_state["train_state"]["epoch"] > 0  # the run crossed epoch boundaries
    for key in ("step", "epoch", "batch_in_epoch", "lr_scale", "best", "bad_validations", "plateau", "tokens"):
        assert full_state["train_state"][key] == part_state["train_state"][key], key
    # The optimiser state came back too (Adam moments equal to the bit).
    for sa, sb in zip(full_state["optimizer"]["state"].values(), part_state["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    # The metrics log reads as one run: each validation step once, in order.
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    steps = [r["step"] for r in map(json.loads, lines) if r["type"] == "valid"]
    assert steps == [4, 8, 12, 14]


def test_reset_optimizer_starts_a_fresh_schedule(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    cfg = TrainConfig(max_tokens=120, max_steps=4, valid_every=4, valid_bleu_sentences=0, lr_decay=0.5, log_every=1)
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    # a schedule that has decayed twice and is one bad validation into a plateau
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    ckpt["train_state"].update(lr_scale=0.25, plateau=1)
    save_checkpoint(tmp_path / "run" / "last.pt", ckpt)
    shutil.copytree(tmp_path / "run", tmp_path / "kept")
    more = TrainConfig(**{**cfg.__dict__, "max_steps": 8})
    for name, reset in (("run", True), ("kept", False)):
        opts = RunOptions(resume=True, reset_optimizer=reset, progress=False)
        train(RunSpec(corpus, "xx", "yy", tmp_path / name), DATA, MODEL, more, opts)
    fresh, kept = (load_checkpoint(tmp_path / name / "last.pt") for name in ("run", "kept"))
    assert fresh["train_state"]["step"] == kept["train_state"]["step"] == 8
    # the schedule: lr_scale and plateau back to a fresh run's (one validation since: no decay possible)
    assert fresh["train_state"]["lr_scale"] == 1.0 and fresh["train_state"]["plateau"] <= 1
    assert kept["train_state"]["lr_scale"] <= 0.25
    lrs = {name: [r["lr"] for r in map(json.loads, (tmp_path / name / "metrics.jsonl").read_text().splitlines())
                  if r["type"] == "train" and r["step"] > 4] for name in ("run", "kept")}  # fmt: skip
    assert lrs["run"] == [cfg.lr] * 4 and lrs["kept"] == [cfg.lr * 0.25] * 4
    # the optimiser: a fresh Adam has taken 4 steps, the kept one 8, and their moments differ
    fresh_state, kept_state = fresh["optimizer"]["state"], kept["optimizer"]["state"]
    assert fresh_state.keys() == kept_state.keys() and fresh_state
    for key in fresh_state:
        assert float(fresh_state[key]["step"]) == 4 and float(kept_state[key]["step"]) == 8
    assert any(not torch.equal(fresh_state[k]["exp_avg_sq"], kept_state[k]["exp_avg_sq"]) for k in fresh_state)


def test_fresh_train_refuses_to_overwrite_a_run(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    cfg = TrainConfig(max_tokens=120, max_steps=2, valid_every=2, valid_bleu_sentences=0)
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    with pytest.raises(CheckpointError, match="--resume"):
        train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(overwrite=True, progress=False))


def test_fresh_train_refuses_a_run_with_best_pt_but_no_last_pt(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    cfg = TrainConfig(max_tokens=120, max_steps=4, valid_every=2, valid_bleu_sentences=0, keep_checkpoints=2)
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    (tmp_path / "run" / "last.pt").unlink()  # e.g. deleted to save disk space
    before = (tmp_path / "run" / "best.pt").read_bytes()
    with pytest.raises(CheckpointError, match="best.pt, step0000002.pt, step0000004.pt.* --overwrite"):
        train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    assert (tmp_path / "run" / "best.pt").read_bytes() == before and len(list((tmp_path / "run").glob("step*"))) == 2
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(overwrite=True, progress=False))


@pytest.mark.parametrize(
    ("options", "message"),
    [({"reset_optimizer": True}, "--reset-optimizer applies to a resumed run only"),
     ({"resume": True, "overwrite": True}, "pass one of them")],
)  # fmt: skip
def test_flags_a_run_would_ignore_are_refused(tmp_path: Path, capsys, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunOptions(**options)
    corpus = write_corpus(tmp_path / "corpus", n_train=40)
    flags = [f"--{k.replace('_', '-')}" for k in options]
    code = main(["train", "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(tmp_path / "run"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_stop_between_best_and_last_pt_loses_no_best(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    cfg = TrainConfig(max_tokens=120, max_steps=8, valid_every=4, valid_bleu_sentences=0, best_metric="loss")
    full = tmp_path / "full"
    train(RunSpec(corpus, "xx", "yy", full), DATA, MODEL, cfg, RunOptions(progress=False))
    assert read_model(full / "best.pt").step == 8  # update 8 improved: its save writes best.pt and last.pt
    real, written = runfiles.write_model_checkpoint, []

    def dies_at_the_second_file_of_update_8(path, weights, resume=None):
        if weights.step == 8 and written:
            raise OSError(28, "No space left on device", str(path))
        real(path, weights, resume)
        written.extend([path.name] if weights.step == 8 else [])

    monkeypatch.setattr(runfiles, "write_model_checkpoint", dies_at_the_second_file_of_update_8)
    with pytest.raises(OSError):
        train(RunSpec(corpus, "xx", "yy", tmp_path / "part"), DATA, MODEL, cfg, RunOptions(progress=False))
    monkeypatch.undo()
    assert len(written) == 1  # the stop came between the two files
    resumed = train(RunSpec(corpus, "xx", "yy", tmp_path / "part"), DATA, MODEL, cfg, RunOptions(resume=True,
                    progress=False))  # fmt: skip
    assert resumed.steps == 8
    best = read_model(full / "best.pt").step
    assert read_model(tmp_path / "part" / "best.pt").step == best
    assert_same_weights(full / "best.pt", tmp_path / "part" / "best.pt")


def test_an_interrupt_on_a_validation_update_validates_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    cfg = TrainConfig(max_tokens=120, max_steps=12, valid_every=4, valid_bleu_sentences=5, lr_patience=1)
    full = train(RunSpec(corpus, "xx", "yy", tmp_path / "full"), DATA, MODEL, cfg, RunOptions(progress=False))
    real = trainer.after_update

    def ctrl_c_after_update_8(st, applied, tokens):  # SIGINT lands during update 8, which ends on a validation
        real(st, applied, tokens)
        if st.step == 8:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(trainer, "after_update", ctrl_c_after_update_8)
    part = train(RunSpec(corpus, "xx", "yy", tmp_path / "part"), DATA, MODEL, cfg, RunOptions(progress=False))
    monkeypatch.undo()
    assert part.steps == 8 and "SIGINT" in part.stop_reason
    resumed = train(RunSpec(corpus, "xx", "yy", tmp_path / "part"), DATA, MODEL, cfg, RunOptions(resume=True,
                    progress=False))  # fmt: skip
    assert resumed.steps == full.steps == 12
    for name in ("last.pt", "best.pt"):
        assert_same_weights(tmp_path / "full" / name, tmp_path / "part" / name)
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [r["step"] for r in map(json.loads, lines) if r["type"] == "valid"] == [4, 8, 12]


def test_failed_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}})

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError):
        save_checkpoint(path, {"model": {"w": torch.zeros(3)}})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def _train_cmd(corpus: Path, run: Path, steps: int) -> list[str]:
    return [
        sys.executable, "-m", "seq2seq", "train", "--data", str(corpus), "--src", "xx", "--tgt", "yy",
        "--out", str(run), "--vocab-size", "60", "--emb-size", "16", "--enc-hidden", "16", "--dec-hidden", "32",
        "--dropout", "0.3", "--max-tokens", "120", "--max-steps", str(steps), "--valid-every", "3",
        "--valid-bleu-sentences", "5", "--threads", "1", "--patience", "0", "--lr-schedule", "anneal",
    ]  # fmt: skip


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, **kw)


def test_keep_last_k_checkpoints(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    cfg = TrainConfig(max_tokens=120, max_steps=8, valid_every=2, valid_bleu_sentences=0, keep_checkpoints=2)
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    kept = sorted(p.name for p in (tmp_path / "run").glob("step*.pt"))
    assert kept == ["step0000006.pt", "step0000008.pt"]
    assert load_checkpoint(tmp_path / "run" / kept[-1])["step"] == 8


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_a_resumable_checkpoint(tmp_path: Path, sig: signal.Signals) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=400)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_train_cmd(corpus, run, 100000), stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not (run / "last.pt").exists() and time.monotonic() < deadline:  # wait until training runs
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # saved, but not finished: `train && translate` stops here
    assert "--resume" in err and err.rstrip().endswith("seq2seq train: interrupted")
    state = load_checkpoint(run / "last.pt")["train_state"]
    assert 0 < state["step"] < 100000


def _latest_step(run: Path) -> int:
    """The last update logged in the run's metrics (0 before training logs anything)."""
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(x)["step"] for x in lines if x.endswith("}")]
    return max(steps, default=0)


def test_soak_kill_and_resume_matches_uninterrupted(tmp_path: Path) -> None:
    """SIGKILL at random moments, resume each time: the final weights equal an uninterrupted run's.

    The run anneals its learning rate toward max_steps, so a resume that lost its place in the
    schedule would show. Each kill waits for a random update of the remaining run to be logged, then a random extra
    0-50 ms, so it lands while training, validating or saving, never after the run ended.
    """
    corpus = write_corpus(tmp_path / "corpus", n_train=150)
    steps = 100
    assert _run(_train_cmd(corpus, tmp_path / "full", steps) + ["--log-every", "1"]).returncode == 0
    run, rng, kills = tmp_path / "soak", random.Random(7), 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for _attempt in range(12):
        resume = ["--resume"] if (run / "last.pt").exists() else []
        cmd = _train_cmd(corpus, run, steps) + ["--log-every", "1"] + resume
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if kills < 5:
            latest = _latest_step(run)
            target = rng.randint(latest + 1, min(latest + 10, steps - 15))
            deadline = time.monotonic() + 60
            while _latest_step(run) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.05))
            if proc.poll() is None:
                proc.kill()
                kills += 1
        proc.wait(timeout=120)
        for ckpt in run.glob("*.pt"):  # after every kill, no checkpoint is truncated
            load_checkpoint(ckpt)
        if proc.returncode == 0 and kills == 5:
            break
    assert kills == 5
    assert load_checkpoint(run / "last.pt")["train_state"]["step"] == steps
    assert_same_weights(tmp_path / "full" / "last.pt", run / "last.pt")


def test_average_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from seq2seq.cli import main
    from seq2seq.translation.torch_engine import Translator

    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    cfg = TrainConfig(max_tokens=120, max_steps=6, valid_every=2, valid_bleu_sentences=0, keep_checkpoints=3)
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    steps = sorted((tmp_path / "run").glob("step*.pt"))
    assert main(["average", "--checkpoints", *map(str, steps), "--out", str(tmp_path / "avg.pt")]) == 0
    avg = load_checkpoint(tmp_path / "avg.pt")
    weights = [load_checkpoint(p)["model"] for p in steps]
    for name, tensor in avg["model"].items():
        torch.testing.assert_close(tensor, sum(w[name] for w in weights) / 3)
    assert "optimizer" not in avg and len(avg["averaged"]) == 3
    assert Translator.from_checkpoint(tmp_path / "avg.pt").translate(["red cat"])  # loads and translates
    other = ModelConfig(emb_size=8, enc_hidden=8, dec_hidden=16)
    train(RunSpec(corpus, "xx", "yy", tmp_path / "other"), DATA, other, cfg, RunOptions(progress=False))
    code = main(["average", "--checkpoints", str(steps[0]), str(tmp_path / "other" / "last.pt"), "--out", "x.pt"])
    assert code == 2 and "other model config" in capsys.readouterr().err


def _tied(weights: dict[str, torch.Tensor]) -> set[tuple[str, str]]:
    """The pairs of names that hold one tensor (tied weights)."""
    return {(a, b) for a in weights for b in weights if a < b and weights[a].data_ptr() == weights[b].data_ptr()}


def test_average_keeps_tied_weights_tied_and_refuses_other_seeds_and_single_files(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from seq2seq.cli import main

    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    cfg = TrainConfig(max_tokens=120, max_steps=4, valid_every=2, valid_bleu_sentences=0, keep_checkpoints=2)
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    steps = sorted((tmp_path / "run").glob("step*.pt"))
    out = tmp_path / "avg.pt"
    assert main(["average", "--checkpoints", *map(str, steps), "--out", str(out)]) == 0
    tied = _tied(load_checkpoint(steps[0])["model"])
    assert tied and _tied(load_checkpoint(out)["model"]) == tied  # the output layer and the target embedding
    assert out.stat().st_size < steps[0].stat().st_size * 1.05  # each tensor stored once, as in the step files

    seeded = dataclasses.replace(cfg, seed=cfg.seed + 1)  # same corpus, model and tokenizer; other initial weights
    train(RunSpec(corpus, "xx", "yy", tmp_path / "seeded"), DATA, MODEL, seeded, RunOptions(progress=False))
    capsys.readouterr()
    other = tmp_path / "seeded" / "last.pt"
    assert main(["average", "--checkpoints", str(steps[0]), str(other), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert f"{other}: trained with seed {cfg.seed + 1}, {steps[0]} with seed {cfg.seed}" in err
    assert main(["average", "--checkpoints", str(steps[0]), "--out", str(tmp_path / "x.pt")]) == 2
    assert "averaging needs at least two checkpoints of one run, got 1" in capsys.readouterr().err
    assert main(["average", "--checkpoints", str(steps[0]), str(steps[0]), "--out", str(tmp_path / "x.pt")]) == 2
    assert f"{steps[0]}: the same file as {steps[0]}" in capsys.readouterr().err
    from seq2seq.checkpoint import read_model, write_model_checkpoint

    saved = read_model(steps[1])  # same config, vocabulary and seed, but a tensor missing: was a KeyError traceback
    damaged = tmp_path / "damaged.pt"
    write_model_checkpoint(damaged, dataclasses.replace(saved, state_dict=dict(list(saved.state_dict.items())[1:])))
    assert main(["average", "--checkpoints", str(steps[0]), str(damaged), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{damaged}: its weights (names or shapes) differ from those of" in err, err
    assert not (tmp_path / "x.pt").exists()


def test_subword_regularisation_resamples_each_epoch(tmp_path: Path) -> None:
    """Both sides are resampled and decode back to their text: only the source was looked at, so targets
    encoded without `alpha` (the cached best segmentation every epoch) passed."""
    from seq2seq.prepared import Prepared
    from seq2seq.trainer import epoch_split

    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    train(
        RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, TrainConfig(max_steps=1), RunOptions(progress=False)
    )
    prepared = Prepared.load(tmp_path / "run")
    # alpha 0.1, not 0.5: on this toy corpus's 34-piece model, 8 of 200 epochs sampled at 0.5 were the best
    # segmentation throughout (0 of 200 at 0.1), so two epochs in a row could come out equal by chance (a CI run
    # on 2026-12-06 did once); 0.1 samples flatter, which is what this test needs to see a new segmentation
    cfg = TrainConfig(subword_alpha=0.1)
    e0, e1, e0_again = epoch_split(prepared, cfg, 0), epoch_split(prepared, cfg, 1), epoch_split(prepared, cfg, 0)
    assert len(e0) == len(e1) == 120
    assert not np.array_equal(e0.src_ids, e1.src_ids)  # another segmentation next epoch
    assert not np.array_equal(e0.tgt_ids, e1.tgt_ids)  # on both sides
    assert not np.array_equal(e1.tgt_ids, prepared.split("train").tgt_ids)  # not the cached best segmentation
    assert np.array_equal(e0.src_ids, e0_again.src_ids) and np.array_equal(e0.tgt_ids, e0_again.tgt_ids)
    texts = prepared.src_tok.decode([e1.src_ids[e1.src_offsets[i] : e1.src_offsets[i + 1]] for i in range(120)])
    assert texts == prepared.text("train")[0]  # same sentences, other pieces
    texts = prepared.tgt_tok.decode([e1.tgt_ids[e1.tgt_offsets[i] : e1.tgt_offsets[i + 1]] for i in range(120)])
    assert texts == prepared.text("train")[1]


def test_custom_train_split_name(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=60)
    for lang in ("xx", "yy"):
        (corpus / f"train.{lang}").rename(corpus / f"big.{lang}")
    data = DataConfig(vocab_size=60, train_split="big")
    result = train(
        RunSpec(corpus, "xx", "yy", tmp_path / "run"), data, MODEL, TrainConfig(max_steps=2), RunOptions(progress=False)
    )
    assert result.steps == 2


def test_resume_takes_its_configs_from_last_pt(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """config.json is a record for people; deleting or editing it does not change what --resume continues."""
    from seq2seq.cli import main

    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    base = ["train", "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(run), "--threads", "1"]
    flags = ["--vocab-size", "60", "--emb-size", "16", "--enc-hidden", "16", "--dec-hidden", "32", "--dropout",
             "0.3", "--max-tokens", "120", "--valid-every", "2", "--valid-bleu-sentences", "0",
             "--lr-decay", "0.7"]  # fmt: skip
    assert main(base + flags + ["--max-steps", "4"]) == 0
    trained = read_model(run / "last.pt")

    (run / "config.json").unlink()
    assert main(base + ["--resume", "--max-steps", "6"]) == 0
    assert "trained 6 updates" in capsys.readouterr().out

    edited = json.loads((run / "config.json").read_text())  # written again by the resumed run
    edited["model"] |= {"emb_size": 8, "enc_hidden": 8, "dec_hidden": 8}
    edited["train"] |= {"max_tokens": 999, "lr_decay": 0.1}
    edited["data"] |= {"vocab_size": 80}
    (run / "config.json").write_text(json.dumps(edited))
    assert main(base + ["--resume", "--max-steps", "8"]) == 0
    assert "trained 8 updates" in capsys.readouterr().out

    resumed = read_model(run / "last.pt")
    assert resumed.step == 8
    assert resumed.model_config == trained.model_config and resumed.data_config == trained.data_config
    assert resumed.train_config == trained.train_config | {"max_steps": 8}  # the flag given, the rest as trained
    assert resumed.train_config["max_tokens"] == 120 and resumed.train_config["lr_decay"] == 0.7
    assert json.loads((run / "config.json").read_text())["model"] == trained.model_config

    # No last.pt: nothing to resume, in one line, even with a config.json beside it.
    (run / "last.pt").unlink()
    assert main(base + ["--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"seq2seq train: error: {run}: nothing to resume (no last.pt)"


def test_a_resumed_run_takes_the_adam_betas_it_is_given(tmp_path: Path) -> None:
    """The optimiser state in last.pt carries its betas; a resume that asks for others trains with those asked
    (not silently with the file's), and one that asks for nothing keeps the run's own."""
    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    cfg = TrainConfig(max_tokens=120, max_steps=2, valid_every=2, valid_bleu_sentences=0, adam_beta2=0.98)
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    assert load_checkpoint(tmp_path / "run" / "last.pt")["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.98)
    for steps, asked, betas in ((4, {}, (0.9, 0.98)), (6, {"adam_beta1": 0.8, "adam_beta2": 0.95}, (0.8, 0.95))):
        more = {"max_steps": steps, **asked}  # the fields asked for, as the CLI passes its flags
        train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), None, None, more, RunOptions(resume=True, progress=False))
        ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
        assert ckpt["train_state"]["step"] == steps
        assert tuple(ckpt["optimizer"]["param_groups"][0]["betas"]) == betas


# fsync made slow (test side only), so that a kill lands while a checkpoint is being written
SLOW_FSYNC = (
    "import os, sys, time\n"
    "real = os.fsync\n"
    "os.fsync = lambda fd: (time.sleep(0.5), real(fd))[1]\n"
    "from seq2seq.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_a_kill_during_a_checkpoint_write_truncates_nothing(tmp_path: Path) -> None:
    """SIGKILL while a checkpoint's temporary file is being written: every checkpoint and run file
    still loads, the resume cleans the temporary file up, and the finished run equals an
    uninterrupted one bitwise."""
    corpus, steps = write_corpus(tmp_path / "corpus", n_train=150), 12
    assert _run(_train_cmd(corpus, tmp_path / "full", steps)).returncode == 0
    run = tmp_path / "run"
    cmd = [sys.executable, "-c", SLOW_FSYNC, *_train_cmd(corpus, run, steps)[3:]]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, during_write = time.monotonic() + 120, False
    while proc.poll() is None and time.monotonic() < deadline:
        if (run / "last.pt").exists() and list(run.glob(".*.pt.*.tmp")):  # a later checkpoint being written
            proc.kill()
            during_write = True
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    assert during_write and list(run.glob(".*.pt.*.tmp"))  # the kill landed inside a write
    for ckpt in run.glob("*.pt"):
        load_checkpoint(ckpt)  # whole: none of them is truncated
    for name in ("preprocess.json", "config.json"):
        json.loads((run / name).read_text())
    done = _run(_train_cmd(corpus, run, steps) + ["--resume"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(run.glob(".*.tmp"))
    assert load_checkpoint(run / "last.pt")["train_state"]["step"] == steps
    assert_same_weights(tmp_path / "full" / "last.pt", run / "last.pt")


def _resume_refused(tmp_path: Path, capsys, damage) -> str:
    """A 2-update run whose last.pt `damage` changes (its checksums made again, as an edited file's); the
    stderr of `train --resume` on it, which must exit 2."""
    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    cfg = TrainConfig(max_tokens=120, max_steps=2, valid_every=2, valid_bleu_sentences=0)
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    damage(saved)
    save_checkpoint(tmp_path / "run" / "last.pt", saved)
    args = ["train", "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(tmp_path / "run"), "--resume"]
    assert main([*args, "--max-steps", "4"]) == 2
    err = capsys.readouterr().err
    return err


@pytest.mark.parametrize(
    "damage",
    [
        lambda c: c["train_state"].update(from_a_newer_seq2seq=1),
        lambda c: c["train_state"].update(step="2"),
        lambda c: c["optimizer"].update(param_groups=[]),
        lambda c: next(iter(c["optimizer"]["state"].values()))["exp_avg"].fill_(float("nan")),  # a NaN moment
        # edited files (checksums made again): each was a traceback, or (batch_in_epoch) accepted
        lambda c: c.update(rng=[{}]),
        lambda c: c["rng"][0].update(cpu=c["rng"][0]["cpu"][:10]),
        lambda c: c["train_state"]["history"].append({"type": "valid"}),
        lambda c: c["train_state"].update(lr_scale="a"),
        lambda c: c["train_state"].update(best="x"),
        lambda c: c["train_state"].update(tokens="x"),
        lambda c: c["train_state"].update(batch_in_epoch=-5),
    ],
)
def test_a_damaged_training_state_is_one_line(tmp_path: Path, capsys, damage) -> None:
    err = _resume_refused(tmp_path, capsys, damage)
    assert err.count("\n") == 1 and "last.pt: damaged training state" in err, err


def test_a_damaged_metrics_file_is_one_line_on_resume_and_a_cut_last_line_is_dropped(tmp_path: Path) -> None:
    from seq2seq.errors import RunFolderError

    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    cfg = TrainConfig(max_tokens=120, max_steps=2, valid_every=2, valid_bleu_sentences=0)
    spec, run = RunSpec(corpus, "xx", "yy", tmp_path / "run"), tmp_path / "run"
    train(spec, DATA, MODEL, cfg, RunOptions(progress=False))
    metrics = run / "metrics.jsonl"
    good = metrics.read_bytes()
    longer = dataclasses.replace(cfg, max_steps=4)
    junks = [
        (b"[]\n", ":3: not a record"),
        (b'{"type": "train", "step": "7"}\n', ":3: not a record of seq2seq train \\(no whole step\\)"),
        (b"\xff\xfe\n{}\n", ":3: not a JSON record"),
    ]
    for junk, says in junks:
        lines = good.splitlines(keepends=True)
        metrics.write_bytes(b"".join(lines[:2]) + junk + b"".join(lines[2:]))  # a traceback each (list.get, str <= int)
        with pytest.raises(RunFolderError, match=f"metrics.jsonl{says}"):
            train(spec, DATA, MODEL, longer, RunOptions(resume=True, progress=False))
    metrics.write_bytes(good + b'{"type": "train", "loss": "\xc3')  # a kill in a record's two-byte character
    assert train(spec, DATA, MODEL, longer, RunOptions(resume=True, progress=False)).steps == 4
    assert all(json.loads(line)["step"] <= 4 for line in metrics.read_text().splitlines())


def test_a_resumed_subword_sampling_run_goes_on_with_its_epochs_segmentation(tmp_path: Path) -> None:
    """SentencePiece's sampling differs between processes whatever its seed: two resumes of one interrupted
    run, each in its own process, train on the segmentation it was interrupted in and end bitwise equal
    (each re-sampled its epoch before, so each ended elsewhere)."""
    corpus = write_corpus(tmp_path / "corpus", n_train=400)
    alpha = ["--subword-alpha", "0.5"]
    assert _run(_train_cmd(corpus, tmp_path / "a", 6) + alpha).returncode == 0  # stops at a validation's checkpoint
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for run in ("a", "b"):
        done = _run(_train_cmd(corpus, tmp_path / run, 10) + [*alpha, "--resume"])
        assert done.returncode == 0, done.stderr
    assert load_checkpoint(tmp_path / "a" / "last.pt")["train_state"]["epoch"] == 0  # still the first epoch
    assert_same_weights(tmp_path / "a" / "last.pt", tmp_path / "b" / "last.pt")


def test_a_kill_in_the_epoch_after_the_last_checkpoint_keeps_that_checkpoints_segmentation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With subword sampling, last.pt of epoch 0 and a kill in epoch 1 (whose segmentation is on disk by
    then): a resume goes on with epoch 0's segmentation, which must still be there. Two resumes, each in its
    own process, end bitwise equal (each re-sampled epoch 0 when epoch 1's sampling had deleted it)."""
    from seq2seq.batches import make_batches
    from seq2seq.prepared import EncodedSplit, Prepared

    corpus, run = write_corpus(tmp_path / "corpus", n_train=400), tmp_path / "a"
    alpha = ["--subword-alpha", "0.5"]
    assert _run(_train_cmd(corpus, run, 3) + alpha).returncode == 0  # a checkpoint at update 3, in epoch 0
    split = EncodedSplit.load(Prepared.load(run).cache / "train.sampled0")  # epoch 0's batches (their number
    bucket = 120 if load_checkpoint(run / "last.pt")["train_config"]["shape_buckets"] == "on" else 0  # varies
    batches = len(make_batches(split.src_lens, split.tgt_lens, 120, np.random.default_rng([1234, 0]), bucket))
    assert batches > 4  # with the process's sampling): the next checkpoint at batch - 1, the last of epoch 0

    def crash(self: trainer.Trainer, *args: object) -> None:  # a kill -9 in epoch 1, before its first checkpoint
        if self.st.epoch == 1:
            raise SystemExit("killed")
        return real(self, *args)

    real = trainer.Trainer._update
    monkeypatch.setattr(trainer.Trainer, "_update", crash)
    cmd = _train_cmd(corpus, run, 10**6)[3:] + [*alpha, "--resume", "--max-epochs", "3", "-q",
                                                "--valid-every", str(batches - 1)]  # fmt: skip
    with pytest.raises(SystemExit, match="killed"):
        main(cmd)
    state = load_checkpoint(run / "last.pt")["train_state"]
    assert (state["epoch"], state["batch_in_epoch"]) == (0, batches - 1)  # one batch of epoch 0 left
    assert (Prepared.load(run).cache / "train.sampled1.json").exists()  # epoch 1 had been sampled
    shutil.copytree(run, tmp_path / "b")
    for name in ("a", "b"):
        done = _run(_train_cmd(corpus, tmp_path / name, batches + 2) + [*alpha, "--resume"])
        assert done.returncode == 0, done.stderr
    assert_same_weights(tmp_path / "a" / "last.pt", tmp_path / "b" / "last.pt")


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda c: c.update(src_spm=b"garbage"), "other SentencePiece models than"),
        (lambda c: c["model_config"].update(dec_hidden=33), "last.pt: inconsistent checkpoint: "),
        (lambda c: c["train_config"].update(max_tokens=10**9), "last.pt: its train settings are refused (max_tokens"),
    ],
)
def test_an_edited_checkpoint_is_one_line_naming_it(tmp_path: Path, capsys, damage, says: str) -> None:
    err = _resume_refused(tmp_path, capsys, damage)
    assert err.count("\n") == 1 and "last.pt" in err and says in err, err


def test_a_flag_overrides_a_saved_train_setting_newer_rules_refuse(tmp_path: Path, capsys) -> None:
    """min_lr above lr was accepted once: such a last.pt resumes when the flag sets a value taken now."""
    err = _resume_refused(tmp_path, capsys, lambda c: c["train_config"].update(min_lr=0.01, lr=0.001))
    assert "last.pt: its train settings are refused (min_lr" in err, err
    args = ["train", "--data", str(tmp_path / "corpus"), "--src", "xx", "--tgt", "yy", "--out", str(tmp_path / "run")]
    assert main([*args, "--resume", "--max-steps", "4", "--min-lr", "0"]) == 0


def _stopped_mid_epoch(tmp_path: Path) -> tuple[Path, list[str]]:
    """A run stopped at update 2 (a validation, selecting by BLEU), in the middle of its first epoch."""
    corpus, run = write_corpus(tmp_path / "corpus", n_train=400), tmp_path / "run"
    cfg = TrainConfig(max_tokens=120, max_steps=2, valid_every=2, valid_bleu_sentences=5)
    train(RunSpec(corpus, "xx", "yy", run), DATA, MODEL, cfg, RunOptions(progress=False))
    state = load_checkpoint(run / "last.pt")["train_state"]
    assert (state["epoch"], state["batch_in_epoch"]) == (0, 2) and state["best"] is not None
    args = ["train", "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(run), "--resume",
            "--max-steps", "4"]  # fmt: skip
    return run, args


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--valid-bleu-sentences", "0"], "picks best.pt by the validation bleu"),
        (["--best-metric", "loss"], "picks best.pt by the validation bleu"),
        (["--max-tokens", "160"], "stopped at batch 2 of epoch 0, whose batches were made with --max-tokens 120;"),
        (["--seed", "7"], "--seed 1234; with --seed 7 the rest of the epoch would skip or repeat pairs"),
    ],
)
def test_a_resume_that_would_change_what_its_state_counts_in_is_refused(tmp_path, capsys, flags, says) -> None:
    """Another selection metric froze best.pt (BLEU against -loss: nothing was ever better) and fired early
    stopping; other batches in mid-epoch skipped or repeated pairs, silently."""
    run, args = _stopped_mid_epoch(tmp_path)
    before = (run / "last.pt").read_bytes()
    assert main([*args, *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err
    assert (run / "last.pt").read_bytes() == before
    assert main([*args, "--lr", "1e-3"]) == 0  # a setting that changes neither is taken


def test_an_epoch_whose_updates_are_all_done_may_go_on_with_other_batches(tmp_path: Path) -> None:
    """last.pt of an epoch's last update records epoch 0 at its last batch: nothing of it is left, so other
    --max-tokens from there skip or repeat nothing (it was refused as if in mid-epoch)."""
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    cfg = TrainConfig(max_tokens=120, max_epochs=1, valid_every=1, valid_bleu_sentences=0)
    first = train(RunSpec(corpus, "xx", "yy", run), DATA, MODEL, cfg, RunOptions(progress=False))
    state = load_checkpoint(run / "last.pt")["train_state"]
    assert (state["epoch"], state["batch_in_epoch"]) == (0, first.steps)  # saved before the epoch rolled over
    more = dataclasses.replace(cfg, max_tokens=200, max_epochs=2)
    assert train(RunSpec(corpus, "xx", "yy", run), DATA, MODEL, more, RunOptions(resume=True, progress=False)).steps


def test_a_full_device_while_resuming_is_no_damaged_checkpoint(tmp_path: Path, monkeypatch) -> None:
    """Loading Adam's moments onto a full GPU raises torch.OutOfMemoryError (a RuntimeError): it was reported
    as a damaged last.pt, with advice (--overwrite) that would discard a good run."""
    from seq2seq.updater import Updater

    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    cfg = TrainConfig(max_tokens=120, max_steps=2, valid_every=2, valid_bleu_sentences=0)
    train(RunSpec(corpus, "xx", "yy", run), DATA, MODEL, cfg, RunOptions(progress=False))

    def full(*args: object, **kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Updater, "load", full)
    longer = dataclasses.replace(cfg, max_steps=4)
    with pytest.raises(torch.OutOfMemoryError):
        train(RunSpec(corpus, "xx", "yy", run), DATA, MODEL, longer, RunOptions(resume=True, progress=False))
