"""One versioned, self-contained checkpoint file: atomic writes, `weights_only=True` loading.

A checkpoint holds tensors, numbers, strings and lists/dicts of them, nothing else: the model
weights, the model config, both SentencePiece models (as bytes), and for `last.pt` the
optimiser and training state needed to resume. Loading never unpickles arbitrary objects.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .base import CheckpointError

FORMAT = "seq2seq-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write `payload` to a temporary file beside `path`, flush it to disk, then rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint; anything else raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
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
        from .runtime import is_runtime_model

        if is_runtime_model(path):
            raise CheckpointError(
                f"{path}: a NumPy runtime model (from seq2seq export): use RuntimeTranslator or seq2seq translate"
            ) from None
        msg = str(err).strip().split(". ")[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({msg})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a seq2seq checkpoint (no '{FORMAT}' marker)")
    version = obj.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this seq2seq reads ({VERSION}); upgrade seq2seq"
        )
    return obj


def average_checkpoints(paths: list[str | Path], out: str | Path) -> Path:
    """Write the element-wise mean of the weights of checkpoints from one run (e.g. stepNNNNNNN.pt)."""
    if not paths:
        raise CheckpointError("no checkpoints to average")
    ckpts = [load_checkpoint(p) for p in paths]
    first = ckpts[0]
    for path, ckpt in zip(paths[1:], ckpts[1:]):
        if any(ckpt.get(k) != first.get(k) for k in ("model_config", "src_spm", "tgt_spm")):
            raise CheckpointError(f"{path}: other model config or vocabulary than {paths[0]}; average one run's files")
    mean = {
        name: (sum(c["model"][name].double() for c in ckpts) / len(ckpts)).to(tensor.dtype)
        for name, tensor in first["model"].items()
    }
    skip = {"format", "version", "optimizer", "train_state", "torch_rng", "rng", "grad_scaler"}
    payload = {k: v for k, v in first.items() if k not in skip} | {"model": mean, "averaged": [str(p) for p in paths]}
    save_checkpoint(out, payload)
    return Path(out)


def export_runtime(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the NumPy runtime's model file (runtime.py): float32 weights, model config, tokenizers.

    The shortlist lexicon stays behind: the runtime always scores the full vocabulary."""
    import json

    import numpy as np

    from .runtime import FORMAT as RUNTIME_FORMAT
    from .runtime import VERSION as RUNTIME_VERSION

    ckpt = load_checkpoint(checkpoint)
    try:
        arrays = {f"w.{name}": t.float().numpy() for name, t in ckpt["model"].items()}
        arrays |= {
            "format": np.array(RUNTIME_FORMAT),
            "version": np.array(RUNTIME_VERSION),
            "model_config": np.array(json.dumps(ckpt["model_config"])),
            "src_spm": np.frombuffer(ckpt["src_spm"], dtype=np.uint8),
            "tgt_spm": np.frombuffer(ckpt["tgt_spm"], dtype=np.uint8),
        }
    except (KeyError, AttributeError, TypeError) as err:
        raise CheckpointError(f"{checkpoint}: incomplete checkpoint, cannot export it ({err})") from None
    out = Path(out)
    if out.suffix != ".npz":
        raise CheckpointError(f"{out}: the runtime model file must end in .npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
