"""The model card of `seq2seq push`: what a model file and its run folder record, as a Hub README.md.

The card says only what the files record: languages, sizes and trained updates from the model
file; the data folder, its `seq2seq download` manifest, the pairs after cleaning, the validation
BLEU of the checkpoint's update with its sacreBLEU signature and how training ended from the run
folder (`preprocess.json`, `metrics.jsonl`; the checkpoint's folder, or `--run`); test scores with
their signatures from `seq2seq evaluate` output (`--bleu-file`). No number is made up: what is not
recorded is said to be unknown. The licence stays the user's to fill in (`license: other`) unless
`--license` gives it. hub.py stages the card with the model and uploads them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CorpusError, RunFolderError

if TYPE_CHECKING:
    from collections.abc import Sequence

PACKAGE = "seq2seq-nmt"  # pyproject.toml's name (the import name is seq2seq)
# A score line of `seq2seq evaluate`: NAME = VALUE [details]  (SIGNATURE), sacreBLEU's signatures start with nrefs:
_SCORE = re.compile(r"^(BLEU|chrF\S*|TER) = (-?\d+(?:\.\d+)?)(?:\s.*)?\s\((nrefs:[^()]*)\)\s*$")
_SCORE_NAME = re.compile(r"^\s*(BLEU|chrF\S*|TER)\s*=")  # a score line, signed or not


@dataclass(frozen=True)
class CardOptions:
    """What the model card takes besides the model file."""

    license: str = "other"  # the card's licence field; other: left for the user to fill in
    bleu_files: tuple[str, ...] = ()  # [NAME=]FILE: `seq2seq evaluate` output on the test set NAME
    run: str | Path | None = None  # the model's run folder (None: the model file's folder, if it is one)


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


# ---------------------------------------------------------------------------------------------- facts


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


def read_scores(specs: Sequence[str]) -> list[dict[str, Any]]:
    """The scores of `seq2seq evaluate` output files, `[NAME=]FILE` (NAME: the test set, up to the first
    '='; default the file's name without its suffix; a FILE whose own name holds '=' is taken whole when
    it exists): one entry per score line (BLEU, chrF, TER) with its signature, the file's name and
    SHA-256 (the card says which file each score came from). A score line without its signature is
    refused, naming FILE:LINE: a number whose settings are unknown does not go on the card."""
    scores = []
    for spec in specs:
        name, _, path = spec.partition("=")
        if not path or (not Path(path).is_file() and Path(spec).is_file()):
            name, path = "", spec
        path_ = Path(path)
        try:
            data = path_.read_bytes()
            lines = data.decode("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise CorpusError(f"--bleu-file {path}: cannot read it ({err})") from None
        found = []
        for number, line in enumerate(lines, 1):
            if m := _SCORE.match(line):
                found.append(m)
            elif _SCORE_NAME.match(line):
                raise CorpusError(f"--bleu-file {path}:{number}: a score without its sacreBLEU signature "
                                  "('(nrefs:...)' at the end of the line): write the file with `seq2seq evaluate "
                                  "--hyp HYP --ref REF > FILE`")  # fmt: skip
        if not any(m[1] == "BLEU" for m in found):
            raise CorpusError(f"--bleu-file {path}: no 'BLEU = SCORE  (SIGNATURE)' line: write it with "
                              "`seq2seq evaluate --hyp HYP --ref REF > FILE`")  # fmt: skip
        sha256 = hashlib.sha256(data).hexdigest()
        for m in found:
            scores.append({"set": name or path_.name.split(".")[0], "metric": m[1], "value": float(m[2]),
                           "signature": m[3], "file": path_.name, "sha256": sha256})  # fmt: skip
    return scores


# ---------------------------------------------------------------------------------------------- card


def _hub_split(splits: dict[str, Any], name: str) -> str:
    """The Hub dataset's own name for a split (`val` -> `validation`, its `from_split`), or `name` itself."""
    ours = splits.get(name)
    return ours["from_split"] if isinstance(ours, dict) and isinstance(ours.get("from_split"), str) else name


def _yaml(repo: str, facts: ModelFacts, scores: list[dict[str, Any]], license_: str) -> str:
    """The card's Hub metadata (huggingface_hub's ModelCardData), the licence left to fill in if `other`."""
    from huggingface_hub import EvalResult, ModelCardData

    data = facts.run.get("data") or {}
    hub_dataset = data.get("dataset") if data.get("source") == "hub" else None
    splits = data.get("splits") if isinstance(data.get("splits"), dict) else {}
    # the training dataset is a score's dataset only where NAME is one of its splits (ours, or as it names them)
    own = set(splits) | {v.get("from_split") for v in splits.values() if isinstance(v, dict)} if hub_dataset else set()
    task = f"Translation {facts.src_lang}-{facts.tgt_lang}"
    results = [EvalResult(task_type="translation", task_name=task, dataset_type=hub_dataset if s["set"] in own
                          else s["set"], dataset_name=s["set"],
                          dataset_split=_hub_split(splits, s["set"]) if s["set"] in own else None,
                          metric_type=s["metric"].lower(), metric_value=s["value"], metric_name=s["metric"],
                          metric_config=s["signature"]) for s in scores]  # fmt: skip
    tags = ["translation", "seq2seq-nmt", facts.model_config.get("cell", "rnn"), *(["onnx"] * (facts.kind == "onnx"))]
    card = ModelCardData(language=[facts.src_lang, facts.tgt_lang], license=license_, library_name=PACKAGE,
                         pipeline_tag="translation", tags=tags, datasets=[hub_dataset] if hub_dataset else None,
                         model_name=repo, eval_results=results or None)  # fmt: skip
    text = card.to_yaml()
    if license_ == "other":
        note = "  # fill in: the licence of these weights and of their training data (an SPDX id), or push --license"
        text = text.replace("license: other", "license: other" + note, 1)
    return text


def _use(repo: str, facts: ModelFacts) -> list[str]:
    sample = "echo 'a sentence' | seq2seq translate --checkpoint hf://" + repo
    lines = ["## Use", "", "```sh", f"pip install {PACKAGE}" + ("[onnx]" * (facts.kind == "onnx")), sample, "```",
             "", "```python", "from seq2seq import Translator", "",
             f'translator = Translator.from_pretrained("{repo}")', 'print(translator.translate("a sentence"))',
             "```"]  # fmt: skip
    if facts.kind == "onnx":
        lines += ["", f'An ONNX model: `load_translator("hf://{repo}")` (`seq2seq.translation`) runs it on ONNX '
                  "Runtime without importing torch."]  # fmt: skip
    return lines


def _model(facts: ModelFacts, digest: str, size: int) -> list[str]:
    cfg = ", ".join(f"{k} {v}" for k, v in facts.model_config.items())
    lines = ["## Model", "", f"- file: `{facts.filename}` ({size / 1e6:.1f} MB, SHA-256 `{digest}`), "
             + ("a seq2seq checkpoint" if facts.kind == "checkpoint" else
                f"an ONNX model exported from a seq2seq checkpoint ({'int8' if facts.quantize == 'int8' else 'fp32'})"),
             f"- model settings: {cfg}"]  # fmt: skip
    if facts.parameters:
        lines.append(f"- parameters: {facts.parameters:,}")
    lines.append(f"- trained updates: {facts.step:,}" if facts.step is not None else "- trained updates: not recorded")
    if facts.averaged:
        files = ", ".join(f"`{_averaged_name(str(name))}`" for name in facts.averaged)
        lines.append(f"- the weights are the average of {len(facts.averaged)} checkpoints: {files}")
    return lines


# a file in huggingface_hub's cache, as files averaged before `average` recorded hf:// names held them
_CACHED = re.compile(r"(?:^|/)models--([^/]+?)--([^/]+)/snapshots/([0-9a-f]{40})/(.+)$")


def _averaged_name(name: str) -> str:
    """An averaged file as the card names it: a path in the Hub cache as the hf:// model it was, else as recorded."""
    cached = _CACHED.search(name)
    return f"hf://{cached[1]}/{cached[2]}@{cached[3]}/{cached[4]}" if cached else name


def _data(facts: ModelFacts) -> list[str]:
    prepared, data = facts.run.get("prepared"), facts.run.get("data")
    if not prepared:
        return ["## Training data", "", "Not recorded with this file (push from the run folder, or name it with "
                "`--run RUN`)."]  # fmt: skip
    lines = ["## Training data", "", f"- data folder: `{prepared['data_dir']}` (`{{split}}.{prepared['src']}`, "
             f"`{{split}}.{prepared['tgt']}`)"]  # fmt: skip
    if note := facts.run.get("data_note"):
        lines.append(f"- dataset: not given: {note}")
    if data:
        what = ", ".join(f"{k} {data[k]}" for k in ("subset", "revision", "commit") if data.get(k))
        lines.append(f"- written by `seq2seq download` from {data.get('source', 'a')} dataset `{data['dataset']}`"
                     + (f" ({what})" if what else ""))  # fmt: skip
    counts = ", ".join(f"{name} {n:,}" for name, n in prepared["splits"].items())
    lines.append(f"- sentence pairs after cleaning and filtering: {counts}")
    lines.append(f"- vocabularies: {prepared['src_vocab']:,} / {prepared['tgt_vocab']:,} SentencePiece pieces")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _evaluation(facts: ModelFacts, scores: list[dict[str, Any]]) -> list[str]:
    rows = [f"| {s['set']} | {s['metric']} | {s['value']:.2f} | `{_cell(s['signature'])}` |" for s in scores]
    valid, selection = facts.run.get("valid"), facts.run.get("selection") or {}
    if valid and "val_bleu" in valid and selection.get("val_bleu_signature") and not facts.averaged:
        of = "this checkpoint" if facts.kind == "checkpoint" else "the checkpoint exported"
        where = (f"val, its first {selection['val_bleu_sentences']} sentences, greedy: training's validation of "
                 f"{of} (update {valid['step']:,})")  # fmt: skip
        rows.append(f"| {where} | BLEU | {valid['val_bleu']:.2f} | `{_cell(selection['val_bleu_signature'])}` |")
    if not rows:
        return ["## Evaluation", "", "No score is recorded for this file: score a test set with `seq2seq "
                "evaluate` and push again with `--bleu-file NAME=FILE`."]  # fmt: skip
    files = {(s["set"], s["file"], s["sha256"]): None for s in scores}
    sources = [f"- {name}: from `{file}` (SHA-256 `{sha}`), `seq2seq evaluate` output as given to `seq2seq push "
               "--bleu-file`; the card records the file, it cannot tell which model's translations it scored"
               for name, file, sha in files]  # fmt: skip
    return ["## Evaluation", "", "sacreBLEU scores, each with its signature.", "",
            "| data | metric | score | sacreBLEU signature |", "|---|---|---|---|", *rows,
            *([""] + sources if sources else [])]  # fmt: skip


def _training(facts: ModelFacts, has_config: bool) -> list[str]:
    prepared = facts.run.get("prepared") or {}
    data = f"`{prepared['data_dir']}`" if prepared else "the data folder (not recorded in the model file)"
    if facts.run.get("unmatched"):
        return ["## Training", "", f"This ONNX file records its model settings, tokenizers and trained updates, "
                f"which match the run folder `{facts.run['unmatched']}`, but not the seed or the other training "
                "settings: another run of the same recipe (another seed) would match as well. So the run's "
                "settings (`config.toml`), its validation BLEU and how it ended are not given here; push the .pt "
                "checkpoint it was exported from for them."]  # fmt: skip
    if not has_config:
        return ["## Training", "", "The training settings are not recorded with this file (push the .pt "
                "checkpoint, or name its run folder with `--run RUN`)."]  # fmt: skip
    lines = ["## Training", "", f"`config.toml` (in this repository) holds every setting it was trained with; with "
             f"DATA {data}, this trains it again with the same settings:", "", "```sh",
             f"seq2seq train --config config.toml --data DATA --src {facts.src_lang} --tgt {facts.tgt_lang} --out RUN",
             "```"]  # fmt: skip
    stop, hardware = facts.run.get("stop"), facts.run.get("hardware")
    if stop and hardware:
        took = f"{stop['elapsed_s'] / 60:.1f} minutes" if stop["elapsed_s"] >= 60 else f"{stop['elapsed_s']:.0f} s"
        cpu = hardware.get("cpu") or "CPU not recorded"
        lines += ["", f"The run stopped after {stop['step']:,} updates ({stop['reason']}) and {took}, on "
                  f"{hardware['device']} ({cpu}, {hardware['precision']})."]  # fmt: skip
    return lines


def _licence(license_: str) -> list[str]:
    if license_ != "other":
        return ["## Licence", "", f"{license_} (the `license` field above)."]
    return ["## Licence", "", "Not set: fill in the `license` field above with the licence of these weights, which "
            "the licence of the training data may constrain (or push again with `--license ID`)."]  # fmt: skip


def model_card(repo: str, facts: ModelFacts, scores: list[dict[str, Any]], card: CardOptions, digest: str,
               size: int, has_config: bool) -> str:  # fmt: skip
    """README.md: Hub metadata, then use, model, data, evaluation, training and licence sections."""
    pair, cell = f"{facts.src_lang} to {facts.tgt_lang}", str(facts.model_config.get("cell", "rnn")).upper()
    intro = (f"A recurrent ({cell}) encoder-decoder with attention translating {pair}, trained with "
             f"[seq2seq](https://pypi.org/project/{PACKAGE}/) ({PACKAGE}).")  # fmt: skip
    sections = [_use(repo, facts), _model(facts, digest, size), _data(facts), _evaluation(facts, scores),
                _training(facts, has_config), _licence(card.license)]  # fmt: skip
    body = "\n\n".join("\n".join(s) for s in sections)
    return f"---\n{_yaml(repo, facts, scores, card.license).rstrip()}\n---\n\n# {repo}\n\n{intro}\n\n{body}\n"
