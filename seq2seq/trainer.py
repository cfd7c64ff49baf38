"""The training loop: `Trainer` composes the pieces of a run with explicit inputs. `Updater` (updater.py)
does one optimiser step; `RunFiles` (runfiles.py) keeps checkpoints, their pruning and the metrics
records; progress.py holds the counters, stop rules and learning rate; validation (`_validate`) scores
the model on the val split. Whatever decides control flow is agreed by all ranks (distributed.py).

A run is resumable from last.pt exactly: weights, optimiser, schedule and stopping counters, the
position in the epoch's batch order (a function of seed and epoch: `epoch_split`, `make_batches`) and
the torch RNG state (`restore_rng`). Setting a run up (its configs, lock and preparation) is train.py's.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .batches import collate, make_batches
from .checkpoint import ResumeState, load_weights
from .config import DecodeConfig, TrainConfig
from .errors import CheckpointError, ConfigError, DivergedError
from .machine.hardware import cpu_summary
from .machine.process import StopSignal
from .metrics import bleu_signature, score
from .model import Seq2Seq, count_parameters
from .objective import validation_loss
from .prepared import EncodedSplit, Prepared
from .progress import (
    Clock,
    TrainState,
    after_update,
    after_validation,
    bar_total,
    budget_progress,
    early_stop,
    growth_stop,
    learning_rate,
    nan_stop,
    saved_state,
    selection_metric,
    stop_reason,
)
from .runfiles import RunFiles, check_resumable, check_resume_state, model_file
from .scale import distributed
from .scale.distributed import Dist
from .search import search
from .translation.torch_engine import TorchEngine

if TYPE_CHECKING:
    from pathlib import Path

    from .updater import Updater

log = logging.getLogger("seq2seq")
RESUME_ADVICE = "the same command plus --resume (RESUME=1 for scripts/train.sh)"  # an interrupted run's next step
progress_log = logging.getLogger("seq2seq.progress")  # what the progress bar shows, for logs (train.log, nohup)


def _validate(
    model: Seq2Seq, prepared: Prepared, cfg: TrainConfig, device: torch.device, precision: str
) -> dict[str, float]:
    """Validation loss/perplexity, and BLEU of greedy translations (in `precision`) of the first sentences."""
    val_split = prepared.cfg.val_split
    loss = validation_loss(model, prepared.split(val_split), cfg.max_tokens, device, bool(cfg.bucket_tokens))
    result = {"val_loss": round(loss, 5), "val_ppl": round(math.exp(min(loss, 50)), 3)}
    if cfg.valid_bleu_sentences:
        src_text, ref_text = prepared.text(val_split, limit=cfg.valid_bleu_sentences)
        greedy = DecodeConfig(beam_size=1, batch_size=128, precision=precision)
        hyps = search(TorchEngine(model, greedy), prepared.src_tok.encode(src_text), greedy)
        hyp_text = prepared.tgt_tok.decode([h[0].ids for h in hyps])
        result["val_bleu"] = round(score(hyp_text, ref_text, cfg.bleu_tokenize, ("bleu",)).bleu, 3)
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

    @property
    def interrupted(self) -> bool:
        """Stopped by a signal (Ctrl-C, SIGTERM: `_stop`), not by a budget or early stopping."""
        return self.stop_reason.startswith("interrupted by ")


def epoch_split(
    prepared: Prepared, cfg: TrainConfig, epoch: int, dist: Dist | None = None, keep: int | None = None
) -> EncodedSplit:
    """The training pairs of an epoch: the cached encoding, or with `subword_alpha` > 0 a fresh
    sampled segmentation of the text (subword regularisation), a function of (seed, epoch); epoch `keep`'s
    (last.pt's) stays on disk."""
    if not cfg.subword_alpha:
        return prepared.split("train")
    write = lambda: prepared.write_sampled_train(epoch, cfg.subword_alpha, cfg.seed, keep)  # noqa: E731
    return EncodedSplit.load((dist or Dist()).on_main(write))  # rank 0 encodes to disk, every rank maps it


def restore_rng(resume: ResumeState, dist: Dist, device: torch.device, fresh_seed: int) -> None:
    """This rank's random state from last.pt (saved per rank); resumed with another number of
    processes, rank 0 takes the first saved state and the other ranks start from `fresh_seed`."""
    states = resume.rng
    if len(states) == dist.world:
        distributed.set_rng_state(states[dist.rank], device)
        return
    if dist.main:
        log.warning("resuming %d-process training with %d processes: not bitwise the same run", len(states),
                    dist.world)  # fmt: skip
        distributed.set_rng_state(states[0], device)
    else:
        torch.manual_seed(fresh_seed)


class Trainer:
    """The loop of one run, composing the pieces: updates by the `Updater`, checkpoints and records by
    `RunFiles`, counters, stop rules and the learning rate from progress.py, and validation. Whatever
    decides control flow is agreed by all ranks (`Dist.agree`); rank 0 alone validates and writes."""

    def __init__(
        self,
        prepared: Prepared,
        updater: Updater,
        files: RunFiles,
        progress: bool = True,
        continue_with: str = RESUME_ADVICE,
    ):
        self.prepared, self.up, self.files = prepared, updater, files
        self.continue_with = continue_with  # what the interrupt's warning says to do next
        self.clock = Clock(time.monotonic())  # the training clock (max_minutes): restarted by run()
        self.cfg, self.dist = updater.cfg, updater.dist
        self.progress = progress and self.dist.main
        self.st = TrainState()
        self.train_pairs = len(prepared.split("train"))
        self.meter = _Meter()
        self.val_seconds = 0.0  # the last validation's (a max_minutes run leaves room for one more)
        self.saved_at = 0  # the update of the last checkpoint
        self.checkpoint_step: int | None = None  # the update of last.pt in the run folder (None: there is none)
        self.checkpoint_epoch: int | None = None  # its epoch (subword sampling keeps that epoch's segmentation)
        self.diverged: str | None = None  # why the loss counts as diverged (non-finite, grown)
        self.interrupted: str | None = None  # a signal caught by any rank

    def resume(self, reset_optimizer: bool = False) -> None:
        """Continue from last.pt: weights, optimiser, schedule, counters, data position, RNG."""
        saved, resume = self.files.read_resume()
        check_resumable(saved, self.prepared, self.files.last)
        load_weights(self.files.last, self.up.model, saved.state_dict)  # a tensor of another shape: one line
        try:  # a training state, optimiser or RNG state of another shape (a newer seq2seq, an edited file)
            self.st = st = saved_state(resume.train_state)
            self.up.load(saved.state_dict, resume, reset_optimizer)
            seed = self.cfg.seed + 1_000_003 * self.dist.rank + st.step
            restore_rng(resume, self.dist, self.up.device, seed)
        except torch.OutOfMemoryError:  # a RuntimeError too, but no damage: the file is fine, the device full
            raise
        except (TypeError, ValueError, KeyError, RuntimeError) as err:
            why = " ".join(str(err).split())[:200]
            raise CheckpointError(f"{self.files.last}: damaged training state ({why}); resume from another "
                                  "checkpoint, or start again with --overwrite") from None  # fmt: skip
        with self.dist.alike():  # the same file and flags on every rank
            check_resume_state(self.files.last, saved.train_config, self.cfg, st, self._epoch_batches, self.dist.world)
        if reset_optimizer:
            st.lr_scale, st.plateau = 1.0, 0
        self.clock.before = st.train_seconds
        self.checkpoint_step, self.checkpoint_epoch = st.step, st.epoch
        self.dist.on_main(lambda: self.files.truncate(st.step))  # records of the lost steps are written again
        log.info("resuming %s at update %d (epoch %d, batch %d)", self.files.last, st.step, st.epoch, st.batch_in_epoch)

    def run(self) -> TrainResult:
        """Train until a stop condition; checkpoints at every validation and at the end."""
        cfg, st = self.cfg, self.st
        self._log_start()
        self.clock.started = time.monotonic()  # max_minutes counts training: from here, over resumed sessions
        bar = tqdm(total=bar_total(cfg, st.step, self.clock.elapsed()), initial=st.step, desc="train", unit="step",
                   disable=None if self.progress else True)  # only on a terminal  # fmt: skip
        self.meter, self.saved_at = _Meter(), st.step
        early = None
        if st.step and st.step % cfg.valid_every == 0 and all(r["step"] != st.step for r in st.history):
            early = self.validate_and_save()  # interrupted on a validation's update: that validation, as it would have
        (stop,) = self.dist.agree(self._stop(None) or early or early_stop(cfg, st))  # a resumed run may be finished
        self.up.model.train()
        with StopSignal() as signals:
            while stop is None and st.epoch < cfg.max_epochs:
                stop = self._epoch(signals, bar)
        bar.close()
        return self._finish(stop or f"max_epochs={cfg.max_epochs}", signals.caught)

    def _batches(self, cfg: TrainConfig, keep: int | None) -> tuple[EncodedSplit, list[np.ndarray]]:
        """Epoch `self.st.epoch`'s pairs and batch list under the settings `cfg` (a function of seed and epoch);
        `keep`: the epoch whose sampled segmentation stays on disk (`epoch_split`)."""
        split = epoch_split(self.prepared, cfg, self.st.epoch, self.dist, keep)
        rng = np.random.default_rng([cfg.seed, self.st.epoch])
        return split, make_batches(split.src_lens, split.tgt_lens, cfg.max_tokens, rng, bool(cfg.bucket_tokens))

    def _epoch_batches(self, cfg: TrainConfig) -> int:
        """How many batches the current epoch has under the settings `cfg` (a resume's check)."""
        return len(self._batches(cfg, self.st.epoch)[1])

    def _epoch(self, signals: StopSignal, bar: tqdm) -> str | None:
        """Updates on the epoch's batches, from where the run left off, until a stop or the epoch's end."""
        cfg, st, world = self.cfg, self.st, self.dist.world
        split, batches = self._batches(cfg, self.checkpoint_epoch)
        if len(batches) < world:  # every rank alike: the same batch list
            with self.dist.alike():
                raise ConfigError(f"epoch {st.epoch} makes {len(batches)} batch(es) of <= {cfg.max_tokens:,} "
                                  f"target tokens, fewer than the {world} processes (one batch each per update): it "
                                  "would train nothing; use a smaller --max-tokens or fewer processes")  # fmt: skip
        stop = None
        while stop is None and st.batch_in_epoch + world <= len(batches):
            shard = batches[st.batch_in_epoch : st.batch_in_epoch + world]  # one batch per rank
            st.batch_in_epoch += world
            stop = self._update(split, shard, signals, bar)
        if st.batch_in_epoch + world > len(batches):
            st.epoch, st.batch_in_epoch = st.epoch + 1, 0
        return stop

    def _update(self, split: EncodedSplit, shard: list[np.ndarray], signals: StopSignal, bar: tqdm) -> str | None:
        """One update on this rank's batch of `shard`; then logging, validation and checkpoints as due."""
        st = self.st
        batch = collate(split, shard[self.dist.rank], self.cfg.bucket_tokens).to(self.up.device)
        tokens = distributed.update_tokens(split.tgt_lens, shard)
        result = self.up.step(batch, tokens, self._lr())
        after_update(st, result.applied, tokens)
        if not result.applied:
            log.warning("update %d: non-finite loss or gradient (%s, %s): skipped", st.step + 1, result.loss,
                        result.grad_norm)  # fmt: skip
            self.diverged = nan_stop(self.cfg, st)
            return self.diverged
        self.diverged = growth_stop(self.cfg, st, result.loss)  # the same loss on every rank
        if self.diverged:
            return self.diverged
        self.meter.add(tokens, result.loss)
        if self.cfg.max_minutes:  # the update the clock runs out at, at the pace so far: tqdm's ETA
            bar.total = bar_total(self.cfg, st.step, self.clock.elapsed())
        bar.update(1)
        if st.step % self.cfg.log_every == 0:
            self._log_train(bar, result.grad_norm)
        return self._after_update(signals)

    def _after_update(self, signals: StopSignal) -> str | None:
        """Agree on stopping; save on an interrupt, validate and save when due or stopping."""
        st, every = self.st, self.cfg.valid_every
        stop, self.interrupted = self.dist.agree(self._stop(signals.caught), signals.caught)
        if self.interrupted:
            self.save(validated=False)
        elif st.step % every == 0 or stop:
            early, caught = self.validate_and_save(), signals.caught  # a signal during validation
            later, self.interrupted = self.dist.agree(self._stop(caught), caught)
            stop = early or stop or later
        if stop or st.step % every == 0:
            self.saved_at = st.step
        return stop

    def _finish(self, stop: str, caught: str | None) -> TrainResult:
        st = self.st
        if st.step > self.saved_at and not self.diverged:  # ended between validations (a skipped last update too)
            self.validate_and_save()  # keep what was learned
        self.files.log({"type": "stop", "step": st.step, "reason": stop, "elapsed_s": self.clock.elapsed()})
        if (self.interrupted or caught) and self.dist.main:  # rank 0 saved it
            log.warning("%s: saved %s; continue with %s", self.interrupted or caught, self.files.last,
                        self.continue_with)  # fmt: skip
        log.info("stopped after %d updates: %s", st.step, stop)
        result = TrainResult(self.files.run, st.step, st.best, stop, st.history, self.dist.rank)
        if self.diverged:
            raise DivergedError(self._diverged_message(), result)
        return result

    def _diverged_message(self) -> str:
        """The one line of a diverged run: why, and which checkpoint (if any) the run folder keeps."""
        st, run, lr = self.st, self.files.run, self.cfg.lr
        head = f"training diverged after update {st.step} ({self.diverged})"
        if self.checkpoint_step is None:
            return (f"{head}; no checkpoint was written (none is saved before the first validation, at update "
                    f"{self.cfg.valid_every}): start again with a lower --lr (now {lr:g}) and --overwrite")  # fmt: skip
        best = next((r["step"] for r in reversed(st.history) if r.get("best")), None)
        kept = f"; best.pt is from update {best}" if best is not None else ""
        return (f"{head}; the checkpoint before it is kept: {run / 'last.pt'} is from update {self.checkpoint_step}"
                f"{kept}; continue with --resume and a lower --lr (now {lr:g})")  # fmt: skip

    def _stop(self, caught: str | None) -> str | None:
        """Why this rank would stop now: a signal it caught, or a used-up budget."""
        if caught:
            return f"interrupted by {caught}"
        return stop_reason(self.cfg, self.st, self.clock.elapsed() + self.val_seconds)

    def _lr(self) -> float:
        """The learning rate of the next update."""
        cfg, st = self.cfg, self.st
        seconds = self.clock.elapsed()
        if cfg.lr_schedule == "anneal" and cfg.max_minutes:
            seconds = self.dist.max(seconds)  # a time-based lr must be the same on every rank
        return learning_rate(cfg, st.step, st.lr_scale, budget_progress(cfg, st.step, seconds))

    def _log_start(self) -> None:
        """A log line, config.json (with the precision chosen) and the `hardware` record."""
        up, st = self.up, self.st
        log.info("model: %s parameters; %d training pairs; run folder %s; device %s, precision %s",
                 f"{count_parameters(up.model):,}", self.train_pairs, self.files.run, up.device,
                 up.precision)  # fmt: skip
        cfgs = {"data": self.prepared.cfg, "model": up.model.cfg, "train": self.cfg, "precision": up.precision}
        self.files.write_config(cfgs)
        self.files.log({"type": "hardware", "step": st.step, "device": str(up.device), "precision": up.precision.name,
                        "requested": self.cfg.precision, "reason": up.precision.reason, "cpu": cpu_summary(),
                        "torch": torch.__version__, "threads": torch.get_num_threads()})  # fmt: skip
        signature = bleu_signature(self.cfg.bleu_tokenize) if self.cfg.valid_bleu_sentences else None
        self.files.log({"type": "selection", "step": st.step, "best_metric": selection_metric(self.cfg),
                        "val_bleu_signature": signature,
                        "val_bleu_sentences": self.cfg.valid_bleu_sentences})  # fmt: skip

    def _log_train(self, bar: tqdm, norm: float) -> None:
        loss, tok_s = self.meter.read()
        rec = {"type": "train", "step": self.st.step, "epoch": self.st.epoch, "loss": round(loss, 5),
               "lr": self.up.lr, "grad_norm": round(norm, 4), "tgt_tok_s": round(tok_s, 1),
               "tokens": self.st.tokens, "elapsed_s": self.clock.elapsed()}  # fmt: skip
        self.files.log(rec)
        progress_log.info("update %d: loss %.4f  lr %.3g  grad_norm %.3f  %.0f tgt tok/s", rec["step"], rec["loss"],
                          rec["lr"], rec["grad_norm"], rec["tgt_tok_s"])  # fmt: skip
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{rec['tgt_tok_s']:.0f}", lr=f"{rec['lr']:.2g}")

    def validate_and_save(self) -> str | None:
        """Validate, update counters, log, write checkpoints; returns an early-stopping reason or None."""
        t0, cfg, st, up = time.monotonic(), self.cfg, self.st, self.up
        validate = lambda: _validate(up.model, self.prepared, cfg, up.device, up.precision.name)  # noqa: E731
        result = self.dist.on_main(validate)  # the other ranks wait
        improved = after_validation(cfg, st, result)
        record = {"type": "valid", "step": st.step, "epoch": st.epoch, **result, "lr": up.lr, "best": improved,
                  "elapsed_s": self.clock.elapsed()}  # fmt: skip
        st.history.append(record)
        self.files.log(record)
        self.save(validated=True, improved=improved)
        log.info("update %d: %s%s", st.step, "  ".join(f"{k}={v}" for k, v in result.items()), "  (best)" * improved)
        self.val_seconds = time.monotonic() - t0
        self.meter.since += self.val_seconds  # tokens/s counts training time, not validations and saves
        return self.diverged or early_stop(cfg, st)

    def save(self, validated: bool, improved: bool = False) -> None:
        """last.pt (resumable), best.pt when improved, and the last `keep_checkpoints` step files (rank 0)."""
        rng = self.dist.gather(distributed.rng_state(self.up.device))  # every rank's, for an exact resume
        if not all(bool(torch.isfinite(p).all()) for p in self.up.model.parameters()):  # the same on every rank
            self.diverged = "non-finite weights"  # a finite loss and gradient times a huge step: never saved
            return
        self.checkpoint_step, self.checkpoint_epoch = self.st.step, self.st.epoch
        if not self.dist.main:
            return
        self.st.train_seconds = self.clock.elapsed()
        optimizer, grad_scaler = self.up.states()
        resume = ResumeState(optimizer=optimizer, train_state=asdict(self.st), rng=rng, grad_scaler=grad_scaler)
        weights = model_file(self.prepared, self.up.model, self.cfg, self.st.step)
        self.files.save(weights, resume, best=improved, keep=self.cfg.keep_checkpoints if validated else 0)


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
