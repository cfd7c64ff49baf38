"""The training loop: batches, updates, clipping, validation, schedule, checkpoints, resume.

The objective itself (teacher forcing, truncated BPTT) lives in objective.py. A run is resumable
from last.pt exactly: weights, optimiser, schedule and stopping counters, the position in the
epoch's batch order (which is a function of seed and epoch) and the torch RNG state.
Multi-process training (torchrun, DistributedDataParallel) follows the contract in distributed.py.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import ModelFile, ResumeState, read_resume, write_model_checkpoint
from .config import (
    DataConfig,
    DecodeConfig,
    ModelConfig,
    TrainConfig,
    from_dict,
    to_dict,
)
from .data import Batch, EncodedSplit, collate, make_batches
from .distributed import Dist
from .hardware import Precision, adam, cpu_summary, resolve_device, resolve_precision, set_tf32, set_threads
from .metrics import score
from .model import Seq2Seq, count_parameters
from .objective import TrainingLoss, forward_backward, validation_loss
from .preprocess import Prepared, ensure_prepared
from .process import StopSignal, limit_onednn_cache, pin_mmap_threshold, process_start
from .runfiles import RunFiles
from .schedule import TrainState, after_validation, budget_progress, learning_rate
from .shortlist import build_lexicon
from .translate import search

log = logging.getLogger("seq2seq")


def _validate(
    model: Seq2Seq, prepared: Prepared, cfg: TrainConfig, device: torch.device, precision: str
) -> dict[str, float]:
    """Validation loss/perplexity, and BLEU of greedy translations (in `precision`) of the first sentences."""
    val_split = prepared.cfg.val_split
    loss = validation_loss(model, prepared.split(val_split), cfg.max_tokens, device)
    result = {"val_loss": round(loss, 5), "val_ppl": round(math.exp(min(loss, 50)), 3)}
    if cfg.valid_bleu_sentences:
        src_text, ref_text = prepared.text(val_split, limit=cfg.valid_bleu_sentences)
        greedy = DecodeConfig(beam_size=1, batch_size=128, precision=precision)
        hyps = search(model, prepared.src_tok.encode(src_text), greedy)
        result["val_bleu"] = round(score(prepared.tgt_tok.decode([h[0].ids for h in hyps]), ref_text).bleu, 3)
    model.train()
    return result


@dataclass
class TrainResult:
    """Where a training run ended."""

    run: Path
    steps: int
    best: float | None
    stop_reason: str
    history: list[dict[str, Any]]
    rank: int = 0  # of the process returning it (multi-process training: all return, rank 0 reports)


class Trainer:
    """One training run in a run folder: set-up, the update loop, validation and checkpoints."""

    def __init__(
        self,
        prepared: Prepared,
        model_cfg: ModelConfig,
        cfg: TrainConfig,
        device: str = "cpu",
        progress: bool = True,
        started: float | None = None,
        dist: Dist | None = None,
    ) -> None:
        self.start = time.monotonic() if started is None else started  # the max_minutes clock
        self.seconds_before = 0.0  # wall clock of earlier sessions of a resumed run
        self.dist = dist or Dist()
        distributed.check(cfg, self.dist)
        self.prepared, self.cfg, self.dev = prepared, cfg, torch.device(device)
        self.progress = progress and self.dist.main
        self.precision: Precision = resolve_precision(cfg.precision, str(self.dev))  # HardwareError if it can't run
        torch.manual_seed(cfg.seed)
        self.model = Seq2Seq(model_cfg, len(prepared.src_tok), len(prepared.tgt_tok)).to(self.dev)
        self.net = distributed.wrap(TrainingLoss(self.model, cfg), self.dist, self.dev)  # DDP with > 1 process
        distributed.reseed(cfg.seed, self.dist)
        self.opt = adam(self.model.parameters(), cfg.lr, self.dev)  # one fused kernel for all params where possible
        self.scaler = torch.amp.GradScaler(self.dev.type, enabled=self.precision.name == "fp16")
        self.cfgs = {"data": prepared.cfg, "model": model_cfg, "train": cfg}
        self.files = RunFiles(prepared.run, write=self.dist.main)
        self.st = TrainState()
        self.train_split = prepared.split("train")
        self.lexicon = build_lexicon(self.train_split, len(prepared.src_tok), len(prepared.tgt_tok), seed=cfg.seed)
        self.val_seconds = 0.0

    def resume(self, reset_optimizer: bool = False) -> None:
        """Continue from last.pt: weights, optimiser, schedule, counters, data position, RNG."""
        path = self.files.run / "last.pt"
        saved, resume = read_resume(path)
        self.model.load_state_dict(saved.state_dict)
        self.st = TrainState(**resume.train_state)
        self.seconds_before = self.st.train_seconds
        if reset_optimizer:
            self.st.lr_scale, self.st.plateau = 1.0, 0
        else:
            self.opt.load_state_dict(resume.optimizer)
        if self.scaler.is_enabled() and resume.grad_scaler is not None:
            self.scaler.load_state_dict(resume.grad_scaler)
        self._restore_rng(resume)
        self.files.truncate(self.st.step)  # records of the lost steps are written again
        log.info(
            "resuming %s at update %d (epoch %d, batch %d)", path, self.st.step, self.st.epoch, self.st.batch_in_epoch
        )

    def update(self, batch: Batch, tokens: int | None = None) -> tuple[float, float] | None:
        """One optimiser step on this process's batch; (loss per token, pre-clip grad norm), or None if skipped.

        `tokens`: target tokens of the whole update, all ranks' batches (default: this batch's).
        """
        tokens = tokens or batch.n_tokens
        seconds = self._elapsed()
        if self.cfg.lr_schedule == "anneal" and self.cfg.max_minutes:
            seconds = self.dist.max(seconds)  # a time-based lr must be the same on every rank
        lr = learning_rate(self.cfg, self.st.step, self.st.lr_scale, budget_progress(self.cfg, self.st.step, seconds))
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        # W / tokens: DDP's average over the W ranks is then the mean per target token of the whole update.
        scale: float | torch.Tensor = self.dist.world / tokens
        if self.scaler.is_enabled():
            scale = self.scaler.scale(torch.tensor(scale, device=self.dev))  # times the fp16 loss scale
        with self.precision.autocast(self.dev.type):
            loss = forward_backward(self.model, batch, self.cfg, scale=scale, net=self.net)
        loss = self.dist.sum(loss)
        self.scaler.unscale_(self.opt)  # a no-op unless fp16
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_norm or math.inf).item()
        if not (math.isfinite(loss) and math.isfinite(norm)):
            self.scaler.update()  # fp16: a smaller loss scale next time
            self.st.nan_streak += 1
            self.st.skipped_steps += 1
            log.warning("update %d: non-finite loss or gradient (%s, %s): skipped", self.st.step + 1, loss, norm)
            return None
        self.scaler.step(self.opt)  # opt.step() (fp16: on the unscaled gradients)
        self.scaler.update()
        self.st.nan_streak = 0
        self.st.step += 1
        self.st.tokens += tokens
        return loss / tokens, norm

    def run(self) -> TrainResult:
        """Train until a stop condition; checkpoints at every validation and at the end."""
        cfg, st = self.cfg, self.st
        log.info("model: %s parameters; %d training pairs; run folder %s",
                 f"{count_parameters(self.model):,}", len(self.train_split), self.files.run)  # fmt: skip
        self.files.write_config(self.cfgs | {"precision": self.precision})
        self.files.log({"type": "hardware", "step": st.step, "device": str(self.dev), "precision": self.precision.name,
                        "requested": cfg.precision, "reason": self.precision.reason, "cpu": cpu_summary(),
                        "torch": torch.__version__, "threads": torch.get_num_threads()})  # fmt: skip
        bar = tqdm(total=cfg.max_steps or None, initial=st.step, desc="train", unit="step", disable=not self.progress)
        meter, saved_at, world, interrupted = _Meter(), st.step, self.dist.world, None
        stop = self._stop_reason(None) or self._early_stop()  # a resumed run may be finished already
        (stop,) = self.dist.agree(stop)
        self.model.train()
        with StopSignal() as signals:
            while stop is None and st.epoch < cfg.max_epochs:
                self.train_split = self._epoch_split(st.epoch)
                rng = np.random.default_rng([cfg.seed, st.epoch])
                batches = make_batches(self.train_split.src_lens, self.train_split.tgt_lens, cfg.max_tokens, rng)
                tgt_lens = self.train_split.tgt_lens
                while stop is None and st.batch_in_epoch + world <= len(batches):
                    shard = batches[st.batch_in_epoch : st.batch_in_epoch + world]  # one batch per rank
                    batch = collate(self.train_split, shard[self.dist.rank]).to(self.dev)
                    st.batch_in_epoch += world
                    tokens = distributed.update_tokens(tgt_lens, shard)
                    result = self.update(batch, tokens)
                    if result is None:
                        if st.nan_streak >= cfg.max_nan_steps:
                            stop = f"{st.nan_streak} non-finite losses in a row (last good checkpoint kept)"
                        continue
                    meter.add(tokens, result[0])
                    bar.update(1)
                    if st.step % cfg.log_every == 0:
                        self._log_train(meter, bar, result[1])
                    stop, interrupted = self.dist.agree(self._stop_reason(signals.caught), signals.caught)
                    if interrupted:
                        self.save(validated=False)
                    elif st.step % cfg.valid_every == 0 or stop:
                        early, caught = self.validate_and_save(), signals.caught  # a signal during validation
                        later, interrupted = self.dist.agree(self._stop_reason(caught), caught)
                        stop = early or stop or later
                    saved_at = st.step if stop or st.step % cfg.valid_every == 0 else saved_at
                if st.batch_in_epoch + world > len(batches):
                    st.epoch, st.batch_in_epoch = st.epoch + 1, 0
        bar.close()
        stop = stop or f"max_epochs={cfg.max_epochs}"
        if st.step > saved_at and st.nan_streak == 0:  # ended between validations: keep what was learned
            self.validate_and_save()
        self.files.log({"type": "stop", "step": st.step, "reason": stop, "elapsed_s": self._elapsed()})
        if interrupted or signals.caught:
            log.warning("%s: saved %s; continue with the same command plus --resume (RESUME=1 for scripts/train.sh)",
                        interrupted or signals.caught, self.files.run / "last.pt")  # fmt: skip
        log.info("stopped after %d updates: %s", st.step, stop)
        return TrainResult(self.files.run, st.step, st.best, stop, st.history, self.dist.rank)

    def _epoch_split(self, epoch: int) -> EncodedSplit:
        """The training pairs of an epoch: the cached encoding, or with `subword_alpha` > 0 a fresh
        sampled segmentation of the text (subword regularisation), a function of (seed, epoch)."""
        if not self.cfg.subword_alpha:
            return self.train_split
        write = lambda: self.prepared.write_sampled_train(epoch, self.cfg.subword_alpha, self.cfg.seed)  # noqa: E731
        return EncodedSplit.load(self.dist.on_main(write))  # rank 0 encodes to disk, every rank maps it

    def _restore_rng(self, resume: ResumeState) -> None:
        """This rank's random state from last.pt (saved per rank; with another process count, fresh for ranks > 0)."""
        states = resume.rng
        if states and len(states) == self.dist.world:
            distributed.set_rng_state(states[self.dist.rank], self.dev)
            return
        if states and self.dist.main:
            log.warning("resuming %d-process training with %d processes: not bitwise the same run", len(states),
                        self.dist.world)  # fmt: skip
        if self.dist.main:
            distributed.set_rng_state(states[0] if states else {"cpu": resume.torch_rng}, self.dev)
        else:
            torch.manual_seed(self.cfg.seed + 1_000_003 * self.dist.rank + self.st.step)

    def _elapsed(self) -> float:
        """Wall-clock seconds of the run: earlier sessions plus this process since it started."""
        return round(self.seconds_before + time.monotonic() - self.start, 2)

    def _log_train(self, meter: _Meter, bar: tqdm, norm: float) -> None:
        loss, tok_s = meter.read()
        rec = {"type": "train", "step": self.st.step, "epoch": self.st.epoch, "loss": round(loss, 5),
               "lr": self.opt.param_groups[0]["lr"], "grad_norm": round(norm, 4), "tgt_tok_s": round(tok_s, 1),
               "tokens": self.st.tokens, "elapsed_s": self._elapsed()}  # fmt: skip
        self.files.log(rec)
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{rec['tgt_tok_s']:.0f}", lr=f"{rec['lr']:.2g}")

    def _stop_reason(self, signal_name: str | None) -> str | None:
        if signal_name:
            return f"interrupted by {signal_name}"
        if self.cfg.max_steps and self.st.step >= self.cfg.max_steps:
            return f"max_steps={self.cfg.max_steps}"
        if self.cfg.max_minutes and self._elapsed() + self.val_seconds >= 60 * self.cfg.max_minutes:
            # leave time for the final validation and save
            return f"max_minutes={self.cfg.max_minutes}"
        return None

    def validate_and_save(self) -> str | None:
        """Validate, update counters, log, write checkpoints; returns an early-stopping reason or None."""
        t0, cfg, st = time.monotonic(), self.cfg, self.st
        validate = lambda: _validate(self.model, self.prepared, cfg, self.dev, self.precision.name)  # noqa: E731
        result = self.dist.on_main(validate)  # the other ranks wait
        improved = after_validation(cfg, st, result)
        record = {"type": "valid", "step": st.step, "epoch": st.epoch, **result, "lr": self.opt.param_groups[0]["lr"],
                  "best": improved, "elapsed_s": self._elapsed()}  # fmt: skip
        st.history.append(record)
        self.files.log(record)
        self.save(validated=True, improved=improved)
        log.info("update %d: %s%s", st.step, "  ".join(f"{k}={v}" for k, v in result.items()), "  (best)" * improved)
        self.val_seconds = time.monotonic() - t0
        return self._early_stop()

    def _early_stop(self) -> str | None:
        if self.cfg.patience and self.st.bad_validations >= self.cfg.patience:
            return f"early stopping (no improvement in {self.cfg.patience} validations)"
        return None

    def _model_file(self) -> ModelFile:
        """The self-contained model part of a checkpoint: weights, tokenizers, configs, lexicon."""
        prepared, cfgs = self.prepared, self.cfgs
        return ModelFile(
            model_config=to_dict(cfgs["model"]),
            state_dict=self.model.state_dict(),
            src_spm=prepared.src_tok.model_proto,
            tgt_spm=prepared.tgt_tok.model_proto,
            src_lang=prepared.manifest["src"],
            tgt_lang=prepared.manifest["tgt"],
            data_config=to_dict(cfgs["data"]),
            train_config=to_dict(cfgs["train"]),
            step=self.st.step,
            lexicon=self.lexicon.to_payload(),
        )

    def save(self, validated: bool, improved: bool = False) -> None:
        """last.pt (resumable), best.pt when improved, and the last `keep_checkpoints` step files (rank 0)."""
        rng = self.dist.gather(distributed.rng_state(self.dev))  # every rank's, for an exact resume
        if not self.dist.main:
            return
        run = self.files.run
        self.st.train_seconds = self._elapsed()
        weights = self._model_file()
        resume = ResumeState(
            optimizer=self.opt.state_dict(),
            train_state=asdict(self.st),
            rng=rng,
            torch_rng=torch.get_rng_state(),
            grad_scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
        )
        write_model_checkpoint(run / "last.pt", weights, resume)
        if improved:
            write_model_checkpoint(run / "best.pt", weights)  # no resume state
        if validated and self.cfg.keep_checkpoints:
            write_model_checkpoint(run / f"step{self.st.step:07d}.pt", weights)
            for old in sorted(run.glob("step[0-9]*.pt"))[: -self.cfg.keep_checkpoints]:
                old.unlink()


class _Meter:
    """Mean training loss per token and target tokens per second since the last reading."""

    def __init__(self) -> None:
        self.tokens, self.loss, self.since = 0, 0.0, time.monotonic()

    def add(self, tokens: int, loss_per_token: float) -> None:
        self.tokens += tokens
        self.loss += loss_per_token * tokens

    def read(self) -> tuple[float, float]:
        """(mean loss, tokens/s) over the window, then start a new window."""
        now = time.monotonic()
        result = self.loss / max(self.tokens, 1), self.tokens / max(now - self.since, 1e-9)
        self.tokens, self.loss, self.since = 0, 0.0, now
        return result


def train(
    data_dir: str | Path,
    src: str,
    tgt: str,
    run: str | Path,
    data_cfg: DataConfig | None = None,
    model_cfg: ModelConfig | None = None,
    cfg: TrainConfig | None = None,
    resume: bool = False,
    reset_optimizer: bool = False,
    overwrite: bool = False,
    device: str = "cpu",
    progress: bool = True,
    started: float | None = None,
) -> TrainResult:
    """Train in run folder `run` (prepared from `data_dir` if needed); writes best.pt and last.pt there.

    `max_minutes` counts wall clock from `started` (a `time.monotonic()` value; default: now, so data
    loading counts) over all sessions of a resumed run. A run folder that already holds last.pt is
    continued with `resume`, started again (its checkpoints and log deleted) with `overwrite`, and
    otherwise left alone with an error.
    """
    started = time.monotonic() if started is None else started
    cfg = cfg or TrainConfig()
    set_threads(cfg.threads)
    limit_onednn_cache(cfg.onednn_cache)  # before the first oneDNN primitive (the precision probe makes one)
    pin_mmap_threshold(cfg.malloc_mmap_kib)
    dist, dev = distributed.setup(resolve_device(device))  # joins torchrun's processes; alone otherwise
    try:
        if dev.type == "cuda":
            set_tf32(cfg.tf32)
        resolve_precision(cfg.precision, str(dev))  # a precision this machine cannot run stops before any write
        prepare = lambda: ensure_prepared(data_dir, src, tgt, run, data_cfg or DataConfig(), cfg.seed)  # noqa: E731
        prepared = dist.main_first(prepare)  # rank 0 preprocesses if needed, the others then load
        trainer = Trainer(prepared, model_cfg or ModelConfig(), cfg, str(dev), progress, started, dist)
        if resume:
            trainer.resume(reset_optimizer)
        else:
            trainer.files.clear(overwrite)
        return trainer.run()
    finally:
        distributed.teardown(dist)


__all__ = ["TrainResult", "TrainState", "forward_backward", "from_dict", "process_start", "train"]
