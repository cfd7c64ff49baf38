"""The exported graphs as a search engine (search.py): `OnnxEngine` runs the encoder and decoder-step
graphs of a model file (onnx_model.py owns the file and its format) in ONNX Runtime sessions, over NumPy
arrays. Imports numpy and onnxruntime only, never torch."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..config import DECODE_BATCH, ConfigError, ModelConfig
from ..config_dict import from_dict
from ..ids import PAD_ID
from ..machine.hardware import usable_cores
from .base import memory_rows

if TYPE_CHECKING:
    from collections.abc import Iterator

CANDIDATES = ("cand_values", "cand_ids", "eos_log_prob")  # the step graph's candidate outputs (version >= 2)
EXTRA = "pip install 'seq2seq-nmt[onnx]' (onnx and onnxruntime)"


def state_names(cfg: ModelConfig) -> list[str]:
    """The recurrent state's graph inputs: h (and c for LSTM), and the input-feeding vector."""
    return ["h", *(["c"] if cfg.cell == "lstm" else []), *(["feed"] if cfg.input_feeding else [])]


def import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(f"ONNX models need ONNX Runtime: {EXTRA}") from None
    return onnxruntime


class InconsistentModel(ValueError):
    """The parts of a model file disagree (graphs, manifest, tokenizers); the message says how."""


class OnnxMemory(NamedTuple):
    """The encoder memory of B sentences; the search's N rows are `group` consecutive rows per sentence."""

    states: np.ndarray  # (B, S, 2He)
    keys: np.ndarray  # (B, S, K)
    mask: np.ndarray  # (B, S) bool
    group: int


class OnnxState(NamedTuple):
    """The decoder's recurrent state: (L, N, Hd) arrays, then (N, E) for input feeding."""

    arrays: tuple[np.ndarray, ...]
    feed_last: bool  # the last array is the input-feeding vector (rows on axis 0)


class OnnxEngine:
    """The exported graphs as a search engine (search.py)."""

    vocab = 0  # the target vocabulary, for `footprint` (OnnxTranslator sets it; 0: unknown)
    run_options: Any = None  # ONNX Runtime's RunOptions for every run (`probing`'s: no error log)
    batch_size = DECODE_BATCH["onnx"]  # sentences per batch unless DecodeConfig.batch_size says

    def __init__(self, encoder: bytes, step: bytes, manifest: dict[str, Any], threads: int = 0) -> None:
        """Sessions for both graphs (`threads`: ONNX Runtime's intra-op threads, 0: one per core this process
        may run on, at most 8); `manifest` gives the model config and the step graph's input names."""
        threads = threads or min(usable_cores(), 8)  # its affinity (taskset, a container's cpuset), not the machine's
        self.encoder, self.step_graph = _session(encoder, threads), _session(step, threads)
        self.cfg = from_dict(ModelConfig, manifest["model_config"])
        self.step_inputs = [name for name in manifest["step_inputs"] if name != "k"]
        self.takes_k = "k" in {i.name for i in self.step_graph.get_inputs()}  # files of version >= 2
        self.feed = self.cfg.input_feeding
        outputs = manifest["step_outputs"]
        state_out = [name for name in outputs if name.endswith("_out")]
        self.full_outputs = ["log_probs", *state_out, "attention"]
        self.supports_candidates = CANDIDATES[0] in outputs  # search.py asks for candidates (version >= 2)
        self.candidate_outputs = [*CANDIDATES, *state_out, "attention"]

    @contextmanager
    def probing(self) -> Iterator[None]:
        """Runs whose failure is the answer (the checks of a model file as it loads, onnx_model.py): no error
        log of ONNX Runtime's for them."""
        quiet = import_ort().RunOptions()
        quiet.log_severity_level = 4
        self.run_options = quiet
        try:
            yield
        finally:
            self.run_options = None

    def encode(self, src_ids: list[list[int]]) -> tuple[OnnxMemory, OnnxState]:
        lens = np.array([len(s) for s in src_ids], dtype=np.int64)
        src = np.full((len(src_ids), int(lens.max())), PAD_ID, dtype=np.int64)
        for i, ids in enumerate(src_ids):
            src[i, : len(ids)] = ids
        states, keys, mask, *rnn = self.encoder.run(None, {"src_ids": src, "src_lens": lens}, self.run_options)
        feed = [np.zeros((len(src_ids), self.cfg.emb_size), np.float32)] if self.feed else []
        return OnnxMemory(states, keys, mask, 1), OnnxState((*rnn, *feed), self.feed)

    def _inputs(self, prev_ids: np.ndarray, state: OnnxState, memory: OnnxMemory) -> dict[str, np.ndarray]:
        values = [
            np.ascontiguousarray(prev_ids, dtype=np.int64),
            *state.arrays,
            memory.states,
            memory.keys,
            memory.mask,
        ]
        return dict(zip(self.step_inputs, values)) | ({"k": np.ones(1, np.int64)} if self.takes_k else {})

    def step(self, prev_ids: np.ndarray, state: OnnxState, memory: OnnxMemory) -> tuple[Any, OnnxState, Any]:
        inputs = self._inputs(prev_ids, state, memory)
        log_probs, *new, attention = self.step_graph.run(self.full_outputs, inputs, self.run_options)
        return log_probs, OnnxState(tuple(new), state.feed_last), attention

    def candidates(
        self, prev_ids: np.ndarray, state: OnnxState, memory: OnnxMemory, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, OnnxState, Any]:
        """One step as `k` candidates per row (search.py): their log-probs (N, k), best first, their
        ids (N, k), EOS's log-prob (N,), the new state and the attention."""
        inputs = self._inputs(prev_ids, state, memory) | {"k": np.array([k], np.int64)}
        values, ids, eos, *new, attention = self.step_graph.run(self.candidate_outputs, inputs)
        return values, ids, eos, OnnxState(tuple(new), state.feed_last), attention

    def footprint(self, src_len: int) -> tuple[int, int]:
        """The vocabulary and the bytes per searched row (search_budget.check_search; an upper bound here,
        where beams share their sentence's memory row)."""
        return self.vocab, self.cfg.decode_row_bytes(src_len, self.vocab)

    def select(self, obj: OnnxMemory | OnnxState, rows: np.ndarray) -> OnnxMemory | OnnxState:
        if isinstance(obj, OnnxState):
            last = len(obj.arrays) - 1 if obj.feed_last else len(obj.arrays)
            return OnnxState(
                tuple(a[rows] if i == last else a[:, rows] for i, a in enumerate(obj.arrays)), obj.feed_last
            )
        keep, size = memory_rows(rows, obj.group, len(obj.states))
        if keep is None:  # every sentence, in order: no copy
            return obj._replace(group=size)
        return OnnxMemory(obj.states[keep], obj.keys[keep], obj.mask[keep], size)


def _session(graph: bytes, threads: int, profile_prefix: str | None = None) -> Any:
    """An ONNX Runtime session on the CPU (`profile_prefix`: its profiler on, for devtools/decode_profile.py)."""
    ort = import_ort()
    options = ort.SessionOptions()
    if profile_prefix is not None:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # spinning threads fight the search
    options.log_severity_level = 3
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
