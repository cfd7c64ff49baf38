"""What `seq2seq push` says about a model: the facts its file records (languages, sizes, trained updates,
tokenizers, settings) and what its run folder adds (the data it was prepared from, the validation BLEU of
its update, how training ended), each only where the files record it. card.py writes them as the card.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CorpusError, RunFolderError


@dataclass
class ModelFacts:
    """What the model file records, and what its run folder adds."""

    filename: str  # in the repository
    kind: str  # "checkpoint" or "onnx"
    src_lang: str
    tgt_lang: str
    model_config: dict[str, Any]
    step: int | None
    spm: tuple[bytes, bytes]
    configs: dict[str, dict[str, Any]] | None = None  # data, model, train (a checkpoint's)
    averaged: list[str] | None = None
    quantize: str | None = None
    parameters: int | None = None
    run: dict[str, Any] = field(default_factory=dict)  # prepared, data, valid, selection, stop, hardware, config


def read_facts(model: Path) -> ModelFacts:
    """The model file's own facts: a seq2seq checkpoint, or an exported ONNX model (both loaded and
    checked first, as translation would: a broken file is never pushed)."""
    from ..translation.onnx_model import OnnxTranslator, is_onnx_model, read_manifest

    if is_onnx_model(model):
        translator = OnnxTranslator.load(model)
        m = read_manifest(model)
        int8 = m.get("quantize") == "int8"
        # an export that records the data and train settings too can be matched to its run as a checkpoint is
        recorded = {"data": m.get("data_config"), "model": m["model_config"], "train": m.get("train_config")}
        configs = recorded if all(isinstance(v, dict) for v in recorded.values()) else None
        return ModelFacts("model.int8.onnx.zip" if int8 else "model.onnx.zip", "onnx", m["src_lang"], m["tgt_lang"],
                          m["model_config"], m.get("trained_steps"),
                          (translator.src_tok.model_proto, translator.tgt_tok.model_proto), configs,
                          averaged=m.get("averaged"), quantize=m.get("quantize"))  # fmt: skip
    from ..checkpoint import check_vocab, read_model

    saved = read_model(model)
    check_vocab(model, saved)
    configs = {"data": saved.data_config, "model": saved.model_config, "train": saved.train_config}
    return ModelFacts("model.pt", "checkpoint", saved.src_lang, saved.tgt_lang, saved.model_config, saved.step,
                      (saved.src_spm, saved.tgt_spm), configs, saved.averaged,
                      parameters=_parameters(saved))  # fmt: skip


def _parameters(saved: Any) -> int:
    """The model's parameters as training counts them (model.count_parameters, the number train.log gives):
    tied weights once, however the file stores them (one tensor under two names, or two equal copies)."""
    import torch

    from ..config import ModelConfig
    from ..config_dict import from_dict
    from ..model import Seq2Seq, count_parameters

    weights = saved.state_dict
    with torch.device("meta"):  # the shapes alone: no memory, no initialisation cost
        net = Seq2Seq(from_dict(ModelConfig, saved.model_config), weights["encoder.embed.weight"].shape[0],
                      weights["decoder.embed.weight"].shape[0])  # fmt: skip
    return count_parameters(net)


def add_run_facts(facts: ModelFacts, model: Path, run: str | Path | None) -> None:
    """What the run folder records of this model (`run` None: the model file's folder, when it is a
    prepared run folder). A run folder of another model is refused: other SentencePiece models, another
    setting (the seed, or any data, model or train setting) in its config.json than the model file
    records, or fewer updates than the file's. An ONNX file records its model settings alone: the run's
    data is taken, not its numbers (facts.run["unmatched"]), which another seed's run would match too."""
    from ..prepared import MANIFEST, Prepared
    from ..runfiles import read_metrics

    folder = Path(run) if run is not None else model.parent
    if run is None and not (folder / MANIFEST).is_file():
        return
    try:
        prepared = Prepared.load(folder)
    except (CorpusError, OSError, ValueError) as err:
        raise RunFolderError(f"--run {folder}: not a run folder of `seq2seq train` ({err})") from None
    where = f"--run {folder}" if run is not None else f"{folder} (the folder of {model.name})"
    records = read_metrics(folder / "metrics.jsonl") if (folder / "metrics.jsonl").is_file() else {}
    if problem := _mismatch(facts, model, prepared, records, folder, where):
        advice = "name its own run folder" + (", or leave --run out" if run is not None else " with --run")
        raise RunFolderError(f"{where}: not the run of {model}: {problem}: {advice}")
    facts.run["prepared"] = prepared.manifest
    data, note = _data_manifest(prepared)
    if data is not None:
        facts.run["data"] = data
    if note is not None:
        facts.run["data_note"] = note
    if facts.configs is None:  # an ONNX file recording its model settings alone: which of the recipe's runs?
        facts.run["unmatched"] = str(folder)
        return
    if (folder / "config.toml").is_file():
        facts.run["config"] = (folder / "config.toml").read_text(encoding="utf-8")
    if records:
        facts.run["valid"] = next((r for r in records.get("valid", []) if r["step"] == facts.step), None)
        for kind in ("selection", "stop", "hardware"):
            facts.run[kind] = records[kind][-1] if records.get(kind) else None


def _data_manifest(prepared: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The data folder's `seq2seq download` manifest when it describes the data the run was prepared from,
    else a note saying why the dataset is left off the card (None, None: the folder has no manifest). The
    folder is as it is now, at push time: a download into it after preprocessing (another dataset) would
    be named as the training data; so the corpus files are checked against the sizes and hashes the run
    recorded (`preprocess.corpus_change`, the check `train --resume` makes)."""
    from ..preprocess import corpus_change

    data_dir = Path(prepared.manifest["data_dir"])
    path = data_dir / "manifest.json"  # sources/download.py's
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("dataset"), str):
            raise ValueError("not a manifest of `seq2seq download`")
    except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        reason = " ".join(str(err).split())[:160] or type(err).__name__
        return None, f"`{path}` cannot be read ({reason}), so the dataset is not given"
    if "corpus_files" not in prepared.manifest:
        return None, (
            f"the run records no sizes and hashes of its corpus files (an older seq2seq prepared it), so "
            f"whether `{path}` describes the data it was trained on is unknown: the dataset is not given"
        )
    if change := corpus_change(prepared, data_dir):
        return None, (f"the data folder changed since the run was prepared ({change}), so its `manifest.json` "
                      "may describe other data: the dataset is not given")  # fmt: skip
    return data, None


def _mismatch(facts: ModelFacts, model: Path, prepared: Any, records: dict[str, list[dict[str, Any]]], folder: Path,
              where: str) -> str | None:  # fmt: skip
    """How the run folder shows it did not train the model (None: it may have)."""
    if (prepared.src_tok.model_proto, prepared.tgt_tok.model_proto) != facts.spm:
        return "other SentencePiece models"
    if differ := _differences(facts.configs or {"model": facts.model_config}, _run_settings(folder, where)):
        return f"{model.name} was trained with {differ}"
    last = max((r["step"] for kind in records.values() for r in kind), default=None)
    if facts.step is not None and last is not None and facts.step > last:
        return f"{model.name} was trained {facts.step:,} updates, the run records {last:,} at most"
    return None


def _run_settings(folder: Path, where: str) -> dict[str, dict[str, Any]]:
    """The settings the run folder records it was trained with: config.json (every setting), else config.toml."""
    from ..config import ConfigError
    from ..config_toml import load_toml

    try:
        if (folder / "config.json").is_file():
            settings = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            if not isinstance(settings, dict) or not all(isinstance(settings.get(k), dict) for k in _TABLES):
                raise ValueError("no data, model and train tables")
            return {name: settings[name] for name in _TABLES}
        if (folder / "config.toml").is_file():
            return load_toml(folder / "config.toml", _TABLES)
    except (OSError, UnicodeDecodeError, ValueError, ConfigError) as err:
        name = "config.json" if (folder / "config.json").is_file() else "config.toml"
        raise RunFolderError(f"{where}: its {name} cannot be read ({err}): the settings it was trained with are "
                             "needed to match the model to it") from None  # fmt: skip
    raise RunFolderError(f"{where}: records no settings (config.json, config.toml) to match the model to: name its "
                         "own run folder, or none")  # fmt: skip


_TABLES = ("data", "model", "train")


def _differences(mine: dict[str, dict[str, Any]], run: dict[str, dict[str, Any]], most: int = 3) -> str:
    """'seed 2 (the run: 1234), ...' for each setting both record with other values ('' if none): a key one
    of them lacks (written by another seq2seq version) is no difference."""
    found = [f"{key} {value!r} (the run: {run[name][key]!r})" for name, values in mine.items()
             for key, value in values.items() if key in run.get(name, {}) and run[name][key] != value]  # fmt: skip
    return ", ".join(found[:most]) + (f" and {len(found) - most} more" if len(found) > most else "")
