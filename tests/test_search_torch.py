"""Search over a real, randomly initialised Seq2Seq through the torch engine (translation/torch_engine.py):
beam 1 is greedy, a sentence's hypotheses do not depend on its batch or the batch size, and the engine's
shortcuts (each row's best candidates, one memory row per sentence's beams) search as the plain search."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from model_kinds import VARIANTS

from seq2seq.config import DecodeConfig, ModelConfig
from seq2seq.model import Seq2Seq
from seq2seq.search import beam_search, greedy_search, search
from seq2seq.tokenizer import EOS_ID
from seq2seq.translation.torch_engine import TorchEngine

# --- a real, randomly initialised Seq2Seq ------------------------------------------------------


def random_model(seed: int = 0, **kw) -> Seq2Seq:
    torch.manual_seed(seed)
    cfg = ModelConfig(emb_size=16, enc_hidden=8, dec_hidden=16, dropout=0.0, **kw)
    return Seq2Seq(cfg, 13, 11).eval()


def random_sources(n: int, seed: int = 1) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 7, (n,), generator=g).tolist()
    return [torch.randint(4, 13, (length,), generator=g).tolist() for length in lengths]


def encode(model: Seq2Seq, sources: list[list[int]]):
    width = max(len(s) for s in sources) + 1
    ids = torch.zeros(len(sources), width, dtype=torch.long)
    for i, s in enumerate(sources):
        ids[i, : len(s) + 1] = torch.tensor(s + [EOS_ID])
    lens = torch.tensor([len(s) + 1 for s in sources])
    memory, state = model.encode(ids, lens)
    return memory, state, lens + 4  # max_lens


@pytest.mark.parametrize("kw", [{}, {"cell": "gru", "input_feeding": True}])
@torch.no_grad()
def test_beam_one_equals_greedy_on_random_seq2seq(kw) -> None:
    model = random_model(**kw)
    sources = random_sources(6)
    memory, state, max_lens = encode(model, sources)
    model = TorchEngine(model, DecodeConfig(precision="fp32"))  # the torch model as a search engine
    greedy = greedy_search(model, memory, state, max_lens)
    for stopping in ("bound", "beam"):
        beam = beam_search(model, memory, state, max_lens, 1, 0.0, stopping=stopping)
        for g, [b] in zip(greedy, beam):
            assert b.ids == g.ids
            assert b.log_prob == pytest.approx(g.log_prob, abs=1e-5)


@pytest.mark.parametrize(
    ("beam", "n_best", "length_penalty", "stopping"),
    [(1, 1, 0.0, "bound"), (3, 2, 1.0, "bound"), (5, 1, 0.6, "bound"), (3, 2, 1.0, "beam")],
)
@torch.no_grad()
def test_beam_search_is_batch_invariant(beam: int, n_best: int, length_penalty: float, stopping: str) -> None:
    model = random_model(seed=3)
    sources = random_sources(5, seed=4)
    memory, state, max_lens = encode(model, sources)
    engine = TorchEngine(model, DecodeConfig(precision="fp32"))
    together = beam_search(engine, memory, state, max_lens, beam, length_penalty, n_best, stopping=stopping)
    for src, hyps in zip(sources, together):
        alone = beam_search(engine, *encode(model, [src]), beam, length_penalty, n_best, stopping=stopping)[0]
        assert [h.ids for h in hyps] == [h.ids for h in alone]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone], abs=1e-5)


@pytest.mark.parametrize("beam", [1, 3])
@torch.no_grad()
def test_search_gives_the_same_texts_for_every_batch_size(beam: int) -> None:
    model = random_model(seed=7)
    sources = random_sources(20, seed=8)
    engine = TorchEngine(model, DecodeConfig(precision="fp32"))
    runs = {size: search(engine, sources, DecodeConfig(beam_size=beam, batch_size=size, precision="fp32"))
            for size in (1, 7, 64)}  # fmt: skip
    for size in (7, 64):
        for alone, batched in zip(runs[1], runs[size]):
            assert [h.ids for h in batched] == [h.ids for h in alone]
            assert [h.score for h in batched] == pytest.approx([h.score for h in alone], abs=1e-5)


# --- the torch engine's shortcuts: the same search as over all log-probs with a memory row per beam ---


class AllLogProbs(TorchEngine):
    """The torch engine without its shortcuts: the search reads all (N, V) log-probs, and every search
    row gets its own copy of its sentence's memory row."""

    supports_candidates = False

    def encode(self, src_ids):
        memory, state = super().encode(src_ids)
        return memory.memory, state  # a bare Memory: select copies rows


@pytest.mark.parametrize("kind", sorted(VARIANTS))
@pytest.mark.parametrize(("beam", "n_best", "length_penalty"), [(1, 1, 0.0), (4, 3, 1.0), (6, 1, 0.6)])
def test_torch_candidates_and_shared_memory_rows_search_as_all_log_probs(
    kind: str, beam: int, n_best: int, length_penalty: float
) -> None:
    """`TorchEngine` hands the search each row's best candidates and lets a sentence's beams share one
    memory row (GroupedMemory); the hypotheses and scores are those of the plain search, for every
    model kind (input feeding and Bahdanau attention read the memory differently), sentences
    finishing at different steps (memory rows dropped) and a batch smaller than the input."""
    torch.manual_seed(11)
    # torch's N(0, 1) embeddings: decisive predictions (the default 0.25 start is near-uniform, where float
    # summation order may flip exact-looking ties between the two searches)
    model = Seq2Seq(dataclasses.replace(VARIANTS[kind], emb_init_std=1.0), 13, 11).eval()
    sources = random_sources(9, seed=12)
    cfg = DecodeConfig(beam_size=beam, n_best=n_best, length_penalty=length_penalty, batch_size=4, precision="fp32")
    fast, plain = TorchEngine(model, cfg), AllLogProbs(model, cfg)
    memory, _ = fast.encode(sources[:3])
    assert fast.select(memory, np.repeat(np.arange(3), beam)).memory.states.size(0) == 3  # shared, not copied
    got, expect = search(fast, sources, cfg), search(plain, sources, cfg)
    assert [[h.ids for h in hyps] for hyps in got] == [[h.ids for h in hyps] for hyps in expect]
    assert [h.score for hyps in got for h in hyps] == pytest.approx(
        [h.score for hyps in expect for h in hyps], abs=1e-5
    )
