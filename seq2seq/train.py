"""Setting a training run up and running it: `train` reads the run's settings (`run_settings`: fresh,
or from last.pt on a resume), applies the process settings, locks and prepares the run folder, builds
the `Updater` and hands over to the `Trainer` (trainer.py, the loop: updates, validation, checkpoints).

The objective itself (teacher forcing, truncated BPTT) lives in objective.py. Multi-process training
(torchrun, DistributedDataParallel) follows the contract in distributed.py.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import resume_configs
from .config import (
    ConfigError,
    ConfigKeyError,
    DataConfig,
    ModelConfig,
    TrainConfig,
    check_field_types,
    check_language_codes,
    refuse_ignored_train,
)
from .config_dict import Settings, from_dict, requested, to_dict
from .errors import CheckpointError
from .machine import process
from .machine.hardware import resolve_device, resolve_precision
from .machine.process import ProcessSettings
from .metrics import bleu_metric
from .preprocess import ensure_prepared
from .runfiles import RunFiles, check_lengths, check_resume_request, check_val_split, run_log
from .runlock import RunLock
from .scale import distributed
from .trainer import RESUME_ADVICE, Trainer, TrainResult
from .updater import Updater

__all__ = ["RunOptions", "RunSpec", "TrainResult", "run_settings", "train"]


@dataclass(frozen=True)
class RunSpec:
    """What a run trains on and where: `{split}.{src,tgt}` files in `data_dir`, prepared into (and
    trained in) the run folder `run`."""

    data_dir: str | Path
    src: str
    tgt: str
    run: str | Path

    def __post_init__(self) -> None:
        check_language_codes(self.src, self.tgt)


@dataclass(frozen=True)
class RunOptions:
    """How `train` starts a run, and where it runs it."""

    resume: bool = False  # continue from RUN/last.pt
    reset_optimizer: bool = False  # with resume: a fresh optimiser and learning-rate schedule
    overwrite: bool = False  # start again in a run folder that holds a trained model (its checkpoints go)
    device: str = "cpu"  # cpu, cuda, cuda:N, or auto (a CUDA GPU if there is one)
    progress: bool = True  # a progress bar (rank 0)
    continue_with: str = RESUME_ADVICE  # what the warning after an interrupt says to do next

    def __post_init__(self) -> None:  # a flag the run would ignore is refused
        check_field_types(self)  # `device=None` was a torch traceback of many lines
        if self.reset_optimizer and not self.resume:
            raise ConfigError("--reset-optimizer applies to a resumed run only: add --resume, or drop it")
        if self.resume and self.overwrite:
            raise ConfigError("--resume continues RUN/last.pt and --overwrite starts the run again: pass one of them")


def run_settings(
    run: Path,
    data_cfg: Settings[DataConfig],
    model_cfg: Settings[ModelConfig],
    cfg: Settings[TrainConfig],
    resume: bool,
    device_type: str = "cpu",
) -> tuple[dict[str, Any], ModelConfig, TrainConfig]:
    """What a run trains with: (the data settings asked for, the model config, the training config).

    Each argument is a config (every field asked for), a dict of the fields asked for (the CLI: the
    flags given over the --config table), or None (none). A fresh run takes the defaults for the rest;
    its data settings are completed by the run folder's preparation (`ensure_prepared`). A resumed run
    reads its own configs from last.pt: the training fields asked for change them, while a model or
    data field asked for with another value than the run's is refused (`check_resume_request`). A training
    field asked for that a run on a `device_type` device would ignore is refused (`refuse_ignored_train`)."""
    data, model, asked = requested(DataConfig, data_cfg), requested(ModelConfig, model_cfg), requested(TrainConfig, cfg)
    default = to_dict(TrainConfig())  # a whole config, or a run's config.toml, names every field: those off their
    given = {k: v for k, v in asked.items() if v != default[k]}  # defaults are the ones asked for
    if not resume:
        train_cfg = from_dict(TrainConfig, asked)
        refuse_ignored_train(train_cfg, given, device_type)
        return data, from_dict(ModelConfig, model), train_cfg
    last = Path(run) / "last.pt"
    saved = resume_configs(last)
    for kind, name in ((DataConfig, "data"), (ModelConfig, "model")):
        try:  # the file's own settings first: an error there names last.pt, not a flag
            from_dict(kind, saved[name])
        except ConfigError as err:
            raise CheckpointError(f"{last}: damaged {name} settings ({err}); resume from another checkpoint, or "
                                  "start again with --overwrite") from None  # fmt: skip
    check_resume_request(last, saved, data, model)
    try:  # a training flag may override a saved value that newer rules refuse
        train_cfg = from_dict(TrainConfig, {**saved["train"], **asked})
    except ConfigError as err:
        try:
            from_dict(TrainConfig, saved["train"])
        except ConfigError as saved_err:  # the file's own value: say so, and that a flag can set it
            raise CheckpointError(f"{last}: its train settings are refused ({saved_err}): give that setting's flag "
                                  "to override it, or start again with --overwrite") from None  # fmt: skip
        raise err from None
    refuse_ignored_train(train_cfg, given, device_type)
    return to_dict(from_dict(DataConfig, saved["data"])), from_dict(ModelConfig, saved["model"]), train_cfg


def train(
    spec: RunSpec,
    data_cfg: Settings[DataConfig] = None,
    model_cfg: Settings[ModelConfig] = None,
    cfg: Settings[TrainConfig] = None,
    options: RunOptions | None = None,
) -> TrainResult:
    """Train in run folder `spec.run` (prepared from `spec.data_dir` if needed); writes best.pt and last.pt there.

    The configs: a config, a dict of the fields asked for, or None; a resume reads the run's own from
    last.pt and refuses a changed model or data setting (`run_settings`). A prepared folder whose data
    settings, corpus files or source differ from those asked for is refused, or with `options.overwrite`
    prepared again (`ensure_prepared`).

    First of all the process settings of `cfg` are applied (threads, TF32, oneDNN cache, malloc).
    `max_minutes` counts the wall clock of training, from the loop's start (start-up, preprocessing
    and building the model are not counted; validations and saves are) over all sessions of a
    resumed run. A run folder that already holds last.pt is continued with `options.resume`,
    started again (its checkpoints and log deleted) with `options.overwrite`, and otherwise left
    alone with an error. Rank 0 locks the run folder (RUN/.lock) before anything in it is read or
    deleted: another process training or preprocessing there is a RunFolderError naming its PID
    (runlock.py).
    """
    opts = options or RunOptions()
    for name, given, kind in (("spec", spec, RunSpec), ("options", opts, RunOptions)):
        if not isinstance(given, kind):  # a dict or a tuple: an AttributeError deep in the run before
            raise ConfigKeyError(f"{name} must be a {kind.__name__}, got {type(given).__name__}")
    device = resolve_device(opts.device)
    settings = (data_cfg, model_cfg, cfg)
    data_asked, model_cfg, cfg = run_settings(spec.run, *settings, opts.resume, device.type)  # before any write
    cfg = process.decide_shape_buckets(cfg, device.type)  # auto: decided once, kept in last.pt
    process.apply(ProcessSettings.for_training(cfg, device.type))  # before the first oneDNN primitive
    dist, dev = distributed.setup(device)  # joins torchrun's processes; alone otherwise
    lock, failed = RunLock(spec.run), True
    try:
        dist.on_main(lambda: distributed.check(cfg, dist))  # what several processes cannot train: before any write
        choice = lambda: resolve_precision(cfg.precision, str(dev)).name  # noqa: E731  (a precision it cannot run:
        distributed.check_same_choices(dist, choice, cfg.shape_buckets)  # refused, on every process, before any write)
        bleu_metric(cfg.bleu_tokenize)  # ... and a BLEU tokenizer whose package is missing
        dist.on_main(lock.acquire)  # one writer per run folder: rank 0 (a refusal is raised on every rank)
        prepare = lambda: ensure_prepared(spec.data_dir, spec.src, spec.tgt, spec.run, data_asked,  # noqa: E731
                                          overwrite=opts.overwrite, resume=opts.resume)  # fmt: skip
        prepared = dist.main_first(prepare)  # rank 0 preprocesses if needed, the others then load
        check_val_split(prepared)  # before the first update, not at the first validation
        check_lengths(prepared, cfg)
        updater = Updater.build(model_cfg, prepared.vocab, cfg, dev, dist)
        files = RunFiles(prepared.run, write=dist.main, tensorboard=cfg.tensorboard)
        trainer = Trainer(prepared, updater, files, opts.progress, opts.continue_with)
        if opts.resume:
            trainer.resume(opts.reset_optimizer)
        else:
            trainer.files.clear(opts.overwrite)
        with run_log(prepared.run, write=dist.main):
            result = trainer.run()
        failed = False
        return result
    finally:
        lock.release()
        # The DDP model holds the gloo process group and sits in reference cycles: freed here, while the interpreter
        # runs, not by the last collection at exit, where gloo's thread freeing a broadcast's tensors could not take
        # the GIL and aborted the process (SIGABRT after a finished run; seen under load, 2026-12-06)
        updater = trainer = None  # noqa: F841
        gc.collect()
        distributed.teardown(dist, failed)
