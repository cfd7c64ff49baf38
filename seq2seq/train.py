"""The training loop: teacher forcing, truncated BPTT, clipping, validation, checkpoints, resume.

Truncated BPTT (`tbptt = N > 0`) splits the decoder unroll into chunks of N target steps. The
encoder runs once per batch; its outputs are cut off as leaves that collect the gradient of
every chunk, and are back-propagated through the encoder once at the end. The decoder state
is carried from chunk to chunk with its gradient cut. Each chunk's loss is back-propagated as
soon as it is computed (its activations are freed), gradients accumulate, and the optimiser
steps once per batch, so every chunk counts and N >= target length gives full-BPTT gradients.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import (
    DataConfig,
    DecodeConfig,
    ModelConfig,
    TrainConfig,
    from_dict,
    to_dict,
)
from .data import Batch, EncodedSplit, collate, make_batches
from .metrics import score
from .model import DecoderState, Memory, Seq2Seq, count_parameters
from .preprocess import Prepared, ensure_prepared
from .tokenizer import PAD_ID
from .translate import search

log = logging.getLogger("seq2seq")


def _decode_chunk(
    model: Seq2Seq,
    batch: Batch,
    t0: int,
    t1: int,
    state: DecoderState,
    memory: Memory,
    teacher_forcing: float,
    prev_pred: Tensor | None,
) -> tuple[Tensor, DecoderState, Tensor | None]:
    """Attentional vectors (B, t1-t0, E) for target steps t0..t1, fed references or own predictions."""
    tgt_in = batch.tgt_in[:, t0:t1]
    if teacher_forcing >= 1 or not model.training:
        att, state, _ = model.decoder(tgt_in, state, memory)
        return att, state, None
    atts = []
    for t in range(tgt_in.size(1)):  # scheduled sampling: the next input depends on this output
        inp = tgt_in[:, t]
        if prev_pred is not None:
            use_ref = torch.rand(inp.shape, device=inp.device) < teacher_forcing
            inp = torch.where(use_ref | (inp == PAD_ID), inp, prev_pred)
        att, state, _ = model.decoder(inp[:, None], state, memory)
        prev_pred = model.logits(att[:, 0]).argmax(-1).detach()
        atts.append(att)
    return torch.cat(atts, dim=1), state, prev_pred


def _loss(model: Seq2Seq, att: Tensor, tgt_out: Tensor, label_smoothing: float) -> Tensor:
    """Summed cross-entropy over the non-padding positions only (the output layer skips padding)."""
    mask = tgt_out != PAD_ID  # (B, T)
    logits = model.logits(att[mask])  # (tokens, V)
    return F.cross_entropy(logits.float(), tgt_out[mask], reduction="sum", label_smoothing=label_smoothing)


def forward_backward(model: Seq2Seq, batch: Batch, cfg: TrainConfig) -> float:
    """Accumulate d(loss / target tokens)/d(params) for one batch; returns the summed loss."""
    memory, state = model.encode(batch.src_ids, batch.src_lens)
    steps, scale = batch.tgt_in.size(1), 1.0 / batch.n_tokens
    if cfg.tbptt == 0:
        att, _, _ = _decode_chunk(model, batch, 0, steps, state, memory, cfg.teacher_forcing, None)
        loss = _loss(model, att, batch.tgt_out, cfg.label_smoothing)
        (loss * scale).backward()
        return loss.item()
    roots = [memory.states, memory.keys, *state.rnn]
    leaves = [r.detach().requires_grad_() for r in roots]
    memory_l = Memory(leaves[0], leaves[1], memory.mask)
    state = DecoderState(tuple(leaves[2:]), state.feed)
    total, prev_pred = 0.0, None
    for t0 in range(0, steps, cfg.tbptt):
        t1 = min(t0 + cfg.tbptt, steps)
        att, state, prev_pred = _decode_chunk(model, batch, t0, t1, state, memory_l, cfg.teacher_forcing, prev_pred)
        loss = _loss(model, att, batch.tgt_out[:, t0:t1], cfg.label_smoothing)
        (loss * scale).backward()
        total += loss.item()
        state = state.detach()
    grads = [torch.zeros_like(leaf) if leaf.grad is None else leaf.grad for leaf in leaves]
    torch.autograd.backward(roots, grads)
    return total


@torch.inference_mode()
def validation_loss(model: Seq2Seq, split: EncodedSplit, max_tokens: int, device: torch.device) -> float:
    """Mean per-token cross-entropy (no label smoothing) of a split under teacher forcing."""
    model.eval()
    total, tokens = 0.0, 0
    for idx in make_batches(split.src_lens, split.tgt_lens, max_tokens):
        batch = collate(split, idx).to(device)
        memory, state = model.encode(batch.src_ids, batch.src_lens)
        att, _, _ = model.decoder(batch.tgt_in, state, memory)
        total += _loss(model, att, batch.tgt_out, 0.0).item()
        tokens += batch.n_tokens
    return total / max(tokens, 1)


@dataclass
class TrainState:
    """Everything about a run that changes as it trains (saved in last.pt for resuming)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already consumed
    lr_scale: float = 1.0  # product of plateau decays so far
    best: float | None = None  # best validation metric (BLEU: higher, loss: lower)
    bad_validations: int = 0  # since the best one (early stopping)
    plateau: int = 0  # since the last improvement or decay (learning-rate decay)
    nan_streak: int = 0
    skipped_steps: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)  # validation results


def _lr(cfg: TrainConfig, st: TrainState) -> float:
    warm = min(1.0, (st.step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    return max(cfg.lr * st.lr_scale, cfg.min_lr) * warm


def _payload(model: Seq2Seq, prepared: Prepared, cfgs: dict[str, Any], st: TrainState, opt=None) -> dict[str, Any]:
    """A self-contained checkpoint; with `opt`, also everything needed to resume exactly."""
    payload = {
        "model_config": to_dict(cfgs["model"]),
        "model": model.state_dict(),
        "src_spm": prepared.src_tok.model_proto,
        "tgt_spm": prepared.tgt_tok.model_proto,
        "src_lang": prepared.manifest["src"],
        "tgt_lang": prepared.manifest["tgt"],
        "train_config": to_dict(cfgs["train"]),
        "data_config": to_dict(cfgs["data"]),
        "step": st.step,
    }
    if opt is not None:
        payload |= {"optimizer": opt.state_dict(), "train_state": asdict(st), "torch_rng": torch.get_rng_state()}
    return payload


def _validate(model: Seq2Seq, prepared: Prepared, cfg: TrainConfig, device: torch.device) -> dict[str, float]:
    """Validation loss/perplexity, and BLEU of greedy translations of the first sentences."""
    val_split = prepared.cfg.val_split
    loss = validation_loss(model, prepared.split(val_split), cfg.max_tokens, device)
    result = {"val_loss": round(loss, 5), "val_ppl": round(math.exp(min(loss, 50)), 3)}
    if cfg.valid_bleu_sentences:
        src_text, ref_text = prepared.text(val_split)
        src_text, ref_text = src_text[: cfg.valid_bleu_sentences], ref_text[: cfg.valid_bleu_sentences]
        hyps = search(model, prepared.src_tok.encode(src_text), DecodeConfig(beam_size=1, batch_size=128))
        result["val_bleu"] = round(score(prepared.tgt_tok.decode([h[0].ids for h in hyps]), ref_text).bleu, 3)
    model.train()
    return result


def _after_validation(cfg: TrainConfig, st: TrainState, result: dict[str, float]) -> bool:
    """Update best/patience/plateau counters; returns whether this validation is the best so far."""
    value = result["val_bleu"] if cfg.best_metric == "bleu" and "val_bleu" in result else -result["val_loss"]
    improved = st.best is None or value > st.best
    if improved:
        st.best, st.bad_validations, st.plateau = value, 0, 0
    else:
        st.bad_validations += 1
        st.plateau += 1
        if st.plateau >= cfg.lr_patience:
            st.lr_scale *= cfg.lr_decay
            st.plateau = 0
    return improved


class _Run:
    """Files of a run folder: metrics log, resolved config, checkpoints."""

    def __init__(self, run: Path) -> None:
        self.run = run
        self.metrics = run / "metrics.jsonl"

    def log(self, record: dict[str, Any]) -> None:
        with open(self.metrics, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def write_config(self, cfgs: dict[str, Any]) -> None:
        text = json.dumps({k: to_dict(v) for k, v in cfgs.items()}, indent=2)
        (self.run / "config.json").write_text(text + "\n", encoding="utf-8")


@dataclass
class TrainResult:
    """Where a training run ended."""

    run: Path
    steps: int
    best: float | None
    stop_reason: str
    history: list[dict[str, Any]]


class _StopSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks between updates (then saves and exits)."""

    def __init__(self) -> None:
        self.caught: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.caught = signal.Signals(signum).name

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _load_resume(path: Path, model: Seq2Seq, opt: torch.optim.Optimizer, reset_optimizer: bool) -> TrainState:
    ckpt = load_checkpoint(path)
    if "train_state" not in ckpt:
        raise CheckpointError(f"{path}: holds no training state to resume from")
    model.load_state_dict(ckpt["model"])
    if not reset_optimizer:
        opt.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["torch_rng"])
    st = TrainState(**ckpt["train_state"])
    if reset_optimizer:
        st.lr_scale, st.plateau = 1.0, 0
    return st


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
    device: str = "cpu",
    progress: bool = True,
) -> TrainResult:
    """Train in run folder `run` (prepared from `data_dir` if needed); writes best.pt and last.pt there."""
    start, run = time.monotonic(), Path(run)
    data_cfg, model_cfg, cfg = data_cfg or DataConfig(), model_cfg or ModelConfig(), cfg or TrainConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    prepared = ensure_prepared(data_dir, src, tgt, run, data_cfg, cfg.seed)
    dev = torch.device(device)
    model = Seq2Seq(model_cfg, len(prepared.src_tok), len(prepared.tgt_tok)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    st = _load_resume(run / "last.pt", model, opt, reset_optimizer) if resume else TrainState()
    cfgs = {"data": prepared.cfg, "model": model_cfg, "train": cfg}
    files = _Run(run)
    files.write_config(cfgs)
    train_split = prepared.split(prepared.cfg.train_split)
    log.info(
        "model: %s parameters; %d training pairs; run folder %s", f"{count_parameters(model):,}", len(train_split), run
    )
    deadline = start + 60 * cfg.max_minutes if cfg.max_minutes else math.inf
    bar = tqdm(total=cfg.max_steps or None, initial=st.step, desc="train", unit="step", disable=not progress)
    model.train()
    stop, val_seconds, last_valid = None, 0.0, st.step
    window_tokens, window_start = 0, time.monotonic()
    with _StopSignal() as signals:
        while stop is None:
            if st.epoch >= cfg.max_epochs:
                stop = f"max_epochs={cfg.max_epochs}"
                break
            batches = make_batches(
                train_split.src_lens, train_split.tgt_lens, cfg.max_tokens, np.random.default_rng([cfg.seed, st.epoch])
            )
            while st.batch_in_epoch < len(batches):
                batch = collate(train_split, batches[st.batch_in_epoch]).to(dev)
                st.batch_in_epoch += 1
                for group in opt.param_groups:
                    group["lr"] = _lr(cfg, st)
                opt.zero_grad(set_to_none=True)
                loss = forward_backward(model, batch, cfg)
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm or math.inf).item()
                if not (math.isfinite(loss) and math.isfinite(norm)):
                    st.nan_streak += 1
                    st.skipped_steps += 1
                    log.warning("step %d: non-finite loss/gradient (%s, %s): update skipped", st.step + 1, loss, norm)
                    if st.nan_streak >= cfg.max_nan_steps:
                        stop = f"{st.nan_streak} non-finite losses in a row (last good checkpoint kept)"
                        break
                    continue
                opt.step()
                st.nan_streak = 0
                st.step += 1
                st.tokens += batch.n_tokens
                window_tokens += batch.n_tokens
                bar.update(1)
                if st.step % cfg.log_every == 0:
                    now = time.monotonic()
                    tok_s = window_tokens / max(now - window_start, 1e-9)
                    window_tokens, window_start = 0, now
                    rec = {
                        "type": "train",
                        "step": st.step,
                        "epoch": st.epoch,
                        "loss": round(loss / batch.n_tokens, 5),
                        "lr": _lr(cfg, st),
                        "grad_norm": round(norm, 4),
                        "tgt_tok_s": round(tok_s, 1),
                        "elapsed_s": round(now - start, 2),
                    }
                    files.log(rec)
                    bar.set_postfix(loss=f"{rec['loss']:.3f}", tok_s=f"{tok_s:.0f}", lr=f"{rec['lr']:.2g}")
                stop = _stop_reason(cfg, st, deadline, val_seconds, signals.caught)
                if st.step % cfg.valid_every == 0 or stop:
                    t = time.monotonic()
                    _validate_and_save(model, prepared, cfgs, st, opt, files, dev, start)
                    val_seconds, last_valid = time.monotonic() - t, st.step
                    if cfg.patience and st.bad_validations >= cfg.patience:
                        stop = stop or f"early stopping (no improvement in {cfg.patience} validations)"
                    stop = stop or _stop_reason(cfg, st, deadline, val_seconds, signals.caught)
                if stop:
                    break
            else:
                st.epoch, st.batch_in_epoch = st.epoch + 1, 0
    bar.close()
    if st.step > last_valid:  # stopped between validations (max_epochs, NaNs, ...): keep what was learned
        _validate_and_save(model, prepared, cfgs, st, opt, files, dev, start)
    files.log({"type": "stop", "step": st.step, "reason": stop, "elapsed_s": round(time.monotonic() - start, 2)})
    if signals.caught:
        log.warning(
            "%s received: saved %s; resume with the same command plus --resume", signals.caught, run / "last.pt"
        )
    log.info("stopped after %d updates: %s", st.step, stop)
    return TrainResult(run, st.step, st.best, stop or "", st.history)


def _stop_reason(
    cfg: TrainConfig, st: TrainState, deadline: float, val_seconds: float, signal_name: str | None
) -> str | None:
    if signal_name:
        return f"interrupted by {signal_name}"
    if cfg.max_steps and st.step >= cfg.max_steps:
        return f"max_steps={cfg.max_steps}"
    if time.monotonic() + val_seconds >= deadline:  # leave time for the final validation and save
        return f"max_minutes={cfg.max_minutes}"
    return None


def _validate_and_save(
    model: Seq2Seq,
    prepared: Prepared,
    cfgs: dict[str, Any],
    st: TrainState,
    opt: torch.optim.Optimizer,
    files: _Run,
    dev: torch.device,
    start: float,
) -> None:
    """Validate, update the counters, write metrics, last.pt and (when improved) best.pt."""
    cfg = cfgs["train"]
    result = _validate(model, prepared, cfg, dev)
    improved = _after_validation(cfg, st, result)
    record = {
        "type": "valid",
        "step": st.step,
        "epoch": st.epoch,
        **result,
        "lr": _lr(cfg, st),
        "best": improved,
        "elapsed_s": round(time.monotonic() - start, 2),
    }
    st.history.append(record)
    files.log(record)
    save_checkpoint(files.run / "last.pt", _payload(model, prepared, cfgs, st, opt))
    if improved:
        save_checkpoint(files.run / "best.pt", _payload(model, prepared, cfgs, st))
    log.info("step %d: %s%s", st.step, "  ".join(f"{k}={v}" for k, v in result.items()), "  (best)" if improved else "")


def resume_configs(run: str | Path) -> dict[str, dict[str, Any]]:
    """The configs a run was trained with (its config.json), to resume with the same settings."""
    path = Path(run) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{run}: nothing to resume (no config.json)")
    return json.loads(path.read_text(encoding="utf-8"))


__all__ = ["TrainResult", "TrainState", "forward_backward", "from_dict", "resume_configs", "train"]
