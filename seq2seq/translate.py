"""Batch translation: `Translator` loads a checkpoint once, then sorts, batches, searches, restores order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tqdm.auto import tqdm

from .base import Translating
from .checkpoint import CheckpointError, load_checkpoint
from .config import DecodeConfig, ModelConfig, from_dict
from .data import pad
from .hardware import resolve_device, resolve_precision
from .model import Seq2Seq
from .search import Hypothesis, beam_search, greedy_search
from .shortlist import Lexicon, Shortlist, make_shortlist
from .tokenizer import EOS_ID, Tokenizer


class _ShortlistStepper(NamedTuple):
    model: Seq2Seq
    shortlist: Shortlist

    def step(self, prev_ids: torch.Tensor, state: Any, memory: Any) -> tuple[torch.Tensor, Any, torch.Tensor]:
        return self.model.step(prev_ids, state, memory, self.shortlist)


@torch.inference_mode()
def search(
    model: Seq2Seq,
    src_ids: Sequence[Sequence[int]],
    cfg: DecodeConfig,
    keep_attention: bool = False,
    progress: bool = False,
    lexicon: Lexicon | None = None,
) -> list[list[Hypothesis]]:
    """The n-best hypotheses for each source (piece ids without EOS), in input order.

    Sources are sorted by length and cut into batches of `cfg.batch_size`; the result does not
    depend on the batch size. Sources longer than `cfg.max_src_len` pieces are truncated.
    `cfg.shortlist` > 0 needs the `lexicon` the checkpoint was saved with (see shortlist.py).
    """
    if cfg.shortlist and lexicon is None:
        raise ValueError("shortlist decoding needs a checkpoint with a lexicon (saved by training since v0.2)")
    model.eval()
    device = next(model.parameters()).device
    precision = resolve_precision(cfg.precision, str(device))  # HardwareError before any work
    order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))
    results: list[list[Hypothesis]] = [[] for _ in src_ids]
    bar = tqdm(total=len(order), desc="translate", unit="sent", disable=not progress, leave=False)
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        seqs = [list(src_ids[i][: cfg.max_src_len]) for i in idx]
        lens = torch.tensor([len(s) + 1 for s in seqs], device=device)
        max_lens = (cfg.max_len_a * lens + cfg.max_len_b).long()
        with precision.autocast(device.type):
            src = pad(seqs, after=EOS_ID).to(device)
            memory, state = model.encode(src, lens)
            stepper: Any = model
            if cfg.shortlist and lexicon is not None:
                shortlist, allowed = make_shortlist(
                    lexicon, src, memory.mask, cfg.shortlist, cfg.shortlist_frequent, model.out
                )
                memory, stepper = memory._replace(allowed=allowed), _ShortlistStepper(model, shortlist)
            if cfg.beam_size == 1:
                best = greedy_search(stepper, memory, state, max_lens, cfg.length_penalty, keep_attention)
                hyps = [[h] for h in best]
            else:
                hyps = beam_search(
                    stepper,
                    memory,
                    state,
                    max_lens,
                    cfg.beam_size,
                    cfg.length_penalty,
                    cfg.n_best,
                    keep_attention,
                    cfg.stopping,
                )
            if stepper is not model:  # shortlist positions back to vocabulary ids
                to_vocab = stepper.shortlist.ids.tolist()
                hyps = [[h._replace(ids=[to_vocab[i] for i in h.ids]) for h in nbest] for nbest in hyps]
        for i, h in zip(idx, hyps):
            results[i] = h
        bar.update(len(idx))
    bar.close()
    return results


class Translator(Translating):
    """A trained model with its tokenizers, ready to translate lists of sentences."""

    def __init__(self, model: Seq2Seq, src_tok: Tokenizer, tgt_tok: Tokenizer, lexicon: Lexicon | None = None) -> None:
        self.model, self.src_tok, self.tgt_tok, self.lexicon = model.eval(), src_tok, tgt_tok, lexicon

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> Translator:
        """Load a checkpoint written by `seq2seq train` (best.pt, last.pt, or an averaged one)."""
        ckpt = load_checkpoint(path)
        try:
            src_tok, tgt_tok = Tokenizer(ckpt["src_spm"]), Tokenizer(ckpt["tgt_spm"])
            model = Seq2Seq(from_dict(ModelConfig, ckpt["model_config"]), len(src_tok), len(tgt_tok))
            model.load_state_dict(ckpt["model"])
            lexicon = Lexicon.from_payload(ckpt["lexicon"]) if "lexicon" in ckpt else None
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            raise CheckpointError(
                f"{path}: incomplete or inconsistent checkpoint: {str(err).splitlines()[0]}"
            ) from None
        return cls(model.to(resolve_device(str(device))), src_tok, tgt_tok, lexicon)

    def search(
        self, src_ids: Sequence[Sequence[int]], cfg: DecodeConfig, keep_attention: bool = False, progress: bool = False
    ) -> list[list[Hypothesis]]:
        """The n-best hypotheses for each source (piece ids without EOS), in input order."""
        return search(self.model, src_ids, cfg, keep_attention, progress, self.lexicon)
