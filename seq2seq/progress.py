"""A run's progress: the state it carries (`TrainState`), what an update and a validation change
in it, when it stops (budget, early stopping, non-finite losses), its wall clock over resumed
sessions (`Clock`), and the learning-rate schedule (linear warm-up, then plateau decays or an
anneal toward the end of the budget).

`lr_scale` is the product of the plateau decays so far (kept in the training state); `progress`
is the used fraction of the step/time budget (`budget_progress`), `bar_total` the update it ends at.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import TrainConfig


@dataclass
class TrainState:
    """Everything about a run that changes as it trains (saved in last.pt for resuming)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already consumed (by all ranks together)
    lr_scale: float = 1.0  # product of plateau decays so far
    best: float | None = None  # best validation metric (BLEU: higher, loss: lower)
    bad_validations: int = 0  # since the best one (early stopping)
    plateau: int = 0  # since the last improvement or decay (learning-rate decay)
    nan_streak: int = 0
    skipped_steps: int = 0
    first_loss: float | None = None  # the run's first training loss (TrainConfig.loss_growth)
    tokens: int = 0
    train_seconds: float = 0.0  # wall clock of the run so far, over all resumed sessions (max_minutes)
    history: list[dict[str, Any]] = field(default_factory=list)  # validation results


_COUNTS = ("step", "epoch", "batch_in_epoch", "bad_validations", "plateau", "nan_streak", "skipped_steps", "tokens")


def saved_state(saved: dict[str, Any]) -> TrainState:
    """The TrainState of last.pt, every field checked: whole counts >= 0, finite numbers (lr_scale > 0),
    validation records with a whole `step`. A field of another kind raises TypeError or ValueError naming it."""
    st = TrainState(**saved)  # an unknown field: TypeError
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
    bad = [k for k in _COUNTS if type(getattr(st, k)) is not int or getattr(st, k) < 0]
    bad += [k for k in ("lr_scale", "train_seconds") if not number(getattr(st, k)) or getattr(st, k) < 0]
    bad += [k for k in ("best", "first_loss") if getattr(st, k) is not None and not number(getattr(st, k))]
    if not st.lr_scale:
        bad.append("lr_scale")
    if not isinstance(st.history, list) or not all(isinstance(r, dict) and type(r.get("step")) is int
                                                   for r in st.history):  # fmt: skip
        bad.append("history")
    if bad:
        raise ValueError(f"{', '.join(dict.fromkeys(bad))}: not what a run saves")
    return st


@dataclass
class Clock:
    """The wall clock of a run: `before` seconds of earlier sessions plus this one since `started`
    (a `time.monotonic()` value)."""

    started: float
    before: float = 0.0

    def elapsed(self) -> float:
        return round(self.before + time.monotonic() - self.started, 2)


def after_update(st: TrainState, applied: bool, tokens: int) -> None:
    """Count an update of `tokens` target tokens, or (not `applied`) a skipped non-finite one."""
    if applied:
        st.nan_streak = 0
        st.step += 1
        st.tokens += tokens
    else:
        st.nan_streak += 1
        st.skipped_steps += 1


def stop_reason(cfg: TrainConfig, st: TrainState, seconds: float) -> str | None:
    """The budget that is used up, if any; `seconds`: the run's wall clock plus the time a final
    validation and save will take (so that they fit in max_minutes)."""
    if cfg.max_steps and st.step >= cfg.max_steps:
        return f"max_steps={cfg.max_steps}"
    if cfg.max_minutes and seconds >= 60 * cfg.max_minutes:
        return f"max_minutes={cfg.max_minutes}"
    return None


def early_stop(cfg: TrainConfig, st: TrainState) -> str | None:
    if cfg.patience and st.bad_validations >= cfg.patience:
        return f"early stopping (no improvement in {cfg.patience} validations)"
    return None


def nan_stop(cfg: TrainConfig, st: TrainState) -> str | None:
    """Divergence: `max_nan_steps` non-finite losses in a row (what was kept: the trainer says)."""
    if st.nan_streak >= cfg.max_nan_steps:
        return f"{st.nan_streak} non-finite losses in a row"
    return None


def growth_stop(cfg: TrainConfig, st: TrainState, loss: float) -> str | None:
    """Divergence without a NaN yet: a training loss (per target token) above `loss_growth` times the
    run's first one (remembered in `st` by the first call)."""
    if st.first_loss is None:
        st.first_loss = loss
    if cfg.loss_growth and st.first_loss > 0 and loss > cfg.loss_growth * st.first_loss:
        return f"training loss {loss:.4g} over loss_growth={cfg.loss_growth:g} x the first one ({st.first_loss:.4g})"
    return None


def selection_metric(cfg: TrainConfig) -> str:
    """The metric that picks best.pt and stops early: `best_metric`, except that without validation BLEU
    (`valid_bleu_sentences` 0) "bleu" falls back to the loss."""
    return "bleu" if cfg.best_metric == "bleu" and cfg.valid_bleu_sentences > 0 else "loss"


def after_validation(cfg: TrainConfig, st: TrainState, result: dict[str, float]) -> bool:
    """Update best/patience/plateau counters; returns whether this validation is the best so far."""
    value = result["val_bleu"] if selection_metric(cfg) == "bleu" and "val_bleu" in result else -result["val_loss"]
    improved = st.best is None or value > st.best
    if improved:
        st.best, st.bad_validations, st.plateau = value, 0, 0
    else:
        st.bad_validations += 1
        st.plateau += 1
        if st.plateau >= cfg.lr_patience and cfg.lr_schedule == "plateau":
            st.lr_scale *= cfg.lr_decay
            st.plateau = 0
    return improved


def budget_progress(cfg: TrainConfig, step: int, seconds: float) -> float:
    """How much of the training budget (max_steps and/or max_minutes, whichever ends first) is used, in [0, 1]."""
    used = [step / cfg.max_steps] if cfg.max_steps else []
    used += [seconds / (60 * cfg.max_minutes)] if cfg.max_minutes else []
    return min(1.0, max(used, default=0.0))


def bar_total(cfg: TrainConfig, step: int, seconds: float) -> int | None:
    """The update at which the budget ends, the progress bar's total (so that it shows an ETA):
    `max_steps`, or the update `max_minutes` is reached at, at the pace so far, if that comes first;
    None without either budget."""
    if not (cfg.max_minutes and step and seconds > 0):
        return cfg.max_steps or None
    return max(step, round(step / budget_progress(cfg, step, seconds)))


def learning_rate(cfg: TrainConfig, step: int, lr_scale: float, progress: float) -> float:
    """The learning rate of the next update: warm-up, then plateau decays or the end-of-budget anneal."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.lr_schedule == "anneal":  # constant, then linear to min_lr over the last anneal_fraction
        left = min(1.0, (1.0 - progress) / cfg.anneal_fraction)
        return (cfg.min_lr + (cfg.lr - cfg.min_lr) * left) * warm
    return max(cfg.lr * lr_scale, cfg.min_lr) * warm
