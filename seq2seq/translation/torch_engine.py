"""The torch engine: `TorchEngine` (the model as a search engine) and `Translator` (a `.pt` checkpoint
loaded once, translated with the one search of `Translating`)."""

from __future__ import annotations

import os
from logging import DEBUG
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from ..batches import pad
from ..checkpoint import CheckpointError, check_vocab, load_weights, read_model
from ..config import DECODE_BATCH, ConfigError, DecodeConfig, ModelConfig
from ..config_dict import from_dict
from ..ids import EOS_ID
from ..machine.hardware import resolve_device, resolve_precision
from ..model import DecoderState, Memory, Seq2Seq
from ..tokenizer import Tokenizer
from .base import Translating, decode_config, memory_rows

if TYPE_CHECKING:
    from pathlib import Path


class GroupedMemory(NamedTuple):
    """The encoder memory of B sentences; the search's N rows are `group` consecutive rows per sentence
    (the model's decoder attends with such rows as one query block per sentence)."""

    memory: Memory
    group: int


class TorchEngine:
    """The torch model as a search engine (search.py): encode a batch, step, select rows.

    Runs under inference mode and the resolved precision's autocast. A beam's rows share their
    sentence's memory row (`GroupedMemory`), and the search gets each row's best candidates
    (`candidates`: a top-k on the device) instead of the (N, V) log-probs, which then never leave
    the device; `step` still gives them all (the ensemble's mean needs them).
    """

    batch_size = DECODE_BATCH["torch"]  # sentences per batch unless DecodeConfig.batch_size says
    supports_candidates = True

    def __init__(self, model: Seq2Seq, cfg: DecodeConfig) -> None:
        self.model, self.cfg = model.eval(), cfg
        self.device = next(model.parameters()).device
        self.vocab = model.out.out_features
        self.precision = resolve_precision(cfg.precision, str(self.device), DEBUG)  # HardwareError before any work

    @torch.inference_mode()
    def encode(self, src_ids: list[list[int]]) -> tuple[GroupedMemory, DecoderState]:
        lens = torch.tensor([len(s) for s in src_ids], device=self.device)
        src = pad(src_ids).to(self.device)  # (B, S), EOS already appended
        with self.precision.autocast(self.device.type):
            memory, state = self.model.encode(src, lens)
        return GroupedMemory(memory, 1), state

    def _step(
        self, prev_ids: np.ndarray, state: DecoderState, memory: GroupedMemory | Memory
    ) -> tuple[torch.Tensor, DecoderState, np.ndarray]:
        prev = torch.from_numpy(np.ascontiguousarray(prev_ids)).to(self.device)
        with self.precision.autocast(self.device.type):
            log_probs, state, weights = self.model.step(prev, state, _memory(memory))
        return log_probs, state, weights.float().cpu().numpy()

    @torch.inference_mode()
    def step(
        self, prev_ids: np.ndarray, state: DecoderState, memory: GroupedMemory | Memory
    ) -> tuple[Any, DecoderState, Any]:
        log_probs, state, weights = self._step(prev_ids, state, memory)
        return log_probs.float().cpu().numpy(), state, weights

    @torch.inference_mode()
    def candidates(
        self, prev_ids: np.ndarray, state: DecoderState, memory: GroupedMemory | Memory, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, DecoderState, np.ndarray]:
        """One step as `k` candidates per row (search.py): their log-probs (N, k), best first, their
        ids (N, k), EOS's log-prob (N,), the new state and the attention."""
        log_probs, state, weights = self._step(prev_ids, state, memory)
        values, ids = log_probs.topk(k, dim=1)
        eos = log_probs[:, EOS_ID]
        return values.float().cpu().numpy(), ids.cpu().numpy(), eos.float().cpu().numpy(), state, weights

    def select(self, obj: GroupedMemory | Memory | DecoderState, rows: np.ndarray) -> Any:
        if isinstance(obj, GroupedMemory):  # a memory row per sentence where the rows allow (base.memory_rows)
            keep, size = memory_rows(rows, obj.group, obj.memory.states.size(0))
            if keep is None:  # every sentence, in order: no copy
                return obj._replace(group=size)
            return GroupedMemory(obj.memory.select(self._index(keep)), size)
        return obj.select(self._index(rows))

    def _index(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64)).to(self.device)

    def footprint(self, src_len: int) -> tuple[int, int]:
        """The vocabulary and the bytes per searched row (search_budget.check_search; an upper bound now that
        beams share their sentence's memory row)."""
        return self.vocab, self.model.cfg.decode_row_bytes(src_len, self.vocab)


def _memory(memory: GroupedMemory | Memory) -> Memory:
    return memory.memory if isinstance(memory, GroupedMemory) else memory


class Translator(Translating):
    """A trained model with its tokenizers, ready to translate sentences (`translate` in base.py)."""

    engine = "torch"

    def __init__(self, model: Seq2Seq, src_tok: Tokenizer, tgt_tok: Tokenizer) -> None:
        self.model, self.src_tok, self.tgt_tok = model.eval(), src_tok, tgt_tok

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> Translator:
        """Load a checkpoint written by `seq2seq train` (best.pt, last.pt, or an averaged one)."""
        from .onnx_model import refuse_onnx_model

        if not isinstance(path, (str, os.PathLike)):  # None: pathlib's TypeError named no argument
            raise TypeError(f"path must be a checkpoint file's path, got {type(path).__name__}")
        refuse_onnx_model(path)
        saved = read_model(path)
        check_vocab(path, saved)
        try:
            src_tok, tgt_tok = Tokenizer(saved.src_spm), Tokenizer(saved.tgt_spm)
            model = Seq2Seq(from_dict(ModelConfig, saved.model_config), len(src_tok), len(tgt_tok))
            load_weights(path, model, saved.state_dict)  # a misshapen tensor: one line naming it
        except CheckpointError:  # already one line naming the file (load_weights)
            raise
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            raise CheckpointError(
                f"{path}: incomplete or inconsistent checkpoint: {str(err).splitlines()[0]}"
            ) from None
        translator = cls(model.to(resolve_device(str(device))), src_tok, tgt_tok)
        translator.src_lang, translator.tgt_lang = saved.src_lang, saved.tgt_lang
        return translator

    @classmethod
    def from_pretrained(
        cls, repo: str, device: str = "cpu", *, revision: str | None = None, filename: str | None = None
    ) -> Translating:
        """The model of a Hugging Face Hub repository (`"ORG/NAME"`, or an `hf://ORG/NAME[@REVISION][/FILE]`
        path), downloaded through huggingface_hub's cache (translation/hub.py); also a local folder laid
        out as one (`seq2seq push --out`). What `load_translator` gives for that file: this class for a
        `.pt` checkpoint, an `OnnxTranslator` for an exported ONNX model (which translates without torch
        through `load_translator("hf://ORG/NAME")`)."""
        from .hub import pretrained_file
        from .onnx_model import OnnxTranslator, is_onnx_model

        path = pretrained_file(repo, revision, filename)
        if is_onnx_model(path):  # as loading.load_model (which imports this module, so cannot be imported here)
            if device not in ("cpu", "auto"):
                raise ConfigError(f"{path}: an ONNX model runs on the CPU; drop device={device!r}")
            return OnnxTranslator.load(path)
        return cls.from_checkpoint(path, device=device)

    def _where(self, cfg: DecodeConfig | None) -> dict[str, Any]:
        device = str(next(self.model.parameters()).device)
        return {"device": device, "precision": resolve_precision(decode_config(cfg, {}).precision, device, DEBUG).name}

    def check(self, cfg: DecodeConfig | None) -> None:
        """A precision this machine cannot run or a beam wider than the target vocabulary: one-line errors."""
        cfg = decode_config(cfg, {})  # not a DecodeConfig: a TypeError naming cfg
        resolve_precision(cfg.precision, str(next(self.model.parameters()).device), DEBUG)
        cfg.check_vocab(len(self.tgt_tok))

    def search_engine(self, cfg: DecodeConfig) -> TorchEngine:
        """The model as a search engine for `cfg` (its precision)."""
        return TorchEngine(self.model, cfg)
