"""The checkpoint file format (checkpoint.py): a model file and its resume state round-trip bit for bit,
weights-only files hold no resume state, and an incomplete, mistyped or pre-RNG-state file is one clear line."""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass
from typing import TYPE_CHECKING, Any

import pytest
import torch

from seq2seq.checkpoint import (
    CheckpointError,
    ModelFile,
    ResumeState,
    average_checkpoints,
    load_checkpoint,
    read_model,
    read_resume,
    resume_configs,
    save_checkpoint,
    write_model_checkpoint,
)
from seq2seq.config import DataConfig, ModelConfig, TrainConfig
from seq2seq.config_dict import from_dict, to_dict
from seq2seq.progress import TrainState
from seq2seq.runfiles import check_resume_request

if TYPE_CHECKING:
    from pathlib import Path

MODEL = ModelConfig(emb_size=16, enc_hidden=16, dec_hidden=32, dropout=0.3)
DATA = DataConfig(vocab_size=60)


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal values, tensors equal to the bit and of the same dtype, through dataclasses, dicts and lists."""
    if is_dataclass(a):
        assert type(a) is type(b), where
        for f in fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, where


def _model_file() -> ModelFile:
    return ModelFile(
        model_config=to_dict(MODEL),
        state_dict={"emb.weight": torch.randn(5, 3), "out.bias": torch.arange(5).to(torch.bfloat16)},
        src_spm=b"\n\x03src\x00",
        tgt_spm=b"\n\x03tgt\xff",
        src_lang="xx",
        tgt_lang="yy",
        data_config=to_dict(DATA),
        train_config=to_dict(TrainConfig(max_steps=7)),
        step=7,
    )


def _resume_state() -> ResumeState:
    weight = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.Adam([weight], lr=0.01)
    (weight**2).sum().backward()
    opt.step()
    history = [{"type": "valid", "step": 6, "val_loss": 1.5, "best": True}]
    return ResumeState(
        optimizer=opt.state_dict(),
        train_state=asdict(TrainState(step=7, epoch=1, batch_in_epoch=3, best=-1.5, tokens=900, history=history)),
        rng=[{"cpu": torch.get_rng_state()}, {"cpu": torch.Generator().manual_seed(1).get_state()}],
        grad_scaler={"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "_growth_tracker": 3},
    )


FILE_KEYS = ["format", "version", "model_config", "model", "src_spm", "tgt_spm", "src_lang", "tgt_lang",
             "train_config", "data_config", "step"]  # fmt: skip
RESUME_KEYS = ["optimizer", "train_state", "rng", "grad_scaler"]


def test_model_file_and_resume_state_round_trip(tmp_path: Path) -> None:
    model, resume = _model_file(), _resume_state()
    write_model_checkpoint(tmp_path / "last.pt", model, resume)
    read_back, resumed = read_resume(tmp_path / "last.pt")
    assert_same(model, read_back)
    assert_same(resume, resumed)
    assert_same(model, read_model(tmp_path / "last.pt"))
    assert list(load_checkpoint(tmp_path / "last.pt")) == FILE_KEYS + RESUME_KEYS  # the format on disk
    assert resume_configs(tmp_path / "last.pt") == {
        "data": to_dict(DATA),
        "model": to_dict(MODEL),
        "train": to_dict(TrainConfig(max_steps=7)),
    }

    # Weights only (best.pt, stepNNNNNNN.pt, averaged files): no resume state; optional parts left out.
    bare = _model_file()
    write_model_checkpoint(tmp_path / "best.pt", bare)
    assert list(load_checkpoint(tmp_path / "best.pt")) == FILE_KEYS
    again = read_model(tmp_path / "best.pt")
    assert again.averaged is None
    assert_same(bare, again)
    with pytest.raises(CheckpointError, match="best.pt: holds no training state to resume from"):
        read_resume(tmp_path / "best.pt")


def test_a_last_pt_without_per_rank_rng_states_is_refused_in_one_line(tmp_path: Path) -> None:
    """Resuming needs every saved part; a file without the per-rank RNG states (or with only a bare
    CPU generator state, as early files had) is an incomplete checkpoint, not silently re-seeded."""
    model, resume = _model_file(), _resume_state()
    old = {k: getattr(model, "state_dict" if k == "model" else k) for k in FILE_KEYS[2:]}
    save_checkpoint(tmp_path / "last.pt", old | {"optimizer": resume.optimizer, "train_state": resume.train_state,
                                                 "torch_rng": torch.get_rng_state()})  # fmt: skip
    with pytest.raises(CheckpointError, match=r"last.pt: incomplete or inconsistent checkpoint: no 'rng'$"):
        read_resume(tmp_path / "last.pt")
    assert read_model(tmp_path / "last.pt").step == 7  # the model part alone still serves translation


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tgt_spm": None}, "no 'tgt_spm'"),
        ({"step": "7"}, "'step' is str, not int"),
        ({"model": [1]}, "'model' is list"),
    ],
)
def test_incomplete_or_mistyped_checkpoint_is_one_clear_line(tmp_path: Path, change: dict, message: str) -> None:
    payload = load_checkpoint(_written(tmp_path))
    payload = {k: v for k, v in (payload | change).items() if v is not None}
    save_checkpoint(tmp_path / "bad.pt", payload)
    for read in (read_model, read_resume):
        with pytest.raises(CheckpointError, match=message) as err:
            read(tmp_path / "bad.pt")
        assert str(err.value).startswith(f"{tmp_path / 'bad.pt'}: incomplete or inconsistent checkpoint")
        assert "\n" not in str(err.value)


def _written(tmp_path: Path) -> Path:
    write_model_checkpoint(tmp_path / "good.pt", _model_file(), _resume_state())
    return tmp_path / "good.pt"


def test_a_file_from_before_a_model_field_reads_as_what_it_was_trained_with(tmp_path: Path) -> None:
    """Files written before `emb_init_std` existed were trained with N(0, 1) embeddings: they read as 1.0
    (not today's default 0.25), so a resumed run records the truth, accepts `--emb-init-std 1`, refuses
    0.25 by name, and its old and new step files average."""
    old = _model_file()
    del old.model_config["emb_init_std"]
    write_model_checkpoint(tmp_path / "old.pt", old, _resume_state())
    assert read_model(tmp_path / "old.pt").model_config["emb_init_std"] == 1.0
    saved = resume_configs(tmp_path / "old.pt")
    assert saved["model"]["emb_init_std"] == 1.0
    assert list(saved["model"])[:-1] == list(old.model_config)  # the file's own keys first, in their order
    check_resume_request(tmp_path / "old.pt", saved, {}, {"emb_init_std": 1.0})
    with pytest.raises(CheckpointError, match=r"other model settings than asked \(emb_init_std 1\.0 then, 0\.25 now"):
        check_resume_request(tmp_path / "old.pt", saved, {}, {"emb_init_std": 0.25})
    new = _model_file()
    new.model_config = to_dict(from_dict(ModelConfig, saved["model"]))  # what the resumed run writes
    write_model_checkpoint(tmp_path / "new.pt", new)
    average_checkpoints([tmp_path / "old.pt", tmp_path / "new.pt"], tmp_path / "avg.pt")
    assert read_model(tmp_path / "avg.pt").model_config["emb_init_std"] == 1.0
    # A file that names the field keeps its value.
    assert read_model(_written(tmp_path)).model_config["emb_init_std"] == MODEL.emb_init_std == 0.25
