"""Truncated BPTT in `forward_backward`: exact when chunks cover the target, state carried, every chunk counts;
scheduled sampling (teacher_forcing < 1) at ratios 1, 0 and in between."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seq2seq.batches import Batch, collate
from seq2seq.config import ModelConfig, TrainConfig
from seq2seq.model import Seq2Seq
from seq2seq.objective import forward_backward
from seq2seq.prepared import EncodedSplit
from seq2seq.tokenizer import PAD_ID

SRC_VOCAB, TGT_VOCAB = 15, 12
SMOOTHING = 0.1


def make_model(cell: str = "lstm", input_feeding: bool = False) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = ModelConfig(
        cell=cell, input_feeding=input_feeding, emb_size=10, enc_hidden=6, dec_hidden=12, dropout=0.0, emb_init_std=1.0
    )  # fmt: skip  (torch's N(0, 1): outputs that depend clearly on the inputs fed)
    return Seq2Seq(cfg, SRC_VOCAB, TGT_VOCAB).train()


def make_batch() -> Batch:
    """Three pairs; the longest target has 6 pieces, so 7 decoder steps (BOS.. / ..EOS)."""
    src = [[4, 5, 6, 7], [8, 9], [10, 11, 12, 13, 14]]
    tgt = [[4, 5, 6, 7, 8, 9], [10, 11], [5, 7, 9, 11]]
    batch = collate(EncodedSplit.from_lists(src, tgt), np.arange(3))
    assert batch.tgt_in.shape == (3, 7)
    return batch


def grads(model: Seq2Seq) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def run(model: Seq2Seq, batch: Batch, tbptt: int) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = forward_backward(model, batch, TrainConfig(tbptt=tbptt, label_smoothing=SMOOTHING))
    return loss, grads(model)


def assert_grads_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], **tol) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=lambda m, n=name: f"{n}: {m}", **tol)


def grads_differ(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.allclose(a[n], b.get(n, torch.zeros_like(a[n])), rtol=1e-4, atol=1e-7) for n in a)


def chunk_loss(model: Seq2Seq, att: torch.Tensor, tgt_out: torch.Tensor) -> torch.Tensor:
    """Summed label-smoothed cross-entropy over the real (non-pad) target positions."""
    logits = model.logits(att)  # (B, t, V)
    mask = tgt_out != PAD_ID
    return F.cross_entropy(logits[mask], tgt_out[mask], reduction="sum", label_smoothing=SMOOTHING)


CELLS = [("lstm", False), ("lstm", True), ("gru", False), ("gru", True)]


@pytest.mark.parametrize(("cell", "input_feeding"), CELLS)
@pytest.mark.parametrize("tbptt", [7, 8, 100])
def test_chunk_covering_the_target_gives_full_bptt_gradients(cell: str, input_feeding: bool, tbptt: int) -> None:
    model, batch = make_model(cell, input_feeding), make_batch()
    full_loss, full = run(model, batch, 0)
    loss, truncated = run(model, batch, tbptt)
    assert loss == pytest.approx(full_loss, rel=1e-6)
    assert_grads_close(truncated, full, rtol=1e-5, atol=1e-7)
    # every parameter got a gradient, encoder and bridge included
    assert set(full) == {n for n, _ in model.named_parameters()}


@pytest.mark.parametrize(("cell", "input_feeding"), CELLS)
def test_state_is_carried_across_chunks(cell: str, input_feeding: bool) -> None:
    model, batch = make_model(cell, input_feeding), make_batch()
    full_loss, full = run(model, batch, 0)
    chunked_loss, chunked = run(model, batch, 2)
    # the forward pass is the same however it is cut: the summed loss is the full-BPTT loss
    assert chunked_loss == pytest.approx(full_loss, rel=1e-6)
    # but the gradient is truncated, so it is not the full-BPTT gradient
    assert grads_differ(chunked, full)

    # counterfactual: restart every chunk from the encoder's initial state
    with torch.no_grad():
        memory, state0 = model.encode(batch.src_ids, batch.src_lens)
        reset_loss = 0.0
        for t0 in range(0, 7, 2):
            att, _, _ = model.decoder(batch.tgt_in[:, t0 : t0 + 2], state0, memory)
            reset_loss += chunk_loss(model, att, batch.tgt_out[:, t0 : t0 + 2]).item()
    assert reset_loss != pytest.approx(full_loss, rel=1e-3)


def per_chunk_grads(model: Seq2Seq, batch: Batch, tbptt: int) -> list[dict[str, torch.Tensor]]:
    """By hand: encode, decode chunk k from the detached state left by chunk k-1, backprop it alone."""
    steps, out = batch.tgt_in.size(1), []
    carried = None
    for t0 in range(0, steps, tbptt):
        model.zero_grad(set_to_none=True)
        memory, state0 = model.encode(batch.src_ids, batch.src_lens)  # same values every time (no dropout)
        state = state0 if carried is None else carried  # the first chunk back-propagates into the bridge
        att, end, _ = model.decoder(batch.tgt_in[:, t0 : t0 + tbptt], state, memory)
        loss = chunk_loss(model, att, batch.tgt_out[:, t0 : t0 + tbptt])
        (loss / batch.n_tokens).backward()
        out.append(grads(model))
        carried = end.detach()
    return out


@pytest.mark.parametrize(("cell", "input_feeding"), CELLS)
def test_every_chunk_contributes_to_the_gradient(cell: str, input_feeding: bool) -> None:
    model, batch = make_model(cell, input_feeding), make_batch()
    _, accumulated = run(model, batch, 2)
    chunks = per_chunk_grads(model, batch, 2)
    assert len(chunks) == 4  # steps 0-1, 2-3, 4-5, 6
    names = {n for g in chunks for n in g}
    summed = {n: sum(g[n] for g in chunks if n in g) for n in names}
    assert_grads_close(accumulated, summed, rtol=1e-5, atol=1e-7)
    # the last chunk alone (what an optimiser stepping only at the end of a reset loop would see) is not it
    assert grads_differ(accumulated, chunks[-1])
    # nor is any single chunk
    for g in chunks:
        assert grads_differ(accumulated, g)


def test_tbptt_one_step_chunks_still_match_the_full_loss() -> None:
    model, batch = make_model("lstm", True), make_batch()
    full_loss, _ = run(model, batch, 0)
    loss, g = run(model, batch, 1)
    assert loss == pytest.approx(full_loss, rel=1e-6)
    assert all(torch.isfinite(t).all() for t in g.values())


@pytest.mark.parametrize("tbptt", [0, 3])
def test_teacher_forcing_ratio_one_and_zero(tbptt: int) -> None:
    """Ratio just below 1 takes the step-by-step path yet feeds references: same loss as the fused
    path; ratio 0 feeds the model's own argmax predictions after the first step (checked by hand)."""
    model, batch = make_model(), make_batch()
    full = forward_backward(model, batch, TrainConfig(tbptt=tbptt, label_smoothing=SMOOTHING))
    almost = forward_backward(
        model, batch, TrainConfig(tbptt=tbptt, label_smoothing=SMOOTHING, teacher_forcing=1 - 1e-9)
    )
    assert almost == pytest.approx(full, rel=1e-5)
    own = forward_backward(model, batch, TrainConfig(tbptt=tbptt, label_smoothing=SMOOTHING, teacher_forcing=0.0))
    with torch.no_grad():  # by hand: feed BOS, then each step's argmax (references only where padding)
        memory, state = model.encode(batch.src_ids, batch.src_lens)
        inp, total = batch.tgt_in[:, 0], 0.0
        for t in range(batch.tgt_in.size(1)):
            att, state, _ = model.decoder(inp[:, None], state, memory)
            total += chunk_loss(model, att, batch.tgt_out[:, t : t + 1]).item()
            pred = model.logits(att[:, 0]).argmax(-1)
            if t + 1 < batch.tgt_in.size(1):
                ref = batch.tgt_in[:, t + 1]
                inp = torch.where(ref == PAD_ID, ref, pred)
    assert own == pytest.approx(total, rel=1e-5)
    assert own != pytest.approx(full, rel=1e-3)


@pytest.mark.parametrize("tbptt", [0, 3])
@pytest.mark.parametrize("ratio", [0.25, 0.75])
def test_an_intermediate_teacher_forcing_ratio_feeds_references_at_about_that_rate(
    tbptt: int, ratio: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scheduled sampling at `ratio`: after BOS each position is fed its reference or the previous step's argmax
    (padding always its reference); where the two differ, the share of references is `ratio` (+-0.08 over ~350
    positions, binomial sd <= 0.025), drawn per position (steps with both kinds), carried across chunks; and the
    loss is the one of the inputs fed (one teacher-forced pass over them gives it)."""
    model = make_model()
    g = torch.Generator().manual_seed(3)  # the data: 64 pairs, sources of 3-7 pieces, targets of 4-9
    src_lens, tgt_lens = torch.randint(3, 8, (64,), generator=g), torch.randint(4, 10, (64,), generator=g)
    src = [torch.randint(4, SRC_VOCAB, (int(n),), generator=g).tolist() for n in src_lens]
    tgt = [torch.randint(4, TGT_VOCAB, (int(n),), generator=g).tolist() for n in tgt_lens]
    batch = collate(EncodedSplit.from_lists(src, tgt), np.arange(64))
    fed, preds = [], []
    real = model.decoder.forward

    def spy(tgt_in, state, memory):  # noqa: ANN001, ANN202
        out = real(tgt_in, state, memory)
        fed.append(tgt_in[:, 0].clone())
        with torch.no_grad():
            preds.append(model.logits(out[0][:, 0]).argmax(-1))
        return out

    monkeypatch.setattr(model.decoder, "forward", spy)
    torch.manual_seed(1)  # the draws: reproducible, not read
    loss = forward_backward(model, batch, TrainConfig(tbptt=tbptt, label_smoothing=SMOOTHING, teacher_forcing=ratio))
    steps = batch.tgt_in.size(1)
    assert len(fed) == steps  # one decoder call per step
    inputs, ref = torch.stack(fed, 1), batch.tgt_in
    assert torch.equal(inputs[:, 0], ref[:, 0])  # BOS
    own = torch.stack(preds[:-1], 1)  # the prediction each of steps 1.. could be fed
    pad = ref[:, 1:] == PAD_ID
    assert torch.equal(inputs[:, 1:][pad], ref[:, 1:][pad])
    is_ref, is_own = inputs[:, 1:] == ref[:, 1:], inputs[:, 1:] == own
    assert bool((is_ref | is_own).all())
    choice = ~pad & (ref[:, 1:] != own)  # positions where the two can be told apart
    assert choice.sum() > 300
    assert is_ref[choice].float().mean().item() == pytest.approx(ratio, abs=0.08)
    mixed = [(is_ref[:, t] & choice[:, t]).any() and (is_own[:, t] & choice[:, t]).any() for t in range(steps - 1)]
    assert sum(mixed) >= steps // 2  # drawn per position, not once per step
    with torch.no_grad():  # the loss of what was fed, in one teacher-forced pass
        memory, state = model.encode(batch.src_ids, batch.src_lens)
        att, _, _ = real(inputs, state, memory)
        assert loss == pytest.approx(chunk_loss(model, att, batch.tgt_out).item(), rel=1e-5)
