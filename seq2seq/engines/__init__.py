"""Other engines for the same model and search: the NumPy runtime (translation without torch), ensembles.

`load_translator` picks the engine a model file needs: an `.npz` from `seq2seq export` runs on the
NumPy runtime and never imports torch; a `.pt` checkpoint loads the torch `Translator`. Several
files make an ensemble (`ensemble.py`: the mean of their log-probs; they must share vocabularies).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ConfigError, DecodeConfig

if TYPE_CHECKING:
    from ..text import Translating


def load_model(path: str | Path, device: str = "cpu") -> Translating:
    """The translator for one model file: the NumPy runtime's for an `.npz`, else the torch one."""
    from .numpy_runtime import RuntimeTranslator, is_runtime_model

    if is_runtime_model(path):
        if device != "cpu":
            raise ConfigError(f"{path}: the NumPy runtime runs on the CPU; drop --device {device}")
        return RuntimeTranslator.load(path)
    from ..translate import Translator

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

        translator = EnsembleTranslator.load(paths, device)
    translator.check(cfg or DecodeConfig())
    return translator
