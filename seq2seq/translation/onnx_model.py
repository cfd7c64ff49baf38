"""The exported ONNX model: one file, written from the torch model by `torch.onnx`, run on ONNX Runtime.

`seq2seq export --format onnx` writes a zip (stored, not compressed) holding

* `encoder.onnx`: source ids (B, S) and lengths (B,) -> the attention memory (states, keys, mask)
  and the decoder's initial recurrent state;
* `decoder_step.onnx`: one search step: previous ids (N,), the recurrent state (and the input-feeding
  vector), the memory of B sentences -> log-probabilities (N, V), the new state, attention (N, S),
  and the search's candidates: each row's k best pieces and EOS's log-prob (k an input, default 1);
* `src.spm.model`, `tgt.spm.model`: both SentencePiece models;
* `seq2seq-onnx.json`: format name and version, model config, languages, quantization, the graphs'
  input and output names.

Both graphs are traced from `model.py`'s own modules (`Seq2Seq.encode`, `Seq2Seq.step`): nothing of
the network is written again here. `--quantize int8` stores both graphs' weights in int8 and
quantizes their activations on a fixed scale (quantize.py: the output never depends on the batch).
In the step graph N may be any multiple of B: the rows come in groups of N / B consecutive rows per
sentence (its beams), which attend to their sentence's memory once (model.py's `Decoder._attend`).
`OnnxEngine.select` keeps the memory per sentence while the search's row selections keep whole,
equal groups.

This module owns the format (writing and reading); onnx_graphs.py traces the graphs it writes, onnx_scan.py
reads what a graph's protobuf holds for its checks, onnx_engine.py runs the graphs (`OnnxEngine`).
Translating with it imports numpy, sentencepiece and onnxruntime only, never torch (`export_onnx`
imports torch, lazily).
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import atomic_write
from ..config import LANGUAGE_CODE, TRAIN_BOUNDS, ConfigError, DecodeConfig, ModelConfig, is_language_code
from ..config_dict import from_dict
from ..errors import CheckpointError
from ..tokenizer import Tokenizer
from .base import Translating
from .onnx_engine import CANDIDATES, EXTRA, InconsistentModel, OnnxEngine, import_ort, state_names
from .onnx_graphs import OPSET, export_graphs
from .onnx_scan import INT8_OPS, scan

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

FORMAT = "seq2seq-onnx"
VERSION = 2  # 2: the step graph's candidate outputs (version 1 files still load; their search takes the log-probs)
MANIFEST = "seq2seq-onnx.json"
QUANTIZE = ("int8",)


# a broken zip or manifest: truncated, bad CRC or deflate data, encrypted or unknown compression (RuntimeError),
# not JSON or undecodable member names (ValueError), nested too deeply (RecursionError), no such member (KeyError)
_UNREADABLE = (OSError, KeyError, ValueError, EOFError, RuntimeError, RecursionError, zipfile.BadZipFile, zlib.error)


def is_onnx_model(path: str | Path) -> bool:
    """True for a file written by `export_onnx` (a zip holding the manifest), a damaged one included: the
    manifest is its first member, named in the zip's first local header, which a truncated file keeps. Only a
    regular file is one: /dev/zero or a pipe is never read here (zipfile would read it to the end)."""
    if not Path(path).is_file():
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return MANIFEST in z.namelist()
    except _UNREADABLE:
        try:
            with open(path, "rb") as f:
                head = f.read(30 + len(MANIFEST))
        except OSError:
            return False
        return head[:4] == b"PK\x03\x04" and head[26:28] == len(MANIFEST).to_bytes(2, "little") and (
            head[30:] == MANIFEST.encode())  # fmt: skip


def refuse_onnx_model(path: str | Path) -> None:
    """Where a `.pt` checkpoint is read (export, average, the torch engine): an ONNX model, a damaged one
    included, named as what it is (a CheckpointError) instead of a checkpoint torch cannot read."""
    if is_onnx_model(path):
        raise CheckpointError(f"{path}: an ONNX model (from seq2seq export), no checkpoint: seq2seq translate and "
                              "load_translator take it")  # fmt: skip


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a file written by `export_onnx` (languages, model config, quantization, trained
    steps), every field checked (`_check_manifest`), for its model card (sources/facts.py);
    `OnnxTranslator.load` checks the whole file."""
    with _reading(path), zipfile.ZipFile(path) as z:
        return _check_manifest(json.loads(_member(z, MANIFEST, path)), path)


@contextmanager
def _reading(path: str | Path) -> Iterator[None]:
    """Any error reading a model file as one CheckpointError line naming it."""
    try:
        yield
    except CheckpointError:
        raise
    except InconsistentModel as err:  # each part readable, but not parts of one model
        raise CheckpointError(f"{path}: {err}: damaged or inconsistent ONNX model") from None
    except Exception as err:  # noqa: BLE001  (zip, JSON, protobuf and ONNX Runtime errors alike)
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: incomplete or corrupt ONNX model ({msg})") from None


GRAPHS = ("encoder.onnx", "decoder_step.onnx")
TOKENIZERS = ("src.spm.model", "tgt.spm.model")
# The most each member may hold: the manifest 1 MiB, a tokenizer 64 MiB, a graph 2 GiB (protobuf's own limit for
# one ONNX graph). Every member is stored, not compressed, so together they hold no more than the file's size.
_LIMITS = {MANIFEST: 1 << 20, **dict.fromkeys(TOKENIZERS, 64 << 20), **dict.fromkeys(GRAPHS, 2 << 30)}


def _member(z: zipfile.ZipFile, name: str, path: str | Path, read: bool = True) -> bytes:
    """A member of a model file (`read` False: b"", checked only), stored (as `export_onnx` writes it: its size
    is its size in the file) and no larger than `_LIMITS` allows, both checked before it is read."""
    info = z.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        method = zipfile.compressor_names.get(info.compress_type, f"method {info.compress_type}")
        raise CheckpointError(f"{path}: its {name} is compressed ({method}); a model file's members are stored, not "
                              "compressed: not a model this seq2seq wrote")  # fmt: skip
    size, limit = max(info.file_size, info.compress_size), _LIMITS[name]
    if size > limit:
        raise CheckpointError(f"{path}: its {name} unpacks to {size:,} bytes, more than the {limit:,} a model file's "
                              f"{name} may hold: not a model this seq2seq wrote")  # fmt: skip
    return z.read(name) if read else b""


def _parts(z: zipfile.ZipFile, path: str | Path) -> dict[str, bytes]:
    """Both graphs and both tokenizers (`_member`), together no larger than the file (members whose entries
    share their bytes would be read, and held, once each)."""
    names = (*GRAPHS, *TOKENIZERS)
    for name in names:
        _member(z, name, path, read=False)
    total = sum(z.getinfo(name).file_size for name in names)
    if total > (whole := Path(path).stat().st_size):
        raise CheckpointError(f"{path}: its members unpack to {total:,} bytes, more than the file's {whole:,}: not a "
                              "model this seq2seq wrote")  # fmt: skip
    return {name: _member(z, name, path) for name in names}


# --- the manifest


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _digests(value: Any) -> bool:
    return isinstance(value, dict) and set(value) <= {"src", "tgt"} and all(
        isinstance(d, str) and bool(_SHA256.fullmatch(d)) for d in value.values())  # fmt: skip


def _dict_or_none(value: Any) -> bool:
    return value is None or isinstance(value, dict)


_NAMES = "a list of the graph's input or output names"
# The manifest's fields besides format and version: (required, the check of its value, what the value must be)
_FIELDS: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    "model_config": (True, lambda v: isinstance(v, dict), "an object (the model's settings)"),
    "src_lang": (True, is_language_code, LANGUAGE_CODE),  # what preprocess took as --src/--tgt
    "tgt_lang": (True, is_language_code, LANGUAGE_CODE),
    "quantize": (True, lambda v: isinstance(v, str) and v in ("none", *QUANTIZE), f"none or {' or '.join(QUANTIZE)}"),
    "step_inputs": (True, _names, _NAMES),
    "step_outputs": (True, _names, _NAMES),
    "encoder_inputs": (False, _names, _NAMES),
    "encoder_outputs": (False, _names, _NAMES),
    "trained_steps": (False, lambda v: v is None or _count(v), "a whole number >= 0, or null"),
    "averaged": (False, lambda v: v is None or _names(v), "a list of file names, or null"),
    "opset": (False, _count, "a whole number"),
    "data_config": (False, _dict_or_none, "an object (the run's settings), or null"),
    "train_config": (False, _dict_or_none, "an object (the run's settings), or null"),
    "spm_sha256": (False, _digests, "the src and tgt tokenizers' SHA-256 digests"),
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_manifest(manifest: Any, path: str | Path) -> dict[str, Any]:
    """`manifest` itself, each field checked: its type and value (a CheckpointError for another format or a
    newer version, an InconsistentModel naming the field otherwise)."""
    if not isinstance(manifest, dict):
        raise InconsistentModel(f"its {MANIFEST} is {type(manifest).__name__}, not a JSON object")
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} model (format {_shown(manifest.get('format'))})")
    version = manifest.get("version")
    if not _count(version) or version < 1:
        raise InconsistentModel(f"its {MANIFEST} has version {_shown(version)}, not a whole number >= 1")
    if version > VERSION:
        raise CheckpointError(f"{path}: {FORMAT} version {version} is newer than this seq2seq reads ({VERSION}): "
                              "upgrade seq2seq")  # fmt: skip
    for key, (required, valid, what) in _FIELDS.items():
        if key not in manifest and required:
            raise InconsistentModel(f"its {MANIFEST} has no {key}")
        if key in manifest and not valid(manifest[key]):
            raise InconsistentModel(f"its {MANIFEST} has {key} {_shown(manifest[key])}, not {what}")
    try:
        from_dict(ModelConfig, manifest["model_config"])
    except ConfigError as err:
        raise InconsistentModel(f"its {MANIFEST} has a model_config seq2seq cannot build ({err})") from None
    return manifest


# --- the graphs


def _check_graphs(graphs: dict[str, bytes], manifest: dict[str, Any], path: str | Path) -> None:
    """Neither graph reads another file (a model file is read whole from itself), and int8 operators are in
    the graphs exactly when the manifest says they are quantized."""
    ops = set()
    for name, graph in graphs.items():
        found = scan(graph)
        if found.external is not None:
            raise CheckpointError(f"{path}: its {name} keeps tensor {_shown(found.external)} in another file (ONNX "
                                  "external data): refused, a model file is read whole from itself")  # fmt: skip
        ops |= found.ops
    int8 = "int8" if ops & INT8_OPS else "none"
    if manifest["quantize"] != int8:
        raise InconsistentModel(f"its {MANIFEST} has quantize {manifest['quantize']!r}, its graphs are "
                                f"{'int8' if int8 == 'int8' else 'fp32'}")  # fmt: skip


def _io(session: Any, outputs: bool) -> dict[str, list[Any]]:
    return {a.name: list(a.shape) for a in (session.get_outputs() if outputs else session.get_inputs())}


def _check_names(engine: OnnxEngine, manifest: dict[str, Any]) -> None:
    """The graphs' inputs and outputs are the ones the model config makes and the manifest names, in the
    order the engine passes and reads them (values go by position): else InconsistentModel."""
    states = state_names(engine.cfg)
    rnn = [s for s in states if s != "feed"]
    graphs = {
        "encoder_inputs": (GRAPHS[0], _io(engine.encoder, False), ["src_ids", "src_lens"]),
        "encoder_outputs": (GRAPHS[0], _io(engine.encoder, True), ["states", "keys", "mask", *rnn]),
        "step_inputs": (GRAPHS[1], _io(engine.step_graph, False), ["prev_ids", *states, "states", "keys", "mask"]),
        "step_outputs": (GRAPHS[1], _io(engine.step_graph, True),
                         ["log_probs", *(f"{s}_out" for s in states), "attention"]),
    }  # fmt: skip
    for key, (graph, io_shapes, expected) in graphs.items():
        names = list(io_shapes)
        listed = manifest.get(key, names)
        extra = ["k"] if key == "step_inputs" else list(CANDIDATES) if key == "step_outputs" else []
        # a manifest may leave out the step graph's candidate input and outputs (its search then takes the
        # log-probs, as for a version 1 file); the names it lists are the graph's, in the graph's order
        if listed not in (names, [n for n in names if n not in extra]):
            raise InconsistentModel(f"its {MANIFEST} lists {key} {_listed(listed)}, its {graph} has {_listed(names)}")
        if names not in (expected, expected + extra):
            config = f"{engine.cfg.cell}, input feeding {engine.cfg.input_feeding}"
            raise InconsistentModel(f"its {graph} has {key} {_listed(names)}, its model config ({config}) makes "
                                    f"{_listed(expected)}")  # fmt: skip
        _check_dims(engine.cfg, graph, io_shapes, enforced=key == "step_inputs")


def _listed(names: Any) -> str:
    return ", ".join(map(str, names)) if isinstance(names, list) else repr(names)


def _dims(cfg: ModelConfig) -> dict[str, tuple[Any, ...]]:
    """Each graph input's and output's dimensions: a name for any size (B sentences, S pieces, N rows, V
    pieces, k candidates), a number, or (size, the model config's fields that give it)."""
    rnn = ((cfg.dec_layers, ("dec_layers",)), "N", (cfg.dec_hidden, ("dec_hidden",)))
    states = (2 * cfg.enc_hidden, ("enc_hidden",))
    keys = states if cfg.attention == "dot" else (cfg.dec_hidden, ("dec_hidden",))
    keys = (keys[0], ("attention", *keys[1]))
    feed = ("N", (cfg.emb_size, ("emb_size",)))
    return {"src_ids": ("B", "S"), "src_lens": ("B",), "states": ("B", "S", states), "keys": ("B", "S", keys),
            "mask": ("B", "S"), "prev_ids": ("N",), "k": (1,), "log_probs": ("N", "V"), "attention": ("N", "S"),
            "cand_values": ("N", "k"), "cand_ids": ("N", "k"), "eos_log_prob": ("N",),
            **{name: rnn for name in ("h", "c", "h_out", "c_out")}, "feed": feed, "feed_out": feed}  # fmt: skip


def _check_dims(cfg: ModelConfig, graph: str, io_shapes: dict[str, list[Any]], enforced: bool) -> None:
    """Each input's and output's declared sizes (a number, or a name for any size) are the model config's:
    the step graph's inputs, which ONNX Runtime holds every call to, declare every size the config gives,
    so that a search's memory estimate from the config (`ModelConfig.decode_row_bytes`) holds."""
    dims = _dims(cfg)
    for name, shape in io_shapes.items():
        want = dims[name]
        sizes = [d[0] if isinstance(d, tuple) else d for d in want]
        if len(shape) == len(want) and all(not isinstance(size, int) or given == size or not (
                enforced or isinstance(given, int)) for given, size in zip(shape, sizes)):  # fmt: skip
            continue
        fields = [f for d in want if isinstance(d, tuple) for f in d[1]]
        config = ", ".join(f"{f} {getattr(cfg, f)}" for f in dict.fromkeys(fields))
        raise InconsistentModel(
            f"its {graph} has {name} of shape {_shape(shape)}, "
            f"{f'its model config ({config})' if config else 'seq2seq'} makes {_shape(sizes)}"
        )


def _shape(dims: list[Any]) -> str:
    return "(" + ", ".join(str(d) if d else "?" for d in dims) + ")"


def _check_vocab(engine: OnnxEngine, src_vocab: int, tgt_vocab: int) -> None:
    """The graphs run on one sentence, and their embeddings and output layer have the tokenizers' sizes
    (`src_vocab`, `tgt_vocab` pieces): else InconsistentModel. A tokenizer of another size than its
    graph's embedding or output layer would translate garbage (ids read as other pieces)."""
    try:
        memory, state = engine.encode([[src_vocab - 1, src_vocab - 1]])
        log_probs, _, _ = engine.step(np.array([tgt_vocab - 1]), state, memory)
    except Exception as err:  # noqa: BLE001  (ONNX Runtime's errors have no common base)
        msg = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise InconsistentModel(f"its graphs do not run on the last pieces of its tokenizers ({src_vocab:,} "
                                f"and {tgt_vocab:,} pieces): {msg}") from None  # fmt: skip
    if log_probs.shape[-1] != tgt_vocab:
        raise InconsistentModel(f"its {TOKENIZERS[1]} has {tgt_vocab:,} pieces, the output layer of its {GRAPHS[1]} "
                                f"{log_probs.shape[-1]:,}")  # fmt: skip
    try:
        engine.encode([[src_vocab]])  # one past the tokenizer: must be past the embedding too
    except Exception:  # noqa: BLE001
        return
    raise InconsistentModel(f"its {TOKENIZERS[0]} has {src_vocab:,} pieces, the embedding of its {GRAPHS[0]} more")


# ---------------------------------------------------------------------------------------------- export


def export_onnx(checkpoint: str | Path, out: str | Path, quantize: str | None = None) -> Path:
    """Write the ONNX model file of a checkpoint (fp32, or int8 with `quantize="int8"`); returns its path."""
    import tempfile

    import torch

    from ..checkpoint import check_vocab, load_weights, read_model
    from ..model import Seq2Seq

    if quantize is not None and quantize not in QUANTIZE:
        raise ConfigError(f"--quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    try:
        import onnx  # noqa: F401  (torch.onnx needs it)
    except ImportError:
        raise ConfigError(f"exporting ONNX needs the onnx package: {EXTRA}") from None
    if quantize == "int8":
        try:
            import onnxruntime.quantization  # noqa: F401  (quantize.py's: before the fp32 export, not after)
        except ImportError:
            raise ConfigError(f"--quantize int8 needs ONNX Runtime's quantization tools: {EXTRA}") from None
    refuse_onnx_model(checkpoint)
    saved = read_model(checkpoint)
    check_vocab(checkpoint, saved)
    cfg = from_dict(ModelConfig, saved.model_config)
    model = Seq2Seq(
        cfg, saved.state_dict["encoder.embed.weight"].shape[0], saved.state_dict["decoder.embed.weight"].shape[0]
    )
    load_weights(checkpoint, model, saved.state_dict)  # a misshapen or missing tensor: one line naming it
    model.float().eval()
    with torch.no_grad():
        enc_bytes, step_bytes, io_names = export_graphs(model)
    if quantize == "int8":
        from .quantize import quantize_graphs

        with tempfile.TemporaryDirectory(prefix="seq2seq-quantize-") as tmp:  # the quantizer's scratch files
            enc_bytes, step_bytes = quantize_graphs(enc_bytes, step_bytes, Path(tmp))
    manifest = {"format": FORMAT, "version": VERSION, "model_config": saved.model_config,
                "src_lang": saved.src_lang, "tgt_lang": saved.tgt_lang, "quantize": quantize or "none",
                "trained_steps": saved.step, "averaged": saved.averaged, "opset": OPSET, **io_names,
                "data_config": saved.data_config, "train_config": saved.train_config,  # the run it came from (push)
                "spm_sha256": {"src": _sha256(saved.src_spm), "tgt": _sha256(saved.tgt_spm)}}  # fmt: skip
    try:
        _check_manifest(manifest, out)  # the reader's own check: never a file that would not load
    except InconsistentModel as err:
        raise CheckpointError(f"{checkpoint}: cannot be exported: {err}") from None
    out = Path(out)
    # atomic_write (the one way output files are written): whole or not at all, synced, a link's target
    # replaced and the old file's permissions kept; a missing folder created now, not before the work
    with atomic_write(out, "wb", make_folder=True) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        z.writestr(MANIFEST, json.dumps(manifest, indent=1))
        z.writestr("encoder.onnx", enc_bytes)
        z.writestr("decoder_step.onnx", step_bytes)
        z.writestr("src.spm.model", saved.src_spm)
        z.writestr("tgt.spm.model", saved.tgt_spm)
    return out


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


class OnnxTranslator(Translating):
    """`Translator`'s API over an exported ONNX model, on ONNX Runtime, without torch."""

    engine = "onnx"

    def __init__(self, engine: OnnxEngine, src_tok: Tokenizer, tgt_tok: Tokenizer, quantize: str) -> None:
        self.net, self.src_tok, self.tgt_tok, self.quantize = engine, src_tok, tgt_tok, quantize
        engine.vocab = len(tgt_tok)

    @classmethod
    def load(cls, path: str | Path, threads: int = 0) -> OnnxTranslator:
        """Read a file written by `export_onnx` (threads: ONNX Runtime's intra-op threads, 0: one per usable
        core), checked whole before the first sentence (a CheckpointError, one line): its members stored and
        bounded, its manifest's fields, graphs that read no other file, and its parts against each other (the
        graphs' input and output names and sizes against the manifest's model config, their attention and
        quantization, the tokenizers' sizes against the embeddings and the output layer)."""
        path = Path(path)
        low, high = TRAIN_BOUNDS["threads"]  # as `seq2seq train --threads`: a typo is one line, not a hang
        if not (isinstance(threads, int) and not isinstance(threads, bool) and low <= threads <= high):
            raise ConfigError(f"threads must be a whole number in [{low}, {high}] (ONNX Runtime's intra-op threads; "
                              f"0: one per usable core, at most 8), got {threads!r}")  # fmt: skip
        if not path.is_file():
            raise CheckpointError(f"{path}: no such model file")
        if not is_onnx_model(path):
            raise CheckpointError(f"{path}: not a seq2seq ONNX model (write one with `seq2seq export --format onnx`)")
        import_ort()
        with _reading(path):
            with zipfile.ZipFile(path) as z:
                manifest = _check_manifest(json.loads(_member(z, MANIFEST, path)), path)
                parts = _parts(z, path)
            for side, digest in manifest.get("spm_sha256", {}).items():  # recorded since 2026-12-06
                if _sha256(parts[f"{side}.spm.model"]) != digest:
                    raise InconsistentModel(f"{side}.spm.model is not the tokenizer the model was exported with")
            graphs = {name: parts[name] for name in GRAPHS}
            _check_graphs(graphs, manifest, path)  # before ONNX Runtime reads them
            src_tok, tgt_tok = (Tokenizer(parts[name]) for name in TOKENIZERS)
            engine = OnnxEngine(*graphs.values(), manifest, threads)
            _check_names(engine, manifest)  # its graphs' names and sizes against the manifest's
            with engine.probing():
                _check_vocab(engine, len(src_tok), len(tgt_tok))  # its embeddings and output layer: the tokenizers'
        translator = cls(engine, src_tok, tgt_tok, manifest["quantize"])
        translator.src_lang, translator.tgt_lang = manifest["src_lang"], manifest["tgt_lang"]
        return translator

    def search_engine(self, cfg: DecodeConfig) -> OnnxEngine:
        self.check(cfg)
        return self.net

    def check(self, cfg: DecodeConfig) -> None:
        """The graphs compute in fp32 (int8 weights where quantized), with a beam no wider than the
        vocabulary."""
        cfg.check_vocab(len(self.tgt_tok))
        if self.quantize == "int8" and cfg.precision != "auto":
            raise ConfigError(
                f"an int8 ONNX model decodes in int8, not {cfg.precision}: drop --precision, or translate with "
                "the fp32 export or the .pt checkpoint"
            )
        if cfg.precision not in ("auto", "fp32"):
            raise ConfigError(
                "an ONNX model decodes in fp32 (or the int8 it was exported with): "
                f"use the .pt checkpoint for --precision {cfg.precision}"
            )

    def _where(self, cfg: DecodeConfig | None) -> dict[str, Any]:  # the file's precision, whatever cfg asks
        return {"device": "cpu", "precision": "int8" if self.quantize == "int8" else "fp32"}
