"""Batch translation: `Translator` loads a checkpoint once, then sorts, batches, searches, restores order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, load_checkpoint
from .config import DecodeConfig, ModelConfig, from_dict
from .data import clean, pad
from .model import Seq2Seq
from .search import Hypothesis, beam_search, greedy_search
from .tokenizer import EOS_ID, Tokenizer


@torch.inference_mode()
def search(
    model: Seq2Seq,
    src_ids: Sequence[Sequence[int]],
    cfg: DecodeConfig,
    keep_attention: bool = False,
    progress: bool = False,
) -> list[list[Hypothesis]]:
    """The n-best hypotheses for each source (piece ids without EOS), in input order.

    Sources are sorted by length and cut into batches of `cfg.batch_size`; the result does not
    depend on the batch size. Sources longer than `cfg.max_src_len` pieces are truncated.
    """
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))
    results: list[list[Hypothesis]] = [[] for _ in src_ids]
    bar = tqdm(total=len(order), desc="translate", unit="sent", disable=not progress, leave=False)
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        seqs = [list(src_ids[i][: cfg.max_src_len]) for i in idx]
        lens = torch.tensor([len(s) + 1 for s in seqs], device=device)
        max_lens = (cfg.max_len_a * lens + cfg.max_len_b).long()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            memory, state = model.encode(pad(seqs, after=EOS_ID).to(device), lens)
            if cfg.beam_size == 1:
                hyps = [[h] for h in greedy_search(model, memory, state, max_lens, cfg.length_penalty, keep_attention)]
            else:
                hyps = beam_search(
                    model, memory, state, max_lens, cfg.beam_size, cfg.length_penalty, cfg.n_best, keep_attention
                )
        for i, h in zip(idx, hyps):
            results[i] = h
        bar.update(len(idx))
    bar.close()
    return results


class Translator:
    """A trained model with its tokenizers, ready to translate lists of sentences."""

    def __init__(self, model: Seq2Seq, src_tok: Tokenizer, tgt_tok: Tokenizer) -> None:
        self.model, self.src_tok, self.tgt_tok = model.eval(), src_tok, tgt_tok

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> Translator:
        """Load a checkpoint written by `seq2seq train` (best.pt, last.pt, or an averaged one)."""
        ckpt = load_checkpoint(path)
        try:
            src_tok, tgt_tok = Tokenizer(ckpt["src_spm"]), Tokenizer(ckpt["tgt_spm"])
            model = Seq2Seq(from_dict(ModelConfig, ckpt["model_config"]), len(src_tok), len(tgt_tok))
            model.load_state_dict(ckpt["model"])
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            raise CheckpointError(
                f"{path}: incomplete or inconsistent checkpoint: {str(err).splitlines()[0]}"
            ) from None
        return cls(model.to(device), src_tok, tgt_tok)

    def translate_nbest(
        self,
        sentences: Sequence[str],
        cfg: DecodeConfig | None = None,
        keep_attention: bool = False,
        progress: bool = False,
    ) -> list[list[tuple[str, Hypothesis]]]:
        """The n-best (text, hypothesis) pairs per sentence; empty input gives no hypotheses."""
        cfg = cfg or DecodeConfig()
        texts = [clean(s) for s in sentences]
        live = [i for i, s in enumerate(texts) if s]
        src_ids = self.src_tok.encode([texts[i] for i in live])
        out: list[list[tuple[str, Hypothesis]]] = [[] for _ in sentences]
        for i, hyps in zip(live, search(self.model, src_ids, cfg, keep_attention, progress)):
            out[i] = list(zip(self.tgt_tok.decode([h.ids for h in hyps]), hyps))
        return out

    def translate(self, sentences: Sequence[str], cfg: DecodeConfig | None = None, progress: bool = False) -> list[str]:
        """One translation per sentence, in order; an empty sentence translates to ''."""
        return [nbest[0][0] if nbest else "" for nbest in self.translate_nbest(sentences, cfg, progress=progress)]
