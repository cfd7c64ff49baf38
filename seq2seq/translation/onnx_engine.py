"""The exported graphs as a search engine (search.py): `OnnxEngine` runs the encoder and decoder-step
graphs of a model file (onnx_model.py owns the file and its format) in ONNX Runtime sessions, over NumPy
arrays. Imports numpy and onnxruntime only, never torch."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..config import DECODE_BATCH, ConfigError, ModelConfig
from ..config_dict import from_dict
from ..ids import PAD_ID
from ..machine.hardware import usable_cores
from .base import memory_rows

MANIFEST_NAME = "seq2seq-onnx.json"  # onnx_model.MANIFEST (that module imports this one)
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


def _names(names: Any) -> str:
    return ", ".join(map(str, names)) if isinstance(names, list) else repr(names)


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
    run_options: Any = None  # ONNX Runtime's RunOptions for every run (check_vocab's: no error log)
    batch_size = DECODE_BATCH["onnx"]  # sentences per batch unless DecodeConfig.batch_size says

    def __init__(self, encoder: bytes, step: bytes, manifest: dict[str, Any], threads: int = 0) -> None:
        """Sessions for both graphs (`threads`: ONNX Runtime's intra-op threads, 0: one per core this process
        may run on, at most 8); `manifest` gives the model config and the step graph's input names."""
        threads = threads or min(usable_cores(), 8)  # its affinity (taskset, a container's cpuset), not the machine's
        self.encoder, self.step_graph = _session(encoder, threads), _session(step, threads)
        self.cfg = from_dict(ModelConfig, manifest["model_config"])
        self._check_names(manifest)
        self.step_inputs = [name for name in manifest["step_inputs"] if name != "k"]
        self.takes_k = "k" in {i.name for i in self.step_graph.get_inputs()}  # files of version >= 2
        self.feed = self.cfg.input_feeding
        outputs = manifest["step_outputs"]
        state_out = [name for name in outputs if name.endswith("_out")]
        self.full_outputs = ["log_probs", *state_out, "attention"]
        self.supports_candidates = CANDIDATES[0] in outputs  # search.py asks for candidates (version >= 2)
        self.candidate_outputs = [*CANDIDATES, *state_out, "attention"]

    def _check_names(self, manifest: dict[str, Any]) -> None:
        """The graphs' inputs and outputs are the ones the model config makes and the manifest names, in the
        order the engine passes and reads them (values go by position): else InconsistentModel."""
        states = state_names(self.cfg)
        rnn = [s for s in states if s != "feed"]
        graphs = {
            "encoder_inputs": ("encoder.onnx", [i.name for i in self.encoder.get_inputs()], ["src_ids", "src_lens"]),
            "encoder_outputs": ("encoder.onnx", [o.name for o in self.encoder.get_outputs()],
                                ["states", "keys", "mask", *rnn]),
            "step_inputs": ("decoder_step.onnx", [i.name for i in self.step_graph.get_inputs()],
                            ["prev_ids", *states, "states", "keys", "mask"]),
            "step_outputs": ("decoder_step.onnx", [o.name for o in self.step_graph.get_outputs()],
                             ["log_probs", *(f"{s}_out" for s in states), "attention"]),
        }  # fmt: skip
        for key, (graph, names, expected) in graphs.items():
            listed = manifest[key] if key.startswith("step") else manifest.get(key, names)  # step_*: required
            extra = ["k"] if key == "step_inputs" else list(CANDIDATES) if key == "step_outputs" else []
            # a manifest may leave out the step graph's candidate input and outputs (its search then takes the
            # log-probs, as for a version 1 file); the names it lists are the graph's, in the graph's order
            if listed not in (names, [n for n in names if n not in extra]):
                raise InconsistentModel(f"its {MANIFEST_NAME} lists {key} {_names(listed)}, its {graph} has "
                                        f"{_names(names)}")  # fmt: skip
            if names not in (expected, expected + extra):
                config = f"{self.cfg.cell}, input feeding {self.cfg.input_feeding}"
                raise InconsistentModel(f"its {graph} has {key} {_names(names)}, its model config ({config}) makes "
                                        f"{_names(expected)}")  # fmt: skip

    def check_vocab(self, src_vocab: int, tgt_vocab: int) -> None:
        """The graphs run on one sentence, and their embeddings and output layer have the tokenizers' sizes
        (`src_vocab`, `tgt_vocab` pieces): else InconsistentModel. A tokenizer of another size than its
        graph's embedding or output layer would translate garbage (ids read as other pieces)."""
        quiet = import_ort().RunOptions()
        quiet.log_severity_level = 4  # a probe's failure is the answer, raised here: no error log for it
        self.run_options = quiet
        try:
            try:
                memory, state = self.encode([[src_vocab - 1, src_vocab - 1]])
                log_probs, _, _ = self.step(np.array([tgt_vocab - 1]), state, memory)
            except Exception as err:  # noqa: BLE001  (ONNX Runtime's errors have no common base)
                msg = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
                raise InconsistentModel(f"its graphs do not run on the last pieces of its tokenizers ({src_vocab:,} "
                                        f"and {tgt_vocab:,} pieces): {msg}") from None  # fmt: skip
            if log_probs.shape[-1] != tgt_vocab:
                raise InconsistentModel(f"its tgt.spm.model has {tgt_vocab:,} pieces, the output layer of its "
                                        f"decoder_step.onnx {log_probs.shape[-1]:,}")  # fmt: skip
            try:
                self.encode([[src_vocab]])  # one past the tokenizer: must be past the embedding too
            except Exception:  # noqa: BLE001
                return
            raise InconsistentModel(
                f"its src.spm.model has {src_vocab:,} pieces, the embedding of its encoder.onnx more"
            )
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
