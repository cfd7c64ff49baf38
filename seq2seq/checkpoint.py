"""One versioned, self-contained checkpoint file: atomic writes, `weights_only=True` loading.

A checkpoint holds tensors, numbers, strings and lists/dicts of them, nothing else: the model
weights, the model config, both SentencePiece models (as bytes), and for `last.pt` the
optimiser and training state needed to resume. Loading never unpickles arbitrary objects.

This module owns the format: the keys inside the file are written and read only here, by
`write_model_checkpoint` from a `ModelFile` (and a `ResumeState` for last.pt) and by `read_model`,
`read_resume` and `resume_configs`; everything else works with those types.

Integrity: `save_checkpoint` stores the SHA-256 of the weights (`CHECKSUM_KEY`: every tensor of the
model, by sorted name: its name, dtype, shape and bytes) and of everything else in the file
(`CONTENTS_KEY`: configs, SentencePiece models, optimiser, training and RNG states), and
`load_checkpoint` recomputes both (torch checks no CRCs: flipped bytes inside a tensor would load) and
refuses non-finite model weights. Files written before a checksum existed have none and load without
that check, apart from the finite-weights check (docs/training.md, "Checkpoints"). Files written while
decoding had a vocabulary shortlist also hold its `lexicon` table: their checksum covers it, so it is
checked like the weights, then dropped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write, check_output, refuse_run_checkpoint
from .errors import CheckpointError

FORMAT = "seq2seq-checkpoint"
VERSION = 1
CHECKSUM_KEY = "weights_sha256"  # hex SHA-256 of the weights (`weights_checksum`); absent in older files
CONTENTS_KEY = "contents_sha256"  # hex SHA-256 of everything else (`contents_checksum`); absent in older files
_HASHED = ("model", "lexicon")  # the payload's tensor tables that the checksum covers (lexicon: older files)
_UNHASHED = {"format", "version", CHECKSUM_KEY, CONTENTS_KEY, *_HASHED}  # what the contents checksum leaves out
_RETIRED = ("lexicon",)  # keys older files hold and nothing reads any more: checked, then dropped on load


def weights_checksum(payload: dict[str, Any]) -> str:
    """SHA-256 over the tensors of the payload's "model" table (and of a "lexicon" table, which files
    written while the vocabulary shortlist existed hold), in sorted order of (table, name): each
    tensor's name, dtype and shape, then its bytes (any device, any dtype)."""
    digest = hashlib.sha256()
    for table in _HASHED:
        tensors = payload.get(table)
        if not isinstance(tensors, dict):
            continue
        for name in sorted(tensors):
            t = tensors[name]
            if not isinstance(t, torch.Tensor):
                continue
            digest.update(f"{table}/{name}/{t.dtype}/{tuple(t.shape)}\n".encode())
            digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _digest(digest: Any, value: Any) -> None:
    """Feed `value` (what a weights_only file holds: tensors, numbers, strings, bytes, None, and lists and
    dicts of them) into `digest`, each part tagged with its kind and length, dict items in sorted key order."""
    if isinstance(value, torch.Tensor):
        digest.update(f"T{value.dtype}/{tuple(value.shape)}\n".encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}\n".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
            _digest(digest, key)
            _digest(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}\n".encode())
        for item in value:
            _digest(digest, item)
    elif isinstance(value, bytes):
        digest.update(f"B{len(value)}\n".encode() + value)
    elif isinstance(value, float):
        digest.update(f"F{value.hex()}\n".encode())
    else:  # str, int, bool, None (and anything else by its repr)
        text = repr(value)
        digest.update(f"{type(value).__name__}{len(text)}\n{text}".encode())


def contents_checksum(payload: dict[str, Any]) -> str:
    """SHA-256 over everything in the payload but the weights (which `weights_checksum` covers): configs,
    SentencePiece models, and in last.pt the optimiser, training and RNG states."""
    digest = hashlib.sha256()
    _digest(digest, {k: v for k, v in payload.items() if k not in _UNHASHED})
    return digest.hexdigest()


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write `payload` with its checksums (weights, and everything else) to a temporary file beside `path`,
    flush it to disk, then rename."""
    payload = {k: v for k, v in payload.items() if k not in (CHECKSUM_KEY, CONTENTS_KEY)}  # always its own
    sums = {CHECKSUM_KEY: weights_checksum(payload), CONTENTS_KEY: contents_checksum(payload)}
    try:
        with atomic_write(path, "wb") as f:  # .NAME.PID.tmp beside it, flushed, renamed (RunFiles.truncate clears it)
            torch.save({"format": FORMAT, "version": VERSION, **sums, **payload}, f)
    except RuntimeError as err:  # torch's zip writer wraps the file's OSError (a full disk) in its own error
        cause = err.__cause__ or err.__context__
        if isinstance(cause, OSError):
            raise OSError(cause.errno, cause.strerror, str(path)) from None
        raise


# An exported ONNX model is recognised where a model file is read (translation/onnx_model.is_onnx_model); an
# old .npz of the removed NumPy runtime, which no module reads any more, here: a zip holding this member.
REMOVED_NPZ_MARKER = "format.npy"


def _zip_members(path: Path) -> list[str] | None:
    """The member names of a whole zip file; None where it is not one (or is cut short)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (OSError, ValueError, EOFError, RuntimeError, zipfile.BadZipFile):  # ValueError: undecodable names
        return None


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    """What a file torch.load could not read is: an old NumPy-runtime .npz, a whole zip without torch's records
    (an exported ONNX model, from Python: the CLI's loaders name it before), or a truncated or corrupt one."""
    members = _zip_members(path)
    if members is not None and REMOVED_NPZ_MARKER in members:
        return CheckpointError(f"{path}: a removed NumPy runtime .npz (from seq2seq export), no checkpoint: export "
                               "ONNX instead")  # fmt: skip
    if members is not None and not any(m.endswith("data.pkl") for m in members):
        return CheckpointError(f"{path}: a zip archive but no torch checkpoint (an exported ONNX model? seq2seq "
                               "translate and load_translator take those)")  # fmt: skip
    msg = str(err).strip().split(". ")[0] if str(err).strip() else type(err).__name__
    return CheckpointError(f"{path}: truncated or corrupt checkpoint ({msg})")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint; anything else raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        folder = f"is a folder, not a checkpoint file: name the file in it (e.g. {path}/best.pt)"
        other = "not a regular file (a device or a pipe)" if path.exists() else "no such checkpoint file"
        raise CheckpointError(f"{path}: {folder if path.is_dir() else other}")
    with open(path, "rb") as f:
        if f.read(4)[:1] not in (b"P", b"\x80"):  # a torch zip archive or a legacy pickle stream
            raise CheckpointError(f"{path}: not a checkpoint file (not a torch archive)")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        culprit = next((line.strip() for line in str(err).splitlines() if "GLOBAL" in line), "")
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain values, so loading it "
            f"could run code{': ' + culprit if culprit else ''}"
        ) from None
    except Exception as err:  # truncated zip, damaged records, ...
        raise _unreadable(path, err) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a seq2seq checkpoint (no '{FORMAT}' marker)")
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: damaged checkpoint: its format version is {version!r}, not a whole number >= 1")
    if version > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this seq2seq reads ({VERSION}); upgrade seq2seq"
        )
    _check_weights(path, obj)
    for key in _RETIRED:
        obj.pop(key, None)
    return obj


def _check_weights(path: Path, obj: dict[str, Any]) -> None:
    """The stored checksum (popped from `obj`) must match the weights, and the model weights must be finite."""
    stored, contents = obj.pop(CHECKSUM_KEY, None), obj.pop(CONTENTS_KEY, None)
    if stored is not None and stored != weights_checksum(obj):
        raise CheckpointError(f"{path}: checksum mismatch: its weights are not the ones it was saved with "
                              "(a damaged or altered file); use another checkpoint")  # fmt: skip
    if contents is not None and contents != contents_checksum(obj):
        raise CheckpointError(f"{path}: checksum mismatch: its settings, tokenizers or training state are not the ones "
                              "it was saved with (a damaged or altered file); use another checkpoint")  # fmt: skip
    weights = obj.get("model")
    for name, t in weights.items() if isinstance(weights, dict) else ():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"{path}: non-finite weights: {name} has {bad} NaN or infinite values "
                                  f"of {t.numel()}; use an earlier checkpoint")  # fmt: skip


@dataclass
class ModelFile:
    """What every checkpoint holds: a trained model with its tokenizers and the configs it was trained with."""

    model_config: dict[str, Any]  # config.ModelConfig as a dict
    state_dict: dict[str, torch.Tensor]  # the model's weights
    src_spm: bytes  # SentencePiece model protos
    tgt_spm: bytes
    src_lang: str
    tgt_lang: str
    data_config: dict[str, Any]
    train_config: dict[str, Any]
    step: int  # updates trained
    averaged: list[str] | None = None  # the files whose weights were averaged into this one


@dataclass
class ResumeState:
    """What last.pt holds besides its ModelFile, to continue the run exactly."""

    optimizer: dict[str, Any]  # optimizer.state_dict()
    train_state: dict[str, Any]  # progress.TrainState as a dict
    rng: list[dict[str, torch.Tensor]]  # per rank, distributed.rng_state()
    grad_scaler: dict[str, Any] | None = None  # fp16 loss scaling state


# The keys of the file, in the order they are written (the format: one place to change it).
_MODEL_KEYS: dict[str, tuple[str, type]] = {  # key -> (ModelFile field, its type)
    "model_config": ("model_config", dict),
    "model": ("state_dict", dict),
    "src_spm": ("src_spm", bytes),
    "tgt_spm": ("tgt_spm", bytes),
    "src_lang": ("src_lang", str),
    "tgt_lang": ("tgt_lang", str),
    "train_config": ("train_config", dict),
    "data_config": ("data_config", dict),
    "step": ("step", int),
    "averaged": ("averaged", list),
}
_RESUME_KEYS: dict[str, tuple[str, type]] = {  # key -> (ResumeState field, its type)
    "optimizer": ("optimizer", dict),
    "train_state": ("train_state", dict),
    "rng": ("rng", list),
    "grad_scaler": ("grad_scaler", dict),
}
_OPTIONAL = {"averaged", "grad_scaler"}  # written only where they apply
# Model config fields added after files were written without them: what such a file was trained with
# (not today's default). Filled in on reading, so a resumed run, its new files and `average` agree.
_MODEL_CONFIG_BEFORE = {"emb_init_std": 1.0}  # N(0, 1) embeddings until a07eb97 (2026-12-05)
_TRAIN_CONFIG_BEFORE = {"shape_buckets": "off"}  # batches of any shape until shape buckets (2026-12-05)


def _payload(model: ModelFile, resume: ResumeState | None) -> dict[str, Any]:
    """The file's dict (without the format marker); optional parts that are None are left out."""
    parts = [(model, _MODEL_KEYS)] + ([(resume, _RESUME_KEYS)] if resume is not None else [])
    payload = {}
    for obj, keys in parts:
        for key, (name, _) in keys.items():
            value = getattr(obj, name)
            if value is not None or key not in _OPTIONAL:
                payload[key] = value
    return payload


def _fields(path: Path, ckpt: dict[str, Any], keys: dict[str, tuple[str, type]]) -> dict[str, Any]:
    """The dataclass fields stored under `keys`, checked; a missing or mistyped one raises CheckpointError."""
    values = {}
    for key, (name, kind) in keys.items():
        value = ckpt.get(key)
        if value is None and key in _OPTIONAL:
            values[name] = None
            continue
        if key not in ckpt:
            problem = f"no '{key}'"
        elif not isinstance(value, kind) or isinstance(value, bool):
            problem = f"'{key}' is {type(value).__name__}, not {kind.__name__}"
        else:
            values[name] = value
            continue
        raise CheckpointError(f"{path}: incomplete or inconsistent checkpoint: {problem}")
    return values


def _model_file(path: Path, ckpt: dict[str, Any]) -> ModelFile:
    model = ModelFile(**_fields(path, ckpt, _MODEL_KEYS))
    missing = {key: value for key, value in _MODEL_CONFIG_BEFORE.items() if key not in model.model_config}
    model.model_config = {**model.model_config, **missing}
    missing = {key: value for key, value in _TRAIN_CONFIG_BEFORE.items() if key not in model.train_config}
    model.train_config = {**model.train_config, **missing}
    return model


def write_model_checkpoint(path: str | Path, model: ModelFile, resume: ResumeState | None = None) -> None:
    """Write `model` (and with `resume`, everything needed to continue training) to `path`, atomically."""
    save_checkpoint(path, _payload(model, resume))


def read_model(path: str | Path) -> ModelFile:
    """The model part of any checkpoint (best.pt, last.pt, stepNNNNNNN.pt, an averaged one)."""
    path = Path(path)
    return _model_file(path, load_checkpoint(path))


def check_vocab(path: str | Path, model: ModelFile) -> None:
    """A model about to be used (translation, export) must have SentencePiece models that fit its
    embeddings: else one CheckpointError naming the side and both sizes."""
    from .tokenizer import Tokenizer

    for side, spm_bytes, key in (("source", model.src_spm, "encoder.embed.weight"),
                                 ("target", model.tgt_spm, "decoder.embed.weight")):  # fmt: skip
        weight = model.state_dict.get(key)
        try:
            pieces = len(Tokenizer(spm_bytes))
        except (RuntimeError, OSError, ValueError, TypeError):
            raise CheckpointError(f"{path}: its {side} SentencePiece model does not load") from None
        if weight is None or weight.shape[0] != pieces:
            rows = "no" if weight is None else weight.shape[0]
            raise CheckpointError(f"{path}: inconsistent checkpoint: its {side} SentencePiece model has {pieces} "
                                  f"pieces but {key} has {rows} rows")  # fmt: skip


def load_weights(path: str | Path, module: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Load a checkpoint's `weights` into `module`; a tensor of another shape than the model config
    gives, or a missing or unexpected one, is one CheckpointError naming the tensor (and both shapes)."""
    expected = module.state_dict()
    for name, tensor in weights.items():
        want = expected.get(name)
        if want is not None and (not isinstance(tensor, torch.Tensor) or tensor.shape != want.shape):
            have = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise CheckpointError(f"{path}: inconsistent checkpoint: {name} has shape {have} but its model config "
                                  f"needs {tuple(want.shape)}")  # fmt: skip
    missing, unexpected = [n for n in expected if n not in weights], [n for n in weights if n not in expected]
    if missing or unexpected:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(unexpected)}"] if unexpected else [])  # fmt: skip
        raise CheckpointError(f"{path}: inconsistent checkpoint: weights do not fit its model config "
                              f"({'; '.join(parts)})")  # fmt: skip
    for names in _shared(expected):  # one parameter under two names (tied embeddings): the file's copies must agree
        if not all(torch.equal(weights[names[0]], weights[n]) for n in names[1:]):
            raise CheckpointError(f"{path}: inconsistent checkpoint: {' and '.join(names)} are one tied weight in "
                                  "its model config but differ in the file")  # fmt: skip
    module.load_state_dict(weights)


def _shared(tensors: dict[str, torch.Tensor]) -> list[list[str]]:
    """Names of a state dict that share one tensor's storage, in groups of two or more."""
    groups: dict[tuple[int, int], list[str]] = {}
    for name, t in tensors.items():
        groups.setdefault((t.untyped_storage().data_ptr(), t.storage_offset()), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def read_resume(path: str | Path) -> tuple[ModelFile, ResumeState]:
    """A run's last.pt: its model and the state to resume training from."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path.parent}: nothing to resume (no {path.name})")
    ckpt = load_checkpoint(path)
    if "train_state" not in ckpt:
        raise CheckpointError(f"{path}: holds no training state to resume from")
    return _model_file(path, ckpt), ResumeState(**_fields(path, ckpt, _RESUME_KEYS))


def resume_configs(path: str | Path) -> dict[str, dict[str, Any]]:
    """The {"data", "model", "train"} configs (dicts) a run was trained with, from its last.pt itself."""
    model, _ = read_resume(path)
    return {"data": model.data_config, "model": model.model_config, "train": model.train_config}


def average_checkpoints(paths: list[str | Path], out: str | Path, names: list[str] | None = None) -> Path:
    """Write the element-wise mean of the weights of checkpoints from one run (e.g. stepNNNNNNN.pt): at
    least two different files, of one model config, vocabulary and seed (another seed starts from other
    weights: their mean is no model). Weights tied in the files (one tensor under two names) stay tied.
    `names`: how the files are recorded in the result (default: `paths`)."""
    if len(paths) < 2:
        raise CheckpointError(f"averaging needs at least two checkpoints of one run, got {len(paths)}")
    check_output(out, inputs=paths, regular=True)  # before reading: no folder, a folder, a pipe, a checkpoint given
    refuse_run_checkpoint(out, "the average", "average.pt")
    names = names or [str(p) for p in paths]
    models = [read_model(p) for p in paths]  # a missing or damaged file: one line naming it
    for i, path in enumerate(paths):
        twice = next((j for j in range(i) if os.path.samefile(paths[j], path)), None)
        if twice is not None:
            raise CheckpointError(f"{names[i]}: the same file as {names[twice]}; average different checkpoints")
    first = models[0]
    shapes = {n: tuple(t.shape) for n, t in first.state_dict.items()}
    for name, model in zip(names[1:], models[1:]):
        if (model.model_config, model.src_spm, model.tgt_spm) != (first.model_config, first.src_spm, first.tgt_spm):
            raise CheckpointError(f"{name}: other model config or vocabulary than {names[0]}; average one run's files")
        if {n: tuple(getattr(t, "shape", ())) for n, t in model.state_dict.items()} != shapes:
            raise CheckpointError(f"{name}: its weights (names or shapes) differ from those of {names[0]}: "
                                  "a damaged file, or not one run's")  # fmt: skip
        if model.train_config.get("seed") != first.train_config.get("seed"):
            raise CheckpointError(
                f"{name}: trained with seed {model.train_config.get('seed')}, {names[0]} with seed "
                f"{first.train_config.get('seed')}: runs from other initial weights do not average into a model; "
                "average one run's files (or ensemble the runs: translate --checkpoint A B)"
            )
    mean: dict[str, torch.Tensor] = {}
    done: dict[tuple, torch.Tensor] = {}  # a tensor's storage, offset, shape -> its mean (tied weights: once)
    for name, tensor in first.state_dict.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.stride())
        if key not in done:
            done[key] = (sum(m.state_dict[name].double() for m in models) / len(models)).to(tensor.dtype)
        mean[name] = done[key]
    averaged = dataclasses.replace(first, state_dict=mean, averaged=names)
    write_model_checkpoint(out, averaged)  # weights only: no resume state
    return Path(out)
