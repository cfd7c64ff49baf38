"""The files of a training run: its checkpoints (last.pt to resume from, best.pt, the last K
stepNNNNNNN.pt), the metrics log and the resolved config, which rank 0 of a multi-process run
writes; and what its checkpoints must agree with in its prepared folder (tokenizers, data settings,
a validation split) before training starts or resumes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import write_text_atomic
from .checkpoint import CheckpointError, ModelFile, ResumeState, read_resume, write_model_checkpoint
from .config import ConfigError, DataConfig, ModelConfig, TrainConfig
from .config_dict import changed_fields, from_dict, to_dict
from .config_toml import toml_text
from .errors import LOG_FORMAT, TIME_FORMAT, CorpusError, RunFolderError
from .prepared import MANIFEST, Prepared
from .progress import TrainState, selection_metric
from .tokenizer import Tokenizer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .model import Seq2Seq


@contextlib.contextmanager
def run_log(run: Path, write: bool = True) -> Iterator[None]:
    """Copy the `seq2seq` log (INFO and up, with timestamps) to RUN/train.log while training
    (appended to on resume), whatever the terminal shows (`--quiet`, progress bars)."""
    if not write:
        yield
        return
    logger = logging.getLogger("seq2seq")
    handler = logging.FileHandler(run / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, TIME_FORMAT))
    handler.setLevel(logging.INFO)
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)  # the file gets INFO; a terminal handler may still show less
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


def tensorboard_writer(folder: Path | None = None, purge_step: int | None = None) -> Any:
    """torch's TensorBoard SummaryWriter for `folder` (None: only check that it can be made); without
    the tensorboard package a ConfigError. `purge_step`: events from that step on, written by a run
    that was killed before its next checkpoint, are hidden (the resumed run writes them again)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter(str(folder), purge_step=purge_step) if folder else None


class RunFiles:
    """Files of a run folder: metrics log, resolved config, checkpoints.

    With `write=False` (ranks > 0 of multi-process training) nothing is written; checks still run.
    """

    def __init__(self, run: Path, write: bool = True, tensorboard: bool = False) -> None:
        self.run = run
        self.metrics = run / "metrics.jsonl"
        self.last = run / "last.pt"
        self.write = write
        self.tensorboard, self.events = tensorboard and write, None
        self.resumed_at: int | None = None  # the step a resumed run continues from (`truncate`)
        if tensorboard:  # on every process (rank 0 alone refusing left the others waiting for it)
            tensorboard_writer()  # no tensorboard package: a ConfigError before any training

    def save(self, weights: ModelFile, resume: ResumeState, best: bool = False, keep: int = 0) -> None:
        """last.pt (resumable); best.pt too if `best`; with `keep` > 0 also stepNNNNNNN.pt, of which
        the last `keep` are kept. last.pt comes last: a run stopped before it resumes from the previous
        last.pt and writes the others again (last.pt already records the new best, so best.pt written
        after it would stay stale after a stop between the two)."""
        if not self.write:
            return
        if best:
            write_model_checkpoint(self.run / "best.pt", weights)  # no resume state
        if keep > 0:
            write_model_checkpoint(self.run / f"step{weights.step:07d}.pt", weights)
        write_model_checkpoint(self.last, weights, resume)
        if keep > 0:
            for old in self.step_files()[:-keep]:
                old.unlink()

    def step_files(self) -> list[Path]:
        """The stepNNNNNNN.pt files, oldest first (by number: step10000000.pt comes after step9999999.pt)."""
        steps = [(int(p.stem[4:]), p) for p in self.run.glob("step[0-9]*.pt") if p.stem[4:].isdigit()]
        return [p for _, p in sorted(steps)]

    def read_resume(self) -> tuple[ModelFile, ResumeState]:
        """The model and training state in last.pt."""
        return read_resume(self.last)

    def log(self, record: dict[str, Any]) -> None:
        if not self.write:
            return
        with open(self.metrics, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard and record["type"] in ("train", "valid"):  # the same numbers, as scalars
            purge = None if self.resumed_at is None else self.resumed_at + 1
            self.events = self.events or tensorboard_writer(self.run / "tensorboard", purge)
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self.events.add_scalar(f"{record['type']}/{key}", value, record["step"])
            self.events.flush()

    def clear(self, overwrite: bool) -> None:
        """Start afresh: refuse if a trained model is here (unless `overwrite`), else drop old outputs."""
        last = self.last
        if last.exists() and not overwrite:
            raise CheckpointError(
                f"{self.run} already holds a trained model ({last}); pass --resume to continue it "
                "or --overwrite to start again"
            )
        if not overwrite and (kept := [p for p in [self.run / "best.pt", *self.step_files()] if p.exists()]):
            raise CheckpointError(
                f"{self.run} holds trained models ({', '.join(p.name for p in kept)}) but no last.pt to resume "
                "from; a fresh run would replace them: pass --overwrite to start again, or use another --out folder"
            )
        if not self.write:
            return
        for old in [last, self.run / "best.pt", self.metrics, self.run / "train.log", *self.step_files()]:
            old.unlink(missing_ok=True)
        shutil.rmtree(self.run / "tensorboard", ignore_errors=True)

    def truncate(self, step: int) -> None:
        """Drop records after `step` (written by a run that was killed before its next checkpoint), and
        the temporary file of a checkpoint write that a kill interrupted (the checkpoint itself is whole:
        checkpoints are renamed into place only once written). TensorBoard's events of the lost steps
        are hidden when the first new event is written."""
        self.resumed_at = step
        if self.write:
            for tmp in self.run.glob(".*.pt.*.tmp"):
                tmp.unlink(missing_ok=True)
        if self.write and self.metrics.is_file():
            records, lines = [], self.metrics.read_bytes().splitlines()
            for n, raw in enumerate(lines, 1):
                try:
                    rec = json.loads(raw.decode("utf-8")) if raw.strip() else None
                except (UnicodeDecodeError, json.JSONDecodeError):
                    if n == len(lines):  # the last line, cut short by the kill (a character's bytes too)
                        continue
                    raise RunFolderError(f"{self.metrics}:{n}: not a JSON record; remove that line") from None
                at = rec.get("step") if isinstance(rec, dict) else None
                if rec is not None and (isinstance(at, bool) or not isinstance(at, (int, float)) or at != at):
                    raise RunFolderError(f"{self.metrics}:{n}: not a record of seq2seq train (no whole step); remove "
                                         "that line")  # fmt: skip
                records += [rec] if rec is not None else []
            keep = [r for r in records if r["step"] <= step and r.get("type") != "stop"]
            write_text_atomic(self.metrics, "".join(json.dumps(r) + "\n" for r in keep))  # a kill keeps the old

    def write_config(self, cfgs: dict[str, Any]) -> None:
        """config.json (every setting, and the precision chosen with its reason) and config.toml (the
        [data] [model] [train] tables: `seq2seq train --config RUN/config.toml` runs the same again)."""
        if not self.write:
            return
        text = json.dumps({k: to_dict(v) for k, v in cfgs.items()}, indent=2)
        write_text_atomic(self.run / "config.json", text + "\n")
        tables = {name: cfgs[name] for name in ("data", "model", "train")}
        header = f"The settings of {self.run}: seq2seq train --config {self.run / 'config.toml'} ... trains it again."
        write_text_atomic(self.run / "config.toml", toml_text(tables, header))


# The fields of train and valid records that are numbers (or null): the curves `seq2seq plot` draws and more.
NUMBERS = ("epoch", "loss", "lr", "grad_norm", "tgt_tok_s", "tokens", "elapsed_s", "val_loss", "val_ppl", "val_bleu")


def read_metrics(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Records of a metrics.jsonl by type, sorted by step; after a resume the latest record of a step wins."""
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"{path}: no such file (is this a run folder written by `seq2seq train`?)")
    by_type: dict[str, dict[int, dict[str, Any]]] = {}
    for n, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            rec = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except UnicodeDecodeError:
            raise RunFolderError(f"{path}:{n}: not UTF-8 text") from None
        except json.JSONDecodeError as err:
            raise RunFolderError(f"{path}:{n}: not JSON ({err.msg})") from None
        if isinstance(rec, dict) and "type" in rec and "step" in rec:
            step = rec["step"]
            if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) or step % 1:
                raise RunFolderError(f"{path}:{n}: step is {step!r}, not a whole number")
            if bad := [k for k in NUMBERS if k in rec and type(rec[k]) not in (int, float, type(None))]:
                raise RunFolderError(f"{path}:{n}: {bad[0]} is {rec[bad[0]]!r}, not a number")
            by_type.setdefault(str(rec["type"]), {})[int(step)] = rec
    return {kind: [recs[s] for s in sorted(recs)] for kind, recs in by_type.items()}


def check_resume_request(
    last: Path, saved: dict[str, dict[str, Any]], data: dict[str, Any], model: dict[str, Any]
) -> None:
    """A resumed run keeps the model and data settings it was trained with (`saved`, from last.pt):
    asking for another value of one (a flag, a [model] or [data] key of --config) is a CheckpointError
    naming each such field with both values, before anything is written. Asking for the same value is fine."""
    for name, cls, asked in (("model", ModelConfig, model), ("data", DataConfig, data)):
        if changed := changed_fields(to_dict(from_dict(cls, saved[name])), asked):
            raise CheckpointError(
                f"{last} was trained with other {name} settings than asked ({', '.join(changed)}): a resumed run "
                "keeps its model and data settings; leave those flags out (the run's own are used), or start again "
                "with --overwrite"
            )


def check_resumable(saved: ModelFile, prepared: Prepared, last: Path) -> None:
    """A checkpoint continues only on the tokenizers and data settings it was trained with: a run folder
    prepared again since (other SentencePiece models, other filters) is a CheckpointError naming what differs."""
    run, problems = prepared.run, []
    sides = [(name, _pieces(old), tok) for name, old, tok in (("source", saved.src_spm, prepared.src_tok),
             ("target", saved.tgt_spm, prepared.tgt_tok)) if old != tok.model_proto]  # fmt: skip
    if sides:
        which = "; ".join(f"{name}: {old} pieces then, {len(new)} now" for name, old, new in sides)
        problems.append(f"were trained with other SentencePiece models than {run}/spm.*.model now holds ({which})")
    then, now = to_dict(from_dict(DataConfig, saved.data_config)), to_dict(prepared.cfg)
    if changed := [f"{key} {then[key]!r} then, {now[key]!r} now" for key in now if then[key] != now[key]]:
        problems.append(f"were trained on data prepared with other settings than {run}/{MANIFEST} records "
                        f"({', '.join(changed)})")  # fmt: skip
    if problems:
        raise CheckpointError(
            f"{last} and the run's other checkpoints {' and '.join(problems)}: {run} was prepared again since; "
            "resume needs the preparation it was trained on: start again with --overwrite, or prepare the new "
            "data into another --out folder"
        )


BATCH_ORDER = ("max_tokens", "seed", "shape_buckets", "subword_alpha")  # what an epoch's batches are made from


def check_resume_state(
    last: Path,
    saved_train: dict[str, Any],
    cfg: TrainConfig,
    st: TrainState,
    epoch_batches: Callable[[TrainConfig], int],
    world: int = 1,
) -> None:
    """A resumed run's settings must keep what its saved state counts in: the metric `st.best` holds
    (another would never count as better, so best.pt would freeze and early stopping fire), and, in the
    middle of an epoch, the settings its batches were made with (`batch_in_epoch` counts batches of that
    list, `epoch_batches(settings)` long: another list would skip or repeat pairs; an epoch whose updates are
    all done may go on with others). Else a ConfigError naming both values."""
    kept = {k: saved_train[k] for k in (*BATCH_ORDER, "best_metric", "valid_bleu_sentences") if k in saved_train}
    try:  # the saved values of what the state counts in, beside today's others (a saved value newer rules refuse
        then = dataclasses.replace(cfg, **kept)  # elsewhere, and a flag overrides, is no concern here)
    except ConfigError:  # one of these refused now: the flag that overrides it was given on purpose
        return
    was, now = selection_metric(then), selection_metric(cfg)
    if st.best is not None and was != now:
        raise ConfigError(f"{last} picks best.pt by the validation {was} (--best-metric {then.best_metric}, "
                          f"--valid-bleu-sentences {then.valid_bleu_sentences}); these flags pick by the {now}, "
                          f"against which no later validation would count as best: keep them as they were, or "
                          "start a new run")  # fmt: skip
    changed = [k for k in BATCH_ORDER if getattr(then, k) != getattr(cfg, k)]
    if st.batch_in_epoch and changed and st.batch_in_epoch + world <= epoch_batches(then):
        flags = lambda c: ", ".join(f"--{k.replace('_', '-')} {getattr(c, k)}" for k in changed)  # noqa: E731
        raise ConfigError(f"{last} stopped at batch {st.batch_in_epoch} of epoch {st.epoch}, whose batches were made "
                          f"with {flags(then)}; with {flags(cfg)} the rest of the epoch would skip or repeat pairs: "
                          "resume with the same values, or start again with --overwrite")  # fmt: skip


def _pieces(spm_model: bytes) -> str:
    """How many pieces a checkpoint's SentencePiece model has ("an unreadable number of" when it is damaged)."""
    try:
        return f"{len(Tokenizer(spm_model)):,}"
    except (RuntimeError, OSError, ValueError, TypeError):
        return "an unreadable number of"


def check_val_split(prepared: Prepared) -> None:
    """Training validates on the val split: it must have been prepared and hold pairs after cleaning."""
    cfg, m = prepared.cfg, prepared.manifest
    name, files = cfg.val_split, f"{cfg.val_split}.{m['src']}/{cfg.val_split}.{m['tgt']}"
    if name not in m["splits"]:
        problem = f"was not prepared: {m['data_dir']} has no {files}"
    elif not m["splits"][name]:
        problem = f"of {m['data_dir']} ({files}) has no non-empty sentence pairs after cleaning"
    else:
        return
    raise CorpusError(
        f"validation split {name!r} {problem}, and training validates on it: write those files, or name another "
        f"split with --val-split NAME, then prepare {prepared.run} again (`seq2seq preprocess`)"
    )


def check_lengths(prepared: Prepared, cfg: TrainConfig) -> None:
    """Settings the training pairs' lengths make pointless, refused before any update: a `max_tokens` below the
    widest pair (every batch of it would be that pair alone, over the budget), and truncated BPTT in chunks as
    long as the longest target (EOS included) or longer, which is full BPTT under another name. With subword
    sampling the lengths vary by epoch, so neither is checked."""
    if cfg.subword_alpha:
        return
    split = prepared.split("train")
    src, tgt = int(split.src_lens.max(initial=0)) + 1, int(split.tgt_lens.max(initial=0)) + 1  # + EOS / BOS
    if cfg.max_tokens < max(src, tgt):
        raise ConfigError(f"max_tokens {cfg.max_tokens} is below the widest training pair ({max(src, tgt)} pieces "
                          "with EOS): such a pair would make a batch alone, over the budget; raise max_tokens or "
                          "prepare with a smaller max_len")  # fmt: skip
    if cfg.tbptt >= tgt:
        raise ConfigError(
            f"tbptt {cfg.tbptt} would be ignored: the longest training target has {tgt} steps (EOS "
            f"included), so chunks of {cfg.tbptt} are full BPTT; use a smaller tbptt, or leave it out"
        )


def model_file(prepared: Prepared, model: Seq2Seq, cfg: TrainConfig, step: int) -> ModelFile:
    """The self-contained model part of a checkpoint: weights, tokenizers, configs."""
    return ModelFile(
        model_config=to_dict(model.cfg),
        state_dict=model.state_dict(),
        src_spm=prepared.src_tok.model_proto,
        tgt_spm=prepared.tgt_tok.model_proto,
        src_lang=prepared.manifest["src"],
        tgt_lang=prepared.manifest["tgt"],
        data_config=to_dict(prepared.cfg),
        train_config=to_dict(cfg),
        step=step,
    )
