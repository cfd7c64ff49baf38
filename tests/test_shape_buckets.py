"""Shape buckets: batches padded to a few fixed shapes train exactly as unpadded ones (batches.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from corpora import write_corpus

import seq2seq.objective as objective
from seq2seq.batches import bucket_shape, bucket_width, collate, make_batches
from seq2seq.checkpoint import resume_configs
from seq2seq.config import BUCKETED_ONEDNN_CACHE, TRAINING_ONEDNN_CACHE, DataConfig, ModelConfig, TrainConfig
from seq2seq.ids import EOS_ID, PAD_ID
from seq2seq.machine import hardware
from seq2seq.machine.process import ProcessSettings
from seq2seq.model import Seq2Seq
from seq2seq.objective import OutputLoss, TrainingLoss, forward_backward
from seq2seq.prepared import EncodedSplit
from seq2seq.train import RunOptions, RunSpec, train
from seq2seq.updater import Updater

if TYPE_CHECKING:
    from pathlib import Path


def _split(n: int = 40, seed: int = 0) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    src = [list(rng.integers(4, 30, rng.integers(1, 14))) for _ in range(n)]
    tgt = [list(rng.integers(4, 30, rng.integers(1, 12))) for _ in range(n)]
    return EncodedSplit.from_lists(src, tgt)


def test_bucket_widths_by_hand() -> None:
    widths = np.array([1, 5, 8, 9, 32, 33, 40, 41, 64, 65, 128, 129, 200])
    assert bucket_width(widths).tolist() == [4, 8, 8, 12, 32, 40, 40, 48, 64, 80, 128, 160, 224]


def test_bucket_shapes_by_hand() -> None:
    assert bucket_shape(17, 2700) == (128, 20)  # 2700 // 20 = 135 rows, down to a multiple of 16
    assert bucket_shape(30, 400) == (12, 32)  # fewer than 16 rows: as many as fit
    assert bucket_shape(50, 20) == (1, 56)  # wider than the budget: one row, as unbucketed batches allow


def test_bucketed_batches_hold_every_pair_once_in_one_bucket_each() -> None:
    split = _split(300)
    batches = make_batches(split.src_lens, split.tgt_lens, 120, np.random.default_rng(1), bucketed=True)
    assert sorted(np.concatenate(batches).tolist()) == list(range(300))
    width = np.maximum(split.src_lens, split.tgt_lens) + 1
    shapes = set()
    for idx in batches:
        (cols,) = set(bucket_width(width[idx]).tolist())  # one bucket per batch
        rows, cols2 = bucket_shape(int(width[idx].max()), 120)
        assert cols2 == cols and len(idx) <= rows and rows * cols <= 120
        batch = collate(split, idx, bucket_tokens=120)
        assert batch.src_ids.shape == batch.tgt_in.shape == batch.tgt_out.shape == (rows, cols)
        shapes.add((rows, cols))
    assert len(shapes) == len(set(bucket_width(width).tolist())) < len(batches)  # one shape per bucket
    again = make_batches(split.src_lens, split.tgt_lens, 120, np.random.default_rng(1), bucketed=True)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # a function of the seed: exact resume


def test_padded_rows_carry_a_lone_eos_and_no_target() -> None:
    split = _split(5)
    idx = np.arange(5)
    plain, padded = collate(split, idx), collate(split, idx, bucket_tokens=400)
    rows, cols = padded.src_ids.shape
    assert rows > 5 and cols >= plain.src_ids.size(1)
    assert padded.n_tokens == plain.n_tokens
    assert torch.equal(padded.src_ids[:5, : plain.src_ids.size(1)], plain.src_ids)
    assert torch.equal(padded.src_lens[:5], plain.src_lens) and (padded.src_lens[5:] == 1).all()
    assert (padded.src_ids[5:, 0] == EOS_ID).all() and (padded.src_ids[5:, 1:] == PAD_ID).all()
    assert (padded.tgt_in[5:] == PAD_ID).all() and (padded.tgt_out[5:] == PAD_ID).all()
    assert (padded.tgt_out[:, plain.tgt_out.size(1) :] == PAD_ID).all()


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.bfloat16]
)  # the gradient written over the scores in their dtype
def test_padding_rows_of_the_output_layer_get_no_loss_and_no_gradient(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(10, 5, generator=g).to(dtype).requires_grad_()
    w, b = torch.randn(7, 5, generator=g).requires_grad_(), torch.randn(7, generator=g).requires_grad_()
    target = torch.randint(0, 7, (6,), generator=g)
    loss = OutputLoss.apply(h, w, b, target, 0.1)
    scores = torch.nn.functional.linear(h[:6], w.to(dtype), b.to(dtype)).float()
    ref = torch.nn.functional.cross_entropy(scores, target, reduction="sum", label_smoothing=0.1)
    torch.testing.assert_close(loss, ref, rtol=1e-5 if dtype == torch.float32 else 1e-2, atol=0)
    loss.backward()
    assert (h.grad[6:] == 0).all() and (h.grad[:6] != 0).any()


def _grads(model: Seq2Seq, batch, cfg: TrainConfig) -> tuple[float, list[torch.Tensor]]:
    model.zero_grad()
    loss = forward_backward(model, batch, cfg, scale=1.0, net=TrainingLoss(model, cfg) if not cfg.tbptt else None)
    return loss, [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("tbptt", [0, 3])
def test_a_bucketed_batch_gives_the_loss_and_gradients_of_the_plain_one(tbptt: int, monkeypatch) -> None:
    monkeypatch.setattr(objective, "OUTPUT_ROWS", 8)  # the output layer's rows padded too, on this tiny batch
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(emb_size=12, enc_hidden=8, dec_hidden=16, dropout=0.0), 30, 30)
    split, idx = _split(), np.arange(9)
    off = TrainConfig(shape_buckets="off", tbptt=tbptt, label_smoothing=0.1)
    plain_loss, plain = _grads(model, collate(split, idx), off)
    on = replace(off, shape_buckets="on")
    padded = collate(split, idx, bucket_tokens=300)
    assert padded.src_ids.size(0) > 9 and padded.tgt_in.size(1) > collate(split, idx).tgt_in.size(1)
    bucket_loss, bucketed = _grads(model, padded, on)
    assert bucket_loss == pytest.approx(plain_loss, rel=1e-5)
    for a, b in zip(plain, bucketed):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_auto_turns_buckets_on_for_bf16_on_amx_only(monkeypatch) -> None:
    assert hardware.shape_buckets_on("on", "fp32", "cuda") and not hardware.shape_buckets_on("off", "bf16", "cpu")
    monkeypatch.setattr(hardware, "amx_in_use", lambda: True)
    assert hardware.shape_buckets_on("auto", "auto", "cpu") and hardware.shape_buckets_on("auto", "bf16", "cpu")
    assert not hardware.shape_buckets_on("auto", "fp32", "cpu")
    assert not hardware.shape_buckets_on("auto", "auto", "cuda")
    monkeypatch.setattr(hardware, "amx_in_use", lambda: False)
    assert not hardware.shape_buckets_on("auto", "bf16", "cpu")


def test_the_cache_holds_every_bucketed_shape_and_an_explicit_size_wins() -> None:
    on, off = TrainConfig(shape_buckets="on"), TrainConfig(shape_buckets="off")
    assert ProcessSettings.for_training(on, "cpu").onednn_cache == BUCKETED_ONEDNN_CACHE
    assert ProcessSettings.for_training(off, "cpu").onednn_cache == TRAINING_ONEDNN_CACHE
    assert ProcessSettings.for_training(replace(on, onednn_cache=8), "cpu").onednn_cache == 8


def test_train_records_the_decision_and_trains_bucketed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batches that reach the update are looked at: the trainer collating without the bucket budget (plain
    batches whatever shape_buckets said) passed when only the recorded setting was checked."""
    shapes: list[tuple[tuple[int, ...], tuple[int, ...], int]] = []
    real_step = Updater.step

    def spy(self, batch, tokens, lr):
        real_rows = int((batch.tgt_out != PAD_ID).any(dim=1).sum())  # bucketed: added rows have no target
        shapes.append((tuple(batch.src_ids.shape), tuple(batch.tgt_out.shape), real_rows))
        return real_step(self, batch, tokens, lr)

    monkeypatch.setattr(Updater, "step", spy)
    corpus = write_corpus(tmp_path / "corpus", n_train=80)
    model = ModelConfig(emb_size=16, enc_hidden=16, dec_hidden=32)
    for setting in ("on", "off"):
        cfg = TrainConfig(max_tokens=150, max_steps=4, valid_every=4, valid_bleu_sentences=0, shape_buckets=setting)
        run = tmp_path / setting
        spec = RunSpec(corpus, "xx", "yy", run)
        shapes.clear()
        result = train(spec, DataConfig(vocab_size=60), model, cfg, RunOptions(progress=False))
        assert result.steps == 4
        assert resume_configs(run / "last.pt")["train"]["shape_buckets"] == setting
        assert len(shapes) == 4
        bucketed = [src == tgt == bucket_shape(src[1], 150) for src, tgt, _ in shapes]
        padded_rows = [src[0] > rows for src, _, rows in shapes]
        if setting == "on":
            assert all(bucketed) and any(padded_rows), shapes
        else:
            assert not any(padded_rows) and not all(bucketed), shapes  # one row per pair, each its own width
