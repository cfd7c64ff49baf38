"""Multi-process training (DistributedDataParallel, gloo on CPU): the union-batch equivalence, exact
resume, rank-0-only files, and the `torchrun -m seq2seq train` command itself."""

from __future__ import annotations

import faulthandler
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from corpora import write_corpus
from test_resume import DATA, MODEL, assert_same_weights

from seq2seq.batches import collate, make_batches
from seq2seq.checkpoint import load_checkpoint
from seq2seq.config import ConfigError, ModelConfig, TrainConfig
from seq2seq.prepared import Prepared
from seq2seq.progress import TrainState, after_update, budget_progress, learning_rate
from seq2seq.scale.distributed import Dist
from seq2seq.train import RunOptions, RunSpec, train
from seq2seq.updater import Updater

if TYPE_CHECKING:
    from pathlib import Path

NO_DROPOUT = ModelConfig(emb_size=16, enc_hidden=16, dec_hidden=32, dropout=0.0)
STEPS = 6


def equivalence_cfg(teacher_forcing: float) -> TrainConfig:
    # valid_every=3: rank 0 validates at updates 3 and 6 while rank 1 waits (no lr decay can happen yet);
    # fp32: the equivalence is exact arithmetic, compared at fp32 tolerances (bf16 rounds per batch shape)
    return TrainConfig(max_tokens=60, max_steps=STEPS, valid_every=3, valid_bleu_sentences=5, log_every=1,
                       teacher_forcing=teacher_forcing, label_smoothing=0.1, precision="fp32")  # fmt: skip


def resume_cfg(steps: int) -> TrainConfig:
    return TrainConfig(max_tokens=60, max_steps=steps, valid_every=3, valid_bleu_sentences=0, subword_alpha=0.5)


def _worker(rank: int, world: int, root: Path) -> None:
    """One rank: a process group of its own (file rendezvous), then ordinary `train` calls."""
    # A rank once died of SIGABRT ("terminate called without an active exception") in 1 of ~30 runs; not
    # reproduced since (26 runs under a CPU hog). If it comes back, this prints each thread's Python stack.
    faulthandler.enable(all_threads=True)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{root / 'rendezvous'}", rank=rank, world_size=world)
    try:
        corpus = root / "corpus"
        for tf in (1.0, 0.0):  # teacher forcing, and feeding the model's own (argmax) predictions
            train(
                RunSpec(corpus, "xx", "yy", root / f"ddp-tf{tf}"),
                DATA,
                NO_DROPOUT,
                equivalence_cfg(tf),
                RunOptions(progress=False),
            )
        # With dropout and subword sampling (rank 0 encodes, all map it): resumed == uninterrupted, to the bit.
        train(RunSpec(corpus, "xx", "yy", root / "full"), DATA, MODEL, resume_cfg(STEPS), RunOptions(progress=False))
        train(RunSpec(corpus, "xx", "yy", root / "part"), DATA, MODEL, resume_cfg(3), RunOptions(progress=False))
        train(
            RunSpec(corpus, "xx", "yy", root / "part"),
            DATA,
            MODEL,
            resume_cfg(STEPS),
            RunOptions(resume=True, progress=False),
        )
    finally:
        dist.barrier()
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    write_corpus(root / "corpus", n_train=200)
    mp.spawn(_worker, args=(2, root), nprocs=2, join=True)
    return root


@pytest.mark.parametrize("teacher_forcing", [1.0, 0.0])
def test_two_ranks_match_one_process_on_the_union_batch(two_ranks: Path, teacher_forcing: float) -> None:
    """2 ranks x batch B == 1 process x the union batch 2B, update after update (same data order)."""
    run = two_ranks / f"ddp-tf{teacher_forcing}"
    cfg = equivalence_cfg(teacher_forcing)
    prepared = Prepared.load(run)
    reference = Updater.build(NO_DROPOUT, prepared.vocab, cfg)  # one process, same seed and init
    st = TrainState()  # its counters
    init = {k: v.clone() for k, v in reference.model.state_dict().items()}
    split = prepared.split("train")
    batches = make_batches(split.src_lens, split.tgt_lens, cfg.max_tokens, np.random.default_rng([cfg.seed, 0]))
    assert len(batches) >= 2 * STEPS  # all in epoch 0
    losses = []
    for k in range(STEPS):  # update k: rank 0 had batch 2k, rank 1 batch 2k+1
        union = np.concatenate([batches[2 * k], batches[2 * k + 1]])
        batch = collate(split, union)
        lr = learning_rate(cfg, st.step, st.lr_scale, budget_progress(cfg, st.step, 0.0))
        result = reference.step(batch, batch.n_tokens, lr)
        after_update(st, result.applied, batch.n_tokens)
        assert result.applied
        losses.append(result.loss)
    ddp = load_checkpoint(run / "last.pt")
    assert ddp["train_state"]["step"] == STEPS and ddp["train_state"]["tokens"] == st.tokens
    moved = 0.0
    for name, tensor in reference.model.state_dict().items():
        torch.testing.assert_close(ddp["model"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
        moved = max(moved, (tensor - init[name]).abs().max().item())
    assert moved > 1e-3  # far above the tolerance: the updates did move the weights
    # Rank 0 alone wrote the log, each record once, with the loss of the whole update (both ranks' tokens).
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "train"] == list(range(1, STEPS + 1))
    assert [r["step"] for r in records if r["type"] == "valid"] == [3, STEPS]
    logged = [r["loss"] for r in records if r["type"] == "train"]
    assert logged == pytest.approx(losses, abs=2e-5)
    assert len(ddp["rng"]) == 2 and not torch.equal(ddp["rng"][0]["cpu"], ddp["rng"][1]["cpu"])


def test_resume_with_two_ranks_is_exact(two_ranks: Path) -> None:
    """Killed-and-resumed 2-process training (dropout on, per-rank RNG restored) == uninterrupted."""
    assert_same_weights(two_ranks / "full" / "last.pt", two_ranks / "part" / "last.pt")
    records = [json.loads(line) for line in (two_ranks / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "valid"] == [3, STEPS]
    leftovers = [p.name for p in (two_ranks / "part").iterdir() if p.name.startswith(".") and p.name != ".lock"]
    assert leftovers == []  # no temporary files from a second writer


def test_tbptt_is_refused_with_several_processes(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=40)
    train(
        RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, TrainConfig(max_steps=1), RunOptions(progress=False)
    )
    prepared = Prepared.load(tmp_path / "run")
    with pytest.raises(ConfigError, match="--tbptt 4 with 2 processes"):
        Updater.build(MODEL, prepared.vocab, TrainConfig(tbptt=4), dist=Dist(rank=0, world=2))


def _torchrun(corpus: Path, run: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "seq2seq", "train", "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(run),
        "--vocab-size", "60", "--emb-size", "16", "--enc-hidden", "16", "--dec-hidden", "32",
        "--max-tokens", "60", "--valid-every", "2", "--valid-bleu-sentences", "5", "--threads", "1", *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)


def test_torchrun_command(tmp_path: Path) -> None:
    """The documented command, `torchrun --nproc_per_node=2 -m seq2seq train ...` (resume: see above)."""
    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    run = tmp_path / "run"
    done = _torchrun(corpus, run, "--max-steps", "4")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 4 updates") == 1  # rank 0 reports, once
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "valid"] == [2, 4]
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["train_state"]["step"] == 4 and len(ckpt["rng"]) == 2
