"""Multi-process training (DistributedDataParallel, gloo on CPU): the union-batch equivalence, exact
resume, rank-0-only files, and the `torchrun -m seq2seq train` command itself."""

from __future__ import annotations

import faulthandler
import gc
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
from seq2seq.scale import distributed
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
    # A rank once died of SIGABRT ("terminate called without an active exception") at exit: gloo's thread freed a
    # broadcast's tensors while the last garbage collection at exit ran (a core dump, 2026-12-06); `train` now frees
    # the DDP model before it leaves. If it comes back, this prints each thread's Python stack.
    faulthandler.enable(all_threads=True)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{root / 'rendezvous'}", rank=rank, world_size=world)
    alive, teardown = [], distributed.teardown

    def counting_teardown(d: Dist, failed: bool = False) -> None:  # how many DDP models live when train leaves
        alive.append(sum(isinstance(o, torch.nn.parallel.DistributedDataParallel) for o in gc.get_objects()))
        teardown(d, failed)

    distributed.teardown = counting_teardown
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
        (root / f"ddp-alive-{rank}.json").write_text(json.dumps(alive))
        dist.barrier()
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    write_corpus(root / "corpus", n_train=200)
    mp.spawn(_worker, args=(2, root), nprocs=2, join=True)
    return root


def test_train_frees_its_ddp_model_before_leaving_the_process_group(two_ranks: Path) -> None:
    """Left to the last garbage collection at exit, the DDP model's process group was freed while gloo's thread
    still held a broadcast's tensors: that thread could not take the GIL and the rank died of SIGABRT after a
    finished run (torchrun: "failed", exit 1). Every `train` of both ranks leaves with no DDP model alive."""
    for rank in (0, 1):
        assert json.loads((two_ranks / f"ddp-alive-{rank}.json").read_text()) == [0, 0, 0, 0, 0]


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


def test_an_error_on_one_process_ends_the_job_in_one_line(tmp_path: Path) -> None:
    """Rank 0 alone reads metrics.jsonl on a resume: its refusal used to leave it waiting at the teardown
    barrier and rank 1 in a collective, silently, for the process group's 2-hour timeout."""
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    assert _torchrun(corpus, run, "--max-steps", "2").returncode == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join([*lines[:2], "garbage line", *lines[3:]]) + "\n")
    done = _torchrun(corpus, run, "--max-steps", "4", "--resume")  # timeout=240: a hang fails the test
    assert done.returncode != 0
    assert done.stderr.count("metrics.jsonl:3: not a JSON record") == 1, done.stderr[-3000:]
    assert "Connection closed" not in done.stderr  # rank 1 got the refusal too, not a broken connection


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--tbptt", "4"], "--tbptt 4 with 2 processes"),
        (["--max-tokens", "100000", "--shape-buckets", "off"], "fewer than the 2 processes"),
    ],
)
def test_what_two_processes_cannot_train_is_refused_before_training(tmp_path: Path, flags, says) -> None:
    """--tbptt: once, before the run folder is prepared (it came after preprocessing, from both ranks
    on one line). One batch for two processes: 0 updates, exit 0 and "best.pt and last.pt in RUN" (none)."""
    corpus, run = write_corpus(tmp_path / "corpus", n_train=20), tmp_path / "run"
    done = _torchrun(corpus, run, "--max-steps", "4", *flags)
    assert done.returncode != 0 and says in done.stderr and "trained" not in done.stdout, done.stderr[-3000:]
    assert not (run / "last.pt").exists()
    if "--tbptt" in flags:
        assert done.stderr.count(says) == 1 and not (run / "preprocess.json").exists()


def test_a_failure_on_rank_1_alone_ends_the_job_promptly(tmp_path: Path) -> None:
    """Rank 1 fails in an update (out of memory, say) while rank 0 waits in the update's collective: rank 1
    leaves without the teardown barrier, so rank 0's collective fails and torchrun ends the job; at the
    barrier both waited for the group's 2-hour timeout."""
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    wrapper = tmp_path / "rank1_fails.py"
    wrapper.write_text(
        "import os, sys\nfrom seq2seq import updater\nfrom seq2seq.cli import main\nreal = updater.Updater.step\n"
        "def step(self, *a, **k):\n    if os.environ['RANK'] == '1':\n"
        "        raise MemoryError('simulated: rank 1 out of memory')\n    return real(self, *a, **k)\n"
        "updater.Updater.step = step\nsys.exit(main(sys.argv[1:]))\n"
    )
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(wrapper), "train",
           "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(run), "--vocab-size", "60",
           "--emb-size", "16", "--enc-hidden", "16", "--dec-hidden", "32", "--max-tokens", "60", "--threads", "1",
           "--max-steps", "4"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=90)
    assert done.returncode != 0 and "simulated: rank 1 out of memory" in done.stderr, done.stderr[-3000:]


class _Gathered(Dist):
    """Rank `rank` of a world of two whose `gather` returns what the other process is given to have chosen."""

    def __init__(self, other: tuple, rank: int = 0) -> None:
        super().__init__(rank=rank, world=2)
        object.__setattr__(self, "other", other)

    def gather(self, obj):  # noqa: ANN001, ANN201
        return [obj, self.other] if self.rank == 0 else [self.other, obj]


def test_processes_on_unlike_machines_must_choose_alike() -> None:
    """Each process chose precision and shape buckets from its own hardware: an AMX node trained bf16 with
    buckets beside an AVX2 node in fp32 without, on other batch lists, and said nothing. A process that could
    not run the precision at all stopped alone, while the others waited for it in the gather."""
    from seq2seq.errors import HardwareError
    from seq2seq.scale.distributed import check_same_choices

    check_same_choices(_Gathered(("bf16", "on", None)), lambda: "bf16", "on")
    says = r"process 0: precision bf16, shape buckets on; process 1: precision fp32, shape buckets off\): give"
    with pytest.raises(HardwareError, match=says):
        check_same_choices(_Gathered(("fp32", "off", None)), lambda: "bf16", "on")

    def cannot() -> str:
        raise HardwareError("precision bf16: this CPU (AVX2) cannot run it")

    with pytest.raises(HardwareError, match=r"^process 1: precision bf16: this CPU \(AVX2\)") as raised:
        check_same_choices(_Gathered(("bf16", "on", None), rank=1), cannot, "on")  # rank 1 says why: to everyone
    assert raised.value.reported_by_rank0  # and rank 0 prints it
    with pytest.raises(HardwareError, match=r"^process 1: precision bf16") as raised:
        check_same_choices(
            _Gathered((None, "on", "precision bf16: this CPU (AVX2) cannot run it")), lambda: "bf16", "on"
        )
    assert not hasattr(raised.value, "reported_by_rank0")


def test_a_torchrun_environment_that_cannot_work_is_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from seq2seq.errors import HardwareError
    from seq2seq.scale.distributed import setup

    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="WORLD_SIZE=2 without RANK, MASTER_ADDR, MASTER_PORT: start"):
        setup("cpu")  # was a ValueError traceback from torch (LOCAL_RANK: only a GPU needs it; SLURM/MPI launchers)
    with pytest.raises(ConfigError, match="WORLD_SIZE=2 without RANK, MASTER_ADDR, MASTER_PORT, LOCAL_RANK: start"):
        setup("cuda")
    for key, value in (("RANK", "3"), ("LOCAL_RANK", "3"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "1")):
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: pytest.fail("set_device(cuda:3) on a 2-GPU machine"))
    with pytest.raises(HardwareError, match="process 3 of this machine needs cuda:3, and it has 2 CUDA GPU"):
        setup("cuda")


def test_the_training_memory_check_shares_the_machine_among_its_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    from seq2seq import updater

    monkeypatch.setattr(updater, "half_memory", lambda: 8 * 10**9)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert updater.training_memory(torch.device("cpu")) == (8 * 10**9, "half this machine's memory")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert updater.training_memory(torch.device("cpu"))[0] == 2 * 10**9
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: type("P", (), {"total_memory": 80 * 10**9}))
    assert updater.training_memory(torch.device("cuda", 0)) == (80 * 10**9, "the memory of cuda:0")
    model = ModelConfig(emb_size=4096, enc_hidden=4096, dec_hidden=4096)  # about 0.4 G parameters: 6.5 GB
    updater.check_model_memory(model, (8000, 8000), TrainConfig(), torch.device("cuda", 0))
    with pytest.raises(ConfigError, match="over half this machine's memory over its 4 training processes"):
        updater.check_model_memory(model, (8000, 8000), TrainConfig())


def test_a_refusal_every_process_makes_alike_is_printed_once(tmp_path: Path) -> None:
    """A resume that changes --max-tokens in mid-epoch is refused by every process from the same last.pt:
    each printed it."""
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    assert _torchrun(corpus, run, "--max-steps", "2").returncode == 0
    done = _torchrun(corpus, run, "--max-steps", "4", "--resume", "--max-tokens", "80")
    assert done.returncode != 0 and done.stderr.count("whose batches were made with --max-tokens 60") == 1, done.stderr
