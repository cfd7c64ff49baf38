"""Model files in and out: `load_translator` picks the translator a model file needs, `export_model`
writes one.

An ONNX model from `seq2seq export` runs on ONNX Runtime (onnx_model.py) and an `.npz` on the NumPy
runtime (numpy_runtime.py), neither importing torch; a `.pt` checkpoint loads the torch `Translator`
(torch_engine.py). Several files make an ensemble (ensemble.py: the mean of their log-probs; they
must share vocabularies).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import check_output
from ..config import ConfigError, DecodeConfig

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .base import Translating


def export_model(checkpoint: str | Path, out: str | Path, fmt: str | None = None, quantize: str | None = None) -> Path:
    """`seq2seq export`: a checkpoint as an ONNX model (`onnx_model.py`) or a NumPy runtime `.npz`
    (`numpy_runtime.py`); `fmt` None picks npz for an `out` ending in .npz, else onnx."""
    fmt = fmt or ("npz" if Path(out).suffix == ".npz" else "onnx")
    check_output(out, inputs=[checkpoint], make_folder=True)  # before any work: a folder, or the checkpoint itself
    if fmt == "onnx":
        from .onnx_model import export_onnx

        return export_onnx(checkpoint, out, quantize)
    if quantize is not None:
        raise ConfigError(f"--quantize {quantize} applies to --format onnx only (the .npz runtime is fp32)")
    from .numpy_runtime import export_runtime

    return export_runtime(checkpoint, out)


def load_model(path: str | Path, device: str = "cpu") -> Translating:
    """The translator for one model file: ONNX Runtime's for an exported ONNX model, the NumPy
    runtime's for an `.npz`, else the torch one."""
    from .numpy_runtime import RuntimeTranslator, is_runtime_model
    from .onnx_model import OnnxTranslator, is_onnx_model

    for is_kind, kind in ((is_onnx_model, "an ONNX model"), (is_runtime_model, "the NumPy runtime")):
        if is_kind(path) and device != "cpu":
            raise ConfigError(f"{path}: {kind} runs on the CPU; drop --device {device}")
    if is_onnx_model(path):
        return OnnxTranslator.load(path)
    if is_runtime_model(path):
        return RuntimeTranslator.load(path)
    from .torch_engine import Translator

    return Translator.from_checkpoint(path, device=device)


def load_translator(
    path: str | Path | Sequence[str | Path], device: str = "cpu", cfg: DecodeConfig | None = None
) -> Translating:
    """The translator for a model file, or for a list of them (one: that file's; several: an
    `EnsembleTranslator`), checked against `cfg` (one-line errors before any input is read)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths:
        raise ConfigError("no model file given")
    translator: Translating
    if len(paths) == 1:
        translator = load_model(paths[0], device)
    else:
        from .ensemble import EnsembleTranslator

        translator = EnsembleTranslator([load_model(p, device) for p in paths], paths)
    translator.check(cfg or DecodeConfig())
    return translator
