"""Gradient flow through time: how strongly the loss reaches each encoder and decoder time step.

`gradient_flow` measures, averaged over the sentences of a batch, ||dL/dh_t|| for the decoder's
top-layer RNN states h_t (B, T, Hd) and ||dL/dx_t|| for the source embeddings x_t (B, S, E),
the encoder's input at step t. With `loss="last"` (the default) L is the loss of each
sentence's final output (its EOS): a decoder state h_t with t < T reaches it only through the
recurrence, so the curve shows how fast gradients vanish (or explode) with distance; the decoder's
sentences are aligned at their EOS for it (value T - 1 - d: d steps before each one's EOS). A source
position also reaches it directly through attention: a shortcut around the recurrence. With
`loss="all"` L is the summed cross-entropy of every output (training's loss without label smoothing; every
step adds a direct term).

The model code is unchanged. A fused RNN call hides its per-step states inside one op, so a
forward hook re-runs the decoder RNN one step at a time with the same weights (checked against
the fused output), feeding each step's output h_t to the next step as its state; another hook
adds a zero "probe" tensor to the source embeddings. `torch.autograd.grad` with respect to those
per-step tensors gives the total derivatives and leaves the parameters' `.grad` untouched. (The
encoder is probed at its input, not its states: that needs no knowledge of its internals.)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..batches import Batch, collate, pad
from ..config import ConfigError, DecodeConfig, ModelConfig
from ..errors import CorpusError
from ..ids import BOS_ID, EOS_ID, PAD_ID
from ..model import Seq2Seq
from ..prepared import EncodedSplit
from ..text import clean
from ..tools.figures import check_figure_output
from .gradflow_plot import Loss, plot_gradient_flow
from .span_settings import memory_budget

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger("seq2seq")
CELLS = ("rnn", "gru", "lstm")
# Bounds of the fresh models' batch, far beyond a readable plot; the memory a run needs is checked
# against `memory_budget` too (`flow_memory`): per token 125 bytes per unit of the model's width (embedding,
# both encoder directions and the decoder, each layer; float64, measured peak RSS on one LSTM layer a side:
# 94 kB at ModelConfig()'s 768 units, 172 at 1,536, 338 at 3,072), 22 bytes per target piece with
# `--loss all` (logits for every token: +85 kB at 4,000 pieces), and the attention's (B, T, S) terms
# (1,000 tokens x 4 sentences: 0.53 GB, 400 x 40: 1.36 GB).
MAX_LENGTH, MAX_BATCH, MAX_SEED = 10_000, 10_000, 2**32 - 1
BYTES_PER_WIDTH, BYTES_PER_LOGIT, BYTES_PER_ATTENTION = 125, 22, 48
FRESH_VOCAB = 200  # the fresh models' pieces a side


def _objective(model: Seq2Seq, att: Tensor, tgt_out: Tensor, loss: Loss) -> Tensor:
    """Summed cross-entropy of every target token, or of each sentence's last token only."""
    mask = tgt_out != PAD_ID  # (B, T)
    if loss == "last":
        mask = torch.zeros_like(mask).scatter_(1, mask.sum(1, keepdim=True) - 1, True)  # each sentence's EOS
    logits = model.logits(att[mask])  # (tokens, V)
    return F.cross_entropy(logits.float() if logits.dtype != torch.float64 else logits, tgt_out[mask], reduction="sum")


def _mean_norms(grad: Tensor, mask: Tensor, align_end: bool = False) -> list[float]:
    """Per time step, the mean over real (unpadded) rows of ||grad[b, t]||: (B, X, H) -> X values.

    `align_end`: each row shifted right by its padding first, so that value X - 1 - d is the mean over the
    rows of their step d steps before their own last real step (a row of n steps counts for d < n only)."""
    norms = grad.double().norm(dim=-1) * mask  # (B, X)
    if align_end:
        width = mask.size(1)
        source = torch.arange(width, device=mask.device)[None] - (width - mask.sum(1, keepdim=True))  # (B, X)
        mask = source >= 0
        norms = norms.gather(1, source.clamp(min=0)) * mask
    return (norms.sum(0) / mask.sum(0).clamp(min=1)).tolist()


def gradient_flow(model: Seq2Seq, batch: Batch, loss: Loss = "last") -> dict[str, list[float]]:
    """{"encoder": S values, "decoder": T values}: mean ||dL/dx_t|| and ||dL/dh_t|| per time step.

    Encoder: x_t, the source embeddings, through every path (the recurrence both ways and
    attention), by source position. Decoder: h_t, the top-layer RNN states, through the output at t
    and every later step. With `loss="all"` by target position t; with `loss="last"` the sentences
    are aligned at their own EOS (where each one's loss is read): value T - 1 - d is the mean over
    the sentences of ||dL/dh|| d steps before their EOS, so that sentences of different lengths are
    averaged at the same distance from their loss (by position, a short sentence's direct gradient at
    its EOS would sit among a long one's vanished ones). Dropout is off; the parameters' `.grad` is
    left untouched.
    """
    if loss not in ("last", "all"):
        raise ValueError(f"loss must be 'last' or 'all', got {loss!r}")
    src_probe: list[Tensor] = []
    dec_nodes: list[Tensor] = []

    def embed_hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        src_probe.append(torch.zeros_like(output, requires_grad=True))  # dL/d(probe) = dL/dx
        return output + src_probe[-1]

    def decoder_rnn_hook(module: nn.RNNBase, args: tuple, output: tuple) -> tuple:
        x, hx = args
        outs = []
        for t in range(x.size(1)):
            out, hx = module.forward(x[:, t : t + 1], hx)  # .forward: no hooks, no recursion
            top = out.transpose(0, 1)  # (1, B, Hd): the top layer's h_t, as the node the next step reads
            h = torch.cat([hx[0][:-1], top]) if isinstance(hx, tuple) else torch.cat([hx[:-1], top])
            hx = (h, hx[1]) if isinstance(hx, tuple) else h
            outs.append(out)
            dec_nodes.append(out)  # (B, 1, Hd)
        _check_same(output[0], torch.cat(outs, 1))
        return torch.cat(outs, 1), hx

    was_training = model.training
    model.eval()
    hooks = [
        model.encoder.embed.register_forward_hook(embed_hook),
        model.decoder.rnn.register_forward_hook(decoder_rnn_hook),
    ]
    try:
        with torch.enable_grad():
            memory, state = model.encode(batch.src_ids, batch.src_lens)
            att, _, _ = model.decoder(batch.tgt_in, state, memory)
            objective = _objective(model, att, batch.tgt_out, loss)
            grads = torch.autograd.grad(objective, src_probe + dec_nodes, allow_unused=True)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    grads = [torch.zeros_like(t) if g is None else g for t, g in zip(src_probe + dec_nodes, grads)]
    src_mask = torch.arange(batch.src_ids.size(1), device=batch.src_ids.device)[None] < batch.src_lens[:, None]
    return {
        "encoder": _mean_norms(grads[0], src_mask),  # (B, S, E)
        "decoder": _mean_norms(torch.cat(grads[1:], 1), batch.tgt_out != PAD_ID, loss == "last"),  # (B, T, Hd)
    }


def _check_same(reference: Tensor, unrolled: Tensor) -> None:
    """The step-by-step re-run must reproduce the decoder RNN's own output (guards against model changes)."""
    tol = 1e-4 if reference.dtype == torch.float32 else 1e-8
    if not torch.allclose(reference, unrolled, atol=tol, rtol=tol):
        diff = (reference - unrolled).abs().max().item()
        raise RuntimeError(f"gradient_flow: the step-by-step decoder RNN differs from the fused one ({diff:.2e})")


def synthetic_batch(vocab_size: int, length: int, batch_size: int, seed: int = 0) -> Batch:
    """Random source and target pieces, all of `length` pieces (+ EOS / BOS)."""
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(EOS_ID + 1, vocab_size, (batch_size, length), generator=gen).tolist()
    tgt = torch.randint(EOS_ID + 1, vocab_size, (batch_size, length), generator=gen).tolist()
    lens = torch.full((batch_size,), length + 1)
    n_tokens = batch_size * (length + 1)
    return Batch(pad(src, after=EOS_ID), lens, pad(tgt, before=BOS_ID), pad(tgt, after=EOS_ID), n_tokens)


def fresh_gradient_flow(
    cells: Sequence[str] = CELLS,
    length: int = 100,
    batch_size: int = 16,
    vocab_size: int = FRESH_VOCAB,
    loss: Loss = "last",
    seed: int = 1234,
    model_cfg: ModelConfig | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Gradient flow of randomly initialised models (default sizes, no dropout), one per cell type.

    Runs in float64 so that gradients of 1e-40 and below show as numbers instead of zeros.
    """
    if length < 1 or batch_size < 1:
        raise ConfigError(f"need length >= 1 and batch_size >= 1, got {length} and {batch_size}")
    _check_fresh_memory(length, batch_size, model_cfg, vocab_size, loss)
    batch = synthetic_batch(vocab_size, length, batch_size, seed)
    base = model_cfg or ModelConfig(dropout=0.0)
    results = {}
    for cell in cells:
        torch.manual_seed(seed)
        model = Seq2Seq(replace(base, cell=cell), vocab_size, vocab_size).double()
        results[cell] = gradient_flow(model, batch, loss)
    return results


def checkpoint_gradient_flow(
    checkpoint: str | Path,
    sources: Sequence[str],
    references: Sequence[str] | None = None,
    loss: Loss = "last",
    device: str = "cpu",
) -> dict[str, list[float]]:
    """Gradient flow of a trained model on `sources`; without references its greedy outputs are the targets."""
    from ..translation.hub import model_file
    from ..translation.torch_engine import Translator

    if references is not None and len(references) != len(sources):
        raise CorpusError(f"{len(sources)} source sentences but {len(references)} references")
    pairs = [(clean(s), clean(r) if references else "") for s, r in zip(sources, references or sources)]
    pairs = [p for p in pairs if p[0]]
    if not pairs:
        raise CorpusError("no non-empty source sentences")
    translator = Translator.from_checkpoint(model_file(checkpoint), device=device)  # hf://: downloaded
    src_ids = translator.src_tok.encode([s for s, _ in pairs])
    sizes = (translator.model.cfg, len(translator.tgt_tok), loss)  # the memory estimate's model: this one
    _check_input_memory(len(pairs), max(map(len, src_ids)) + 1, *sizes)  # the sources alone: before any search
    if references:
        tgt_ids = translator.tgt_tok.encode([r for _, r in pairs])
    else:
        tgt_ids = [nbest[0].ids for nbest in translator.search(src_ids, DecodeConfig(beam_size=1))]
    _check_input_memory(len(pairs), max(max(map(len, src_ids)), max(map(len, tgt_ids), default=0)) + 1, *sizes)
    device = next(translator.model.parameters()).device  # "auto" resolved
    batch = collate(EncodedSplit.from_lists(src_ids, tgt_ids), np.arange(len(pairs))).to(device)
    # float64 as the fresh models: in float32 gradients below ~1e-45 are exactly 0 (a 300-piece target's
    # earliest steps), gaps in the plot; the targets above came from the model as `translate` runs it
    return gradient_flow(translator.model.double(), batch, loss)


@dataclass(frozen=True)
class FreshModels:
    """Freshly initialised models of `cell` ("all": each cell) on `batch_size` random sequences of `length` tokens."""

    cell: str = "all"
    length: int = 100
    batch_size: int = 16
    seed: int = 1234
    given: frozenset[str] | None = None  # the fields set by flags (None: those off their defaults)

    @classmethod
    def from_flags(cls, **flags: Any) -> FreshModels | None:
        """The fresh models the flags given (not None) ask for; None where none was given."""
        given = {name: value for name, value in flags.items() if value is not None}
        return cls(**given, given=frozenset(given)) if given else None

    def __post_init__(self) -> None:
        if self.cell not in (*CELLS, "all"):
            raise ConfigError(f"--cell must be one of {', '.join(CELLS)} or all, got {self.cell!r}")
        for flag, value, high in (("--length", self.length, MAX_LENGTH), ("--batch-size", self.batch_size, MAX_BATCH),
                                  ("--seed", self.seed, MAX_SEED)):  # fmt: skip
            low = 0 if flag == "--seed" else 1
            if not low <= value <= high:
                raise ConfigError(f"gradflow {flag} must be in [{low}, {high:,}], got {value:,}")


def flow_memory(length: int, batch_size: int, cfg: ModelConfig | None = None, tgt_vocab: int = FRESH_VOCAB,
                loss: Loss = "last") -> int:  # fmt: skip
    """Bytes `gradient_flow` holds at its peak for one model of `cfg`'s sizes (None: ModelConfig()'s) in
    float64, roughly: per token, the model's width and with loss "all" its target pieces, as measured
    (BYTES_PER_WIDTH, BYTES_PER_LOGIT), and the attention's (B, T, S) terms."""
    cfg = cfg or ModelConfig()
    width = cfg.emb_size + 2 * cfg.enc_hidden * cfg.enc_layers + cfg.dec_hidden * cfg.dec_layers
    per_token = BYTES_PER_WIDTH * width + (BYTES_PER_LOGIT * tgt_vocab if loss == "all" else 0)
    return batch_size * length * (per_token + BYTES_PER_ATTENTION * length)


def _check_memory(length: int, batch_size: int, what: str, instead: str, *sizes: Any) -> None:
    """A batch of `batch_size` sequences of `length` tokens (`what`) over half this machine's memory
    (`flow_memory`'s estimate for the model `sizes` describe): one ConfigError saying what to give `instead`."""
    need, budget = flow_memory(length, batch_size, *sizes), memory_budget()
    if need > budget:
        raise ConfigError(f"{what} needs about {need / 1e9:.1f} GB; this machine allows {budget / 1e9:.1f} GB "
                          f"(half its memory): {instead}")  # fmt: skip


def _check_fresh_memory(length: int, batch_size: int, *sizes: Any) -> None:
    what = f"gradflow --length {length:,} --batch-size {batch_size:,}"
    _check_memory(length, batch_size, what, "use a smaller --length or --batch-size", *sizes)


def _check_input_memory(sentences: int, longest: int, *sizes: Any) -> None:
    """The input's sentences are one batch: refused where `flow_memory` puts it over the budget."""
    what = f"gradflow on {sentences:,} sentences of up to {longest:,} pieces (one batch)"
    _check_memory(longest, sentences, what, "give fewer or shorter sentences", *sizes)


def run_gradient_flow(
    out_png: str | Path,
    checkpoints: Sequence[str] | None = None,
    input_path: str | None = None,
    references_path: str | None = None,
    fresh: FreshModels | None = None,
    loss: Loss = "last",
    device: str = "cpu",
) -> tuple[Path, list[str]]:
    """`seq2seq gradflow`: trained checkpoints on `input_path`'s sentences, or `fresh` models (None: the
    default FreshModels; given with `checkpoints`, whose run would ignore it, a ConfigError).

    Returns the PNG written and one summary line per model and part (values at five time steps).
    """
    from ..text import read_lines

    what = "loss of each sentence's final output" if loss == "last" else "summed loss of all outputs"
    _check_flags(checkpoints, input_path, references_path, fresh, device)
    check_figure_output(out_png, inputs=[*(checkpoints or ()), input_path, references_path])
    if checkpoints:
        sources = read_lines(input_path)  # type: ignore[arg-type]  # _check_flags: given
        refs = read_lines(references_path) if references_path else None
        if refs is not None and len(refs) != len(sources):
            raise CorpusError(f"{input_path} has {len(sources)} lines but {references_path} has {len(refs)}")
        if not any(clean(s) for s in sources):
            raise CorpusError(f"{input_path}: no non-empty source sentences")
        labels = [f"{Path(c).parent.name}/{Path(c).name}" for c in checkpoints]  # RUN/best.pt
        if len(set(labels)) < len(labels):  # a/run/best.pt and b/run/best.pt: each by its whole path
            labels = [str(c) for c in checkpoints]
        if len(set(labels)) < len(labels):
            raise ConfigError(f"--checkpoint names {labels[0]} more than once: give each model once")
        results = {
            label: checkpoint_gradient_flow(c, sources, refs, loss, device) for label, c in zip(labels, checkpoints)
        }
        title = f"Gradient flow through time: {len(sources)} sentences from {input_path}; L = {what}"
    else:
        fresh = fresh or FreshModels()
        cells = CELLS if fresh.cell == "all" else (fresh.cell,)
        _check_fresh_memory(fresh.length, fresh.batch_size, None, FRESH_VOCAB, loss)  # before matplotlib is imported
        results = fresh_gradient_flow(cells, fresh.length, fresh.batch_size, loss=loss, seed=fresh.seed)
        title = f"Gradient flow through time: freshly initialised models, {fresh.length} random tokens; L = {what}"
    path = plot_gradient_flow(results, out_png, title, loss)
    _warn_gaps(results)
    lines = []
    for name, result in results.items():
        for part, values in result.items():
            at = sorted({0, len(values) // 4, len(values) // 2, 3 * len(values) // 4, len(values) - 1})
            if part == "decoder" and loss == "last":  # aligned at each sentence's EOS: d steps before it
                said = "  ".join(f"d={len(values) - 1 - t}: {values[t]:.3g}" for t in at)
                lines.append(f"{name} {part}: {said}  (d: steps before each sentence's EOS)")
            else:
                lines.append(f"{name} {part}: " + "  ".join(f"t={t}: {values[t]:.3g}" for t in at))
    return path, lines


def _warn_gaps(results: dict[str, dict[str, list[float]]]) -> None:
    """One warning line for the values a log axis cannot hold (drawn as gaps): gradients that underflowed
    to exactly 0, even in float64 (or were not finite)."""
    gaps = [f"{name} {part} {sum(not 0 < v < math.inf for v in values)} of {len(values)}"
            for name, result in results.items() for part, values in result.items()
            if not all(0 < v < math.inf for v in values)]  # fmt: skip
    if gaps:
        log.warning("gradflow: values 0 (below float64's smallest number) or not finite, gaps in the plot: %s",
                    "; ".join(gaps))  # fmt: skip


def _check_flags(
    checkpoints: Sequence[str] | None, input_path: str | None, references_path: str | None,
    fresh: FreshModels | None, device: str,
) -> None:  # fmt: skip
    """No flag the run would ignore: trained models take their sentences and device, fresh ones their sizes and seed.
    With `checkpoints`, `fresh.given` names the flags that set it (else each value off its default)."""
    if checkpoints:
        if not input_path:
            raise ConfigError("gradflow --checkpoint needs --input FILE (source sentences, one per line)")
        default = FreshModels()
        names = ("cell", "length", "batch_size", "seed")
        ignored = [
            f"--{name.replace('_', '-')} {getattr(fresh, name)}"
            for name in names
            if fresh is not None
            and (name in fresh.given if fresh.given is not None else getattr(fresh, name) != getattr(default, name))
        ]
        if ignored:
            raise ConfigError(f"gradflow --checkpoint runs the trained model on --input's sentences: "
                              f"{', '.join(ignored)} would be ignored (they set up --cell's fresh models); leave "
                              f"them out")  # fmt: skip
        return
    ignored = [flag for flag, value in (("--input", input_path), ("--references", references_path)) if value]
    ignored += [f"--device {device}"] if device != "cpu" else []
    if ignored:
        raise ConfigError(f"gradflow --cell runs fresh models on random tokens, on the CPU: {', '.join(ignored)} "
                          f"would be ignored (they apply to --checkpoint); leave them out")  # fmt: skip
