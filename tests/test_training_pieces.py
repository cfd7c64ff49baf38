"""The pieces training is made of, each on its own: process settings, counters and stop rules,
checkpoint bookkeeping, and the tokenizer's seed (DataConfig.spm_seed, not the training seed)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest
import torch
from corpora import write_corpus
from test_resume import DATA, MODEL

import seq2seq.tokenizer as tokenizer_module
from seq2seq.checkpoint import ModelFile, ResumeState, load_checkpoint, read_model
from seq2seq.cli import main
from seq2seq.config import TrainConfig
from seq2seq.config_dict import to_dict
from seq2seq.machine import process
from seq2seq.machine.process import ProcessSettings
from seq2seq.progress import TrainState, after_update, after_validation, early_stop, nan_stop, stop_reason
from seq2seq.runfiles import RunFiles
from seq2seq.train import RunOptions, RunSpec, train

if TYPE_CHECKING:
    from pathlib import Path


def test_process_settings_come_from_the_train_config_and_apply_once(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = TrainConfig(threads=1, onednn_cache=5, malloc_mmap_kib=0, tf32=True)
    on_cpu, on_gpu = ProcessSettings.for_training(cfg, "cpu"), ProcessSettings.for_training(cfg, "cuda")
    assert (on_cpu.threads, on_cpu.onednn_cache, on_cpu.malloc_mmap_kib) == (1, 5, 0)
    assert on_cpu.tf32 is None and on_gpu.tf32 is True  # TF32 is a GPU setting: a CPU run leaves torch's flag
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    threads, tf32 = torch.get_num_threads(), torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        process.apply(on_cpu)
        assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "5" and torch.get_num_threads() == 1
        assert torch.backends.cuda.matmul.allow_tf32 is False
        process.apply(ProcessSettings(tf32=True))
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.set_num_threads(threads)
        torch.backends.cuda.matmul.allow_tf32 = tf32


def test_counters_and_stop_rules() -> None:
    cfg = TrainConfig(max_steps=3, max_minutes=1.0, patience=2, max_nan_steps=2)
    st = TrainState()
    after_update(st, True, 10)
    after_update(st, False, 7)
    assert (st.step, st.tokens, st.nan_streak, st.skipped_steps) == (1, 10, 1, 1)
    assert nan_stop(cfg, st) is None
    after_update(st, False, 7)
    assert nan_stop(cfg, st) == "2 non-finite losses in a row"  # what is kept: the trainer says (test_divergence.py)
    after_update(st, True, 5)
    assert (st.step, st.tokens, st.nan_streak, st.skipped_steps) == (2, 15, 0, 2)  # a good update ends the streak
    assert stop_reason(cfg, st, 59.0) is None
    assert stop_reason(cfg, st, 60.0) == "max_minutes=1.0"  # seconds include the time a final validation takes
    st.step = 3
    assert stop_reason(cfg, st, 0.0) == "max_steps=3"
    assert early_stop(cfg, st) is None
    for loss in (1.0, 2.0):  # counted by validations, not set by hand (that let a loop that never counted pass)
        after_validation(cfg, st, {"val_loss": loss})
        assert early_stop(cfg, st) is None
    after_validation(cfg, st, {"val_loss": 1.5})
    assert st.bad_validations == 2
    assert early_stop(cfg, st) == "early stopping (no improvement in 2 validations)"
    assert early_stop(TrainConfig(patience=0), st) is None


def _model_file(step: int) -> ModelFile:
    return ModelFile(
        model_config=to_dict(MODEL), state_dict={"w": torch.full((2,), float(step))}, src_spm=b"s", tgt_spm=b"t",
        src_lang="xx", tgt_lang="yy", data_config=to_dict(DATA), train_config=to_dict(TrainConfig()), step=step,
    )  # fmt: skip


def _resume(step: int) -> ResumeState:
    return ResumeState(optimizer={"state": {}, "param_groups": []}, train_state={"step": step},
                       rng=[{"cpu": torch.get_rng_state()}])  # fmt: skip


def test_run_files_save_checkpoints_and_prune_step_files(tmp_path: Path) -> None:
    files = RunFiles(tmp_path)
    files.save(_model_file(2), _resume(2), best=True, keep=2)
    files.save(_model_file(4), _resume(4), keep=2)
    files.save(_model_file(5), _resume(5))  # an interrupt's save: last.pt only
    files.save(_model_file(6), _resume(6), keep=2)
    assert [p.name for p in files.step_files()] == ["step0000004.pt", "step0000006.pt"]
    assert read_model(tmp_path / "best.pt").step == 2 and "optimizer" not in load_checkpoint(tmp_path / "best.pt")
    model, resume = files.read_resume()
    assert model.step == 6 and resume.train_state == {"step": 6}
    assert torch.equal(read_model(tmp_path / "step0000004.pt").state_dict["w"], torch.full((2,), 4.0))
    RunFiles(tmp_path / "elsewhere", write=False).save(_model_file(8), _resume(8), best=True, keep=1)
    assert not (tmp_path / "elsewhere").exists()  # ranks > 0 write nothing


@pytest.fixture
def spm_seeds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The seeds SentencePiece is trained with, one per model trained."""
    seeds: list[int] = []
    real = tokenizer_module.train_sentencepiece

    def spy(sentences, vocab_size, **kwargs):
        seeds.append(kwargs["seed"])
        return real(sentences, vocab_size, **kwargs)

    monkeypatch.setattr(tokenizer_module, "train_sentencepiece", spy)
    return seeds


def test_the_tokenizer_seed_is_data_config_spm_seed(tmp_path: Path, spm_seeds: list[int], capsys) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=60)
    args = ["preprocess", "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--vocab-size", "60"]
    assert main([*args, "--out", str(tmp_path / "a"), "--spm-seed", "7"]) == 0
    assert spm_seeds == [7, 7]
    assert json.loads((tmp_path / "a" / "preprocess.json").read_text())["data"]["spm_seed"] == 7
    with pytest.raises(SystemExit) as stopped:  # the old flag is an unknown one, said so
        main([*args, "--out", str(tmp_path / "b"), "--seed", "7"])
    assert stopped.value.code == 2 and "unrecognized arguments: --seed 7" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    # train() preparing a run folder: the tokenizer gets DataConfig's seed (default 1234), never the training seed
    spm_seeds.clear()
    cfg = TrainConfig(seed=5, max_steps=1, valid_bleu_sentences=0)
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    assert spm_seeds == [1234, 1234] and DATA.spm_seed == 1234
    assert load_checkpoint(tmp_path / "run" / "last.pt")["data_config"]["spm_seed"] == 1234


_SPM_IN_A_PROCESS = """
import hashlib, random, sys
from seq2seq.tokenizer import train_sentencepiece
rng = random.Random(0)
words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()
lines = [" ".join(rng.choice(words) for _ in range(6)) + f" w{i}" for i in range(3000)]
model = train_sentencepiece(lines, 300, input_sentence_size=500, seed=int(sys.argv[1]))
print(hashlib.sha256(model).hexdigest())
"""


def test_the_tokenizer_of_a_corpus_over_its_sample_size_is_the_same_in_every_process() -> None:
    """SentencePiece's own sampling (input_sentence_size) ignored spm.set_random_generator_seed: each process
    sampled other sentences, so preprocess of a corpus over --spm-input-sentence-size was not reproducible."""
    import subprocess
    import sys

    def model(seed: int) -> str:
        done = subprocess.run([sys.executable, "-c", _SPM_IN_A_PROCESS, str(seed)], capture_output=True, text=True,
                              timeout=120, check=True)  # fmt: skip
        return done.stdout.strip()

    first = model(1)
    assert model(1) == first  # another process, the same seed: the same bytes
    assert model(2) != first  # another seed: another sample


def test_the_sentencepiece_sample_is_seeded_and_bounded() -> None:
    lines = [f"s{i}" for i in range(1000)]
    sample = tokenizer_module.sample_sentences(iter(lines), 100, seed=3)
    assert len(sample) == 100 and len(set(sample)) == 100 and set(sample) <= set(lines)
    assert sample == tokenizer_module.sample_sentences(lines, 100, seed=3)
    assert sample != tokenizer_module.sample_sentences(lines, 100, seed=4)
    assert tokenizer_module.sample_sentences(lines[:50], 100, seed=3) == lines[:50]  # a smaller corpus: all of it


@pytest.mark.parametrize("clip_norm", [0.01, 0.0, 1e6])  # clipped; off; a bound the gradient stays under
def test_an_update_clips_as_clip_grad_norm_then_torch_adam_would(clip_norm: float) -> None:
    # Updater folds the clipping factor into Adam's pass (grad_scale); the reference clips the gradients first
    import copy

    import numpy as np

    from seq2seq.batches import collate
    from seq2seq.config import ModelConfig
    from seq2seq.objective import forward_backward
    from seq2seq.prepared import EncodedSplit
    from seq2seq.updater import Updater

    cfg = TrainConfig(clip_norm=clip_norm, lr=1e-2, precision="fp32")
    up = Updater.build(ModelConfig(emb_size=10, enc_hidden=6, dec_hidden=12, dropout=0.0), (20, 20), cfg)
    ref = copy.deepcopy(up.model)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2, fused=True)
    split = EncodedSplit.from_lists([[4, 5, 6, 7], [8, 9], [10, 11, 12]], [[4, 5, 6, 7, 8, 9], [10, 11], [5, 7, 9]])
    batch = collate(split, np.arange(3))
    for _ in range(3):
        result = up.step(batch, batch.n_tokens, 1e-2)
        opt.zero_grad(set_to_none=True)
        forward_backward(ref, batch, cfg, scale=1 / batch.n_tokens)
        norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), clip_norm or float("inf")).item()
        opt.step()
        assert result.applied and result.grad_norm == pytest.approx(norm, rel=1e-5)
        for (name, p), q in zip(up.model.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-9, msg=name)  # both left clipped
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
        if clip_norm == 0.01:  # the gradient was over the bound: it was scaled down to it
            clipped = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for p in ref.parameters()])
            )
            assert norm > 2 * clip_norm and clipped.item() == pytest.approx(clip_norm, rel=1e-4)


def test_step_checkpoints_are_ordered_by_number(tmp_path) -> None:
    """--keep-checkpoints deletes the oldest: by update number, not by name (step10000000.pt sorted before
    step9999999.pt as text, so the newest was deleted right after it was written); other names are not its."""
    from seq2seq.runfiles import RunFiles

    for name in ("step10000000.pt", "step9999999.pt", "step0000005.pt", "step12b.pt", "stepper.pt"):
        (tmp_path / name).write_bytes(b"")
    names = [p.name for p in RunFiles(tmp_path).step_files()]
    assert names == ["step0000005.pt", "step9999999.pt", "step10000000.pt"]


def test_training_tokens_per_second_leave_validation_time_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A validation of 1.5 s between two log records of a few ms of updates each: the record after it
    reports the updates' pace (it read ~50x low when the window held the validation)."""
    import time

    from seq2seq import trainer

    real = trainer._validate

    def slow(*args: object) -> dict[str, float]:
        time.sleep(1.5)
        return real(*args)

    monkeypatch.setattr(trainer, "_validate", slow)
    corpus, run = write_corpus(tmp_path / "c", n_train=120), tmp_path / "run"
    cfg = TrainConfig(max_tokens=120, max_steps=8, valid_every=4, log_every=2, valid_bleu_sentences=0, threads=1)
    train(RunSpec(corpus, "xx", "yy", run), DATA, MODEL, cfg, RunOptions(progress=False))
    rates = {r["step"]: r["tgt_tok_s"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
             if r["type"] == "train"}  # fmt: skip
    assert sorted(rates) == [2, 4, 6, 8]
    assert rates[6] > rates[4] / 10 and rates[6] > rates[2] / 10  # step 6's window began before update 4's validation
