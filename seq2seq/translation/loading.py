"""Model files in and out: `load_translator` picks the translator a model file needs, `export_model`
writes one.

An ONNX model from `seq2seq export` runs on ONNX Runtime (onnx_model.py), without importing torch;
a `.pt` checkpoint loads the torch `Translator` (torch_engine.py). Several files make an ensemble
(ensemble.py: the mean of their log-probs; they must share vocabularies).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import check_output
from ..config import ConfigError, DecodeConfig
from .hub import model_file, refuse_hub_output

REMOVED_NPZ = "the NumPy runtime's .npz format was removed (the ONNX model replaces it, docs/deploy.md)"

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .base import Translating


def export_model(checkpoint: str | Path, out: str | Path, fmt: str | None = None, quantize: str | None = None) -> Path:
    """`seq2seq export`: a checkpoint as an ONNX model (`onnx_model.py`), the one export format; never over a
    run's own checkpoint (last.pt, best.pt, stepN.pt)."""
    from ..atomic import refuse_run_checkpoint
    from .onnx_model import export_onnx

    if fmt == "npz" or Path(out).suffix == ".npz":
        raise ConfigError(f"{REMOVED_NPZ}: write an ONNX model instead (--format onnx, e.g. --out model.onnx.zip)")
    if fmt not in (None, "onnx"):
        raise ConfigError(f"unknown export format {fmt!r}: the one format is 'onnx' (an ONNX Runtime model)")
    refuse_hub_output(out, "export")
    # before any work: a folder, a device or pipe, or the checkpoint itself; a missing folder is created when written
    check_output(out, inputs=[checkpoint], make_folder=True, later=True, regular=True)
    refuse_run_checkpoint(out, "the exported model", "model.onnx.zip")
    checkpoint = model_file(checkpoint)  # hf://ORG/NAME: downloaded (hub.py)
    return export_onnx(checkpoint, out, quantize)


def average_models(checkpoints: Sequence[str | Path], out: str | Path) -> Path:
    """`seq2seq average`: the mean of the weights of one run's checkpoints (local files or hf:// paths)."""
    from ..checkpoint import average_checkpoints
    from .onnx_model import refuse_onnx_model

    if isinstance(checkpoints, (str, Path)):  # its characters would be taken as the files
        raise ConfigError(f"checkpoints must be a list of checkpoint files, got the one path {str(checkpoints)!r}")
    refuse_hub_output(out, "average")
    files = [model_file(p) for p in checkpoints]  # hf://ORG/NAME: downloaded
    for file in files:
        refuse_onnx_model(file)
    return average_checkpoints(files, out, names=[str(p) for p in checkpoints])


def load_model(path: str | Path, device: str = "cpu", threads: int = 0) -> Translating:
    """The translator for one model file: ONNX Runtime's for an exported ONNX model (`threads`: its intra-op
    threads, 0: one per usable core, at most 8), else the torch one (whose threads are the process's,
    `torch.set_num_threads`; it names any other exported file, such as a removed `.npz`, in one line)."""
    from .onnx_model import OnnxTranslator, is_onnx_model

    path = model_file(path)  # hf://ORG/NAME[@REVISION][/FILE]: downloaded into huggingface_hub's cache (hub.py)
    if is_onnx_model(path):
        if device not in ("cpu", "auto"):  # auto: the CPU, the only device an ONNX model runs on here
            raise ConfigError(f"{path}: an ONNX model runs on the CPU; drop --device {device}")
        return OnnxTranslator.load(path, threads)
    from .torch_engine import Translator

    return Translator.from_checkpoint(path, device=device)


def load_translator(
    path: str | Path | Sequence[str | Path],
    device: str = "cpu",
    cfg: DecodeConfig | None = None,
    languages: tuple[str | None, str | None] = (None, None),
    threads: int = 0,
) -> Translating:
    """The translator for a model file, or for a list of them (one: that file's; several: an
    `EnsembleTranslator`), checked against `cfg` and the (source, target) `languages` asked for, where given
    (`check_languages`; one-line errors before any input is read); `threads`: an ONNX model's intra-op
    threads (`load_model`)."""
    if isinstance(languages, (str, bytes)) or len(languages) != 2:
        raise ConfigError(f"languages must be a (source, target) pair, None for either, got {languages!r}")
    paths = [path] if isinstance(path, (str, Path)) else list(path or [])
    if not paths:
        raise ConfigError("no model file given")
    translator: Translating
    if len(paths) == 1:
        translator = load_model(paths[0], device, threads)
    else:
        from .ensemble import EnsembleTranslator

        translator = EnsembleTranslator([load_model(p, device, threads) for p in paths], paths)
    translator.check(cfg or DecodeConfig())
    name = str(paths[0]) if len(paths) == 1 else f"the ensemble of {', '.join(str(p) for p in paths)}"
    check_languages(translator, *languages, name=name)
    return translator


def check_languages(translator: Translating, src: str | None, tgt: str | None, name: str = "the model") -> None:
    """A ConfigError unless the model file says it translates `src` into `tgt` (None: not asked): a model of
    another pair translates all the same, into nonsense (en input to a de-en model scored BLEU 0.05, exit 0).
    A file that records no language cannot be checked: asking is refused too, rather than ignored."""
    if src is None and tgt is None:
        return
    pair = f"{translator.src_lang or '?'} -> {translator.tgt_lang or '?'}"
    for side, asked, recorded in (("source", src, translator.src_lang), ("target", tgt, translator.tgt_lang)):
        if asked is None:
            continue
        if recorded is None:
            raise ConfigError(f"{name} records no {side} language, so {asked!r} cannot be checked: leave it out")
        if asked.lower() != recorded.lower():
            raise ConfigError(f"{name} translates {pair}, not {src or '?'} -> {tgt or '?'} ({side} language "
                              f"{asked!r}): use a model of that language pair")  # fmt: skip
