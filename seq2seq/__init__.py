"""seq2seq: LSTM encoder-decoder translation with attention, from SentencePiece to sacreBLEU."""

from typing import Any

from .config import DataConfig, DecodeConfig, ModelConfig, TrainConfig

__all__ = ["DataConfig", "DecodeConfig", "ModelConfig", "TrainConfig", "Translator"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`seq2seq.Translator` imports torch on first use only, so the NumPy runtime starts without it."""
    if name == "Translator":
        from .translation.torch_engine import Translator

        return Translator
    raise AttributeError(f"module 'seq2seq' has no attribute {name!r}")
