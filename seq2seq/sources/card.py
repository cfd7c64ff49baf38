"""The model card of `seq2seq push`: what a model file and its run folder record, as a Hub README.md.

The card says only what the files record: languages, sizes and trained updates from the model
file; the data folder, its `seq2seq download` manifest, the pairs after cleaning, the validation
BLEU of the checkpoint's update with its sacreBLEU signature and how training ended from the run
folder (`preprocess.json`, `metrics.jsonl`; the checkpoint's folder, or `--run`); test scores with
their signatures from `seq2seq evaluate` output (`--bleu-file`). No number is made up: what is not
recorded is said to be unknown. The licence stays the user's to fill in (`license: other`) unless
`--license` gives it. facts.py reads what the files record; hub.py stages the card with the model
and uploads them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CorpusError
from ..text import read_capped

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .facts import ModelFacts

PACKAGE = "seq2seq-nmt"  # pyproject.toml's name (the import name is seq2seq)
# A score line of `seq2seq evaluate`: NAME = VALUE [details]  (SIGNATURE), sacreBLEU's signatures start with nrefs:
MAX_SCORES_BYTES = 1 << 20  # `seq2seq evaluate`'s output is a few lines: a larger file is refused unread
_SCORE = re.compile(r"^(BLEU|chrF\S*|TER) = (-?\d+(?:\.\d+)?)(?:\s.*)?\s\((nrefs:[^()]*)\)\s*$")
_SCORE_NAME = re.compile(r"^\s*(BLEU|chrF\S*|TER)\s*=")  # a score line, signed or not


@dataclass(frozen=True)
class CardOptions:
    """What the model card takes besides the model file."""

    license: str = "other"  # the card's licence field; other: left for the user to fill in
    bleu_files: tuple[str, ...] = ()  # [NAME=]FILE: `seq2seq evaluate` output on the test set NAME
    run: str | Path | None = None  # the model's run folder (None: the model file's folder, if it is one)


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
            data = read_capped(path_, MAX_SCORES_BYTES, CorpusError, "scores file", "--bleu-file")
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
