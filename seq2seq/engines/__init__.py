"""Other engines for the same model and search: the NumPy runtime (translation without torch).

`load_translator` picks the engine a model file needs: an `.npz` from `seq2seq export` runs on the
NumPy runtime and never imports torch; a `.pt` checkpoint loads the torch `Translator`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ConfigError, DecodeConfig

if TYPE_CHECKING:
    from ..text import Translating


def load_translator(path: str | Path, device: str = "cpu", cfg: DecodeConfig | None = None) -> Translating:
    """The translator for a model file, checked against `cfg` (one-line errors before any input is read)."""
    from .numpy_runtime import RuntimeTranslator, is_runtime_model

    translator: Translating
    if is_runtime_model(path):
        if device != "cpu":
            raise ConfigError(f"{path}: the NumPy runtime runs on the CPU; drop --device {device}")
        translator = RuntimeTranslator.load(path)
    else:
        from ..translate import Translator

        translator = Translator.from_checkpoint(path, device=device)
    translator.check(cfg or DecodeConfig())
    return translator
