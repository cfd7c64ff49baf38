"""seq2seq: LSTM encoder-decoder translation with attention, from SentencePiece to sacreBLEU."""

from .config import DataConfig, DecodeConfig, ModelConfig, TrainConfig
from .translate import Translator

__all__ = ["DataConfig", "DecodeConfig", "ModelConfig", "TrainConfig", "Translator"]
__version__ = "0.1.0"
