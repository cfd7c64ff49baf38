"""The learning-rate schedule: linear warm-up, then plateau decays or an anneal toward the end of the budget.

`lr_scale` is the product of the plateau decays so far (kept in the training state); `progress`
is the used fraction of the step/time budget (`budget_progress`).
"""

from __future__ import annotations

from .config import TrainConfig


def budget_progress(cfg: TrainConfig, step: int, seconds: float) -> float:
    """How much of the training budget (max_steps and/or max_minutes, whichever ends first) is used, in [0, 1]."""
    used = [step / cfg.max_steps] if cfg.max_steps else []
    used += [seconds / (60 * cfg.max_minutes)] if cfg.max_minutes else []
    return min(1.0, max(used, default=0.0))


def learning_rate(cfg: TrainConfig, step: int, lr_scale: float, progress: float) -> float:
    """The learning rate of the next update: warm-up, then plateau decays or the end-of-budget anneal."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.lr_schedule == "anneal":  # constant, then linear to min_lr over the last anneal_fraction
        left = min(1.0, (1.0 - progress) / cfg.anneal_fraction)
        return (cfg.min_lr + (cfg.lr - cfg.min_lr) * left) * warm
    return max(cfg.lr * lr_scale, cfg.min_lr) * warm
