"""The network: step-wise decoding equals whole-sequence decoding, attention masks, packing, tying, and dropout
where the config puts it, in training only."""

from __future__ import annotations

import math

import pytest
import torch

from seq2seq.batches import collate
from seq2seq.config import ModelConfig, TrainConfig
from seq2seq.model import DecoderState, Dropout, Seq2Seq, count_parameters
from seq2seq.objective import TrainingLoss
from seq2seq.prepared import EncodedSplit
from seq2seq.tokenizer import BOS_ID, EOS_ID, PAD_ID

SRC_VOCAB, TGT_VOCAB = 17, 13


def make_model(seed: int = 0, **kw) -> Seq2Seq:
    torch.manual_seed(seed)
    values = {"emb_size": 12, "enc_hidden": 8, "dec_hidden": 16, "dropout": 0.0} | kw
    return Seq2Seq(ModelConfig(**values), SRC_VOCAB, TGT_VOCAB).eval()


def padded_sources() -> tuple[torch.Tensor, torch.Tensor]:
    """Three sources of lengths 5, 2 and 4 (EOS included), padded to 5."""
    src = torch.tensor(
        [
            [5, 9, 12, 7, EOS_ID],
            [11, EOS_ID, PAD_ID, PAD_ID, PAD_ID],
            [4, 16, 8, EOS_ID, PAD_ID],
        ]
    )
    return src, torch.tensor([5, 2, 4])


def target_inputs(batch: int = 3, steps: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    tgt = torch.randint(4, TGT_VOCAB, (batch, steps), generator=g)
    tgt[:, 0] = BOS_ID
    return tgt


def assert_states_close(a: DecoderState, b: DecoderState) -> None:
    assert len(a.rnn) == len(b.rnn)
    for x, y in zip(a.rnn, b.rnn):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    assert (a.feed is None) == (b.feed is None)
    if a.feed is not None:
        torch.testing.assert_close(a.feed, b.feed, rtol=1e-5, atol=1e-6)


ATTENTION_CASES = [("bahdanau", 16), ("general", 16), ("dot", 16), ("general", 24)]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("input_feeding", [False, True])
@pytest.mark.parametrize(("attention", "dec_hidden"), ATTENTION_CASES)
@torch.no_grad()
def test_decoding_all_steps_at_once_equals_one_step_at_a_time(cell, input_feeding, attention, dec_hidden) -> None:
    # dot attention needs dec_hidden == 2 * enc_hidden (16 == 2 * 8)
    model = make_model(cell=cell, input_feeding=input_feeding, attention=attention, dec_hidden=dec_hidden)
    memory, state0 = model.encode(*padded_sources())
    tgt_in = target_inputs()
    att_all, state_all, weights_all = model.decoder(tgt_in, state0, memory)
    assert att_all.shape == (3, tgt_in.size(1), 12)
    assert weights_all.shape == (3, tgt_in.size(1), 5)

    state, atts, weights = state0, [], []
    for t in range(tgt_in.size(1)):
        att, state, w = model.decoder(tgt_in[:, t : t + 1], state, memory)
        atts.append(att)
        weights.append(w)
    torch.testing.assert_close(torch.cat(atts, 1), att_all, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.cat(weights, 1), weights_all, rtol=1e-5, atol=1e-6)
    assert_states_close(state, state_all)

    # and splitting into uneven chunks (as truncated BPTT does) gives the same too
    att_a, mid, _ = model.decoder(tgt_in[:, :4], state0, memory)
    att_b, end, _ = model.decoder(tgt_in[:, 4:], mid, memory)
    torch.testing.assert_close(torch.cat([att_a, att_b], 1), att_all, rtol=1e-5, atol=1e-6)
    assert_states_close(end, state_all)


@pytest.mark.parametrize("attention", ["bahdanau", "general", "dot"])
@torch.no_grad()
def test_attention_is_a_distribution_over_real_source_positions(attention: str) -> None:
    model = make_model(attention=attention)
    src, lens = padded_sources()
    memory, state = model.encode(src, lens)
    assert memory.mask.tolist() == [[j < n for j in range(5)] for n in lens.tolist()]
    _, _, weights = model.decoder(target_inputs(), state, memory)  # (B, T, S)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 6))
    assert (weights >= 0).all()
    for b, n in enumerate(lens.tolist()):
        assert (weights[b, :, n:] == 0).all()  # exactly zero on padding
        assert (weights[b, :, :n] > 0).all()
    # the step function returns the same weights, row per hypothesis
    _, _, w = model.step(torch.full((3,), BOS_ID), state, memory)
    torch.testing.assert_close(w, weights[:, 0])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("enc_layers", [1, 2])
@torch.no_grad()
def test_padding_does_not_change_a_sentence_encoding(cell: str, enc_layers: int) -> None:
    model = make_model(cell=cell, enc_layers=enc_layers, dec_layers=enc_layers)
    src, lens = padded_sources()
    memory, state = model.encode(src, lens)
    for b, n in enumerate(lens.tolist()):
        alone_mem, alone_state = model.encode(src[b : b + 1, :n], lens[b : b + 1])
        torch.testing.assert_close(memory.states[b, :n], alone_mem.states[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(memory.keys[b, :n], alone_mem.keys[0], rtol=1e-5, atol=1e-6)
        assert (memory.states[b, n:] == 0).all()  # padded positions carry nothing
        # the backward direction starts at the last real token, so the initial state matches too
        for x, y in zip(state.rnn, alone_state.rnn):
            torch.testing.assert_close(x[:, b], y[:, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("cell", "input_feeding"), [("lstm", False), ("gru", True), ("rnn", False)])
@torch.no_grad()
def test_step_log_probs_equal_log_softmax_of_the_full_decode(cell: str, input_feeding: bool) -> None:
    model = make_model(cell=cell, input_feeding=input_feeding)
    memory, state = model.encode(*padded_sources())
    tgt_in = target_inputs()
    att, _, _ = model.decoder(tgt_in, state, memory)
    full = torch.log_softmax(model.logits(att), dim=-1)  # (B, T, V)
    for t in range(tgt_in.size(1)):
        log_probs, state, _ = model.step(tgt_in[:, t], state, memory)
        assert log_probs.shape == (3, TGT_VOCAB)
        torch.testing.assert_close(log_probs, full[:, t], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3))


def tied_loss(model: Seq2Seq) -> torch.Tensor:
    """A loss that reads the target embedding (decoder inputs) and the output projection (logits)."""
    memory, state = model.encode(*padded_sources())
    att, _, _ = model.decoder(target_inputs(), state, memory)
    weights = torch.randn(3, 6, TGT_VOCAB, generator=torch.Generator().manual_seed(3))
    return (model.logits(att).log_softmax(-1) * weights).sum()


def test_tied_embeddings_are_one_weight_in_training() -> None:
    tied = make_model(tie_embeddings=True)
    untied = make_model(seed=1, tie_embeddings=False)
    untied.load_state_dict(tied.state_dict())  # the same values, with two separate (V, E) weights
    assert count_parameters(untied) - count_parameters(tied) == TGT_VOCAB * 12
    torch.testing.assert_close(untied.out.weight, untied.decoder.embed.weight)

    # one weight gets the gradients of both uses: the tied gradient is the sum of the untied two
    tied_loss(tied).backward()
    tied_loss(untied).backward()
    torch.testing.assert_close(
        tied.decoder.embed.weight.grad, untied.decoder.embed.weight.grad + untied.out.weight.grad, rtol=1e-5, atol=1e-6
    )
    assert untied.out.weight.grad.abs().sum() > 0 and untied.decoder.embed.weight.grad.abs().sum() > 0

    # after an optimiser step the projection still reads what the embedding reads; untied, they part
    for model in (tied, untied):
        torch.optim.Adam(model.parameters(), lr=0.1).step()
    assert torch.equal(tied.out.weight, tied.decoder.embed.weight)
    assert not torch.equal(untied.out.weight, untied.decoder.embed.weight)
    with torch.no_grad():  # and a change through one name is seen through the other
        tied.out.weight[5, 0] = 42.0
    assert tied.decoder.embed.weight[5, 0].item() == 42.0

    # tying survives a state_dict round trip into a fresh model: a step there keeps them equal too
    fresh = make_model(seed=1, tie_embeddings=True)
    fresh.load_state_dict(tied.state_dict())
    torch.testing.assert_close(fresh.out.weight, tied.out.weight)
    tied_loss(fresh).backward()
    torch.optim.SGD(fresh.parameters(), lr=0.1).step()
    assert torch.equal(fresh.out.weight, fresh.decoder.embed.weight)
    assert not torch.equal(fresh.out.weight, tied.out.weight)


def test_modules_keep_no_per_batch_state() -> None:
    # two different batches decoded in any order give the same results: state is explicit
    model = make_model(input_feeding=True)
    src, lens = padded_sources()
    with torch.no_grad():
        m1, s1 = model.encode(src, lens)
        m2, s2 = model.encode(src[1:2, :2], lens[1:2])
        a1, _, _ = model.decoder(target_inputs(), s1, m1)
        model.decoder(target_inputs(1, 3), s2, m2)
        b1, _, _ = model.decoder(target_inputs(), s1, m1)
    torch.testing.assert_close(a1, b1)


@pytest.mark.parametrize("std", [0.25, 0.7])
def test_embeddings_start_as_asked_and_a_fresh_model_predicts_near_uniformly(std: float) -> None:
    """Embeddings start as N(0, emb_init_std^2) (default 0.25), padding row 0. A fresh model with the
    default then predicts almost uniformly (loss within 0.05 of ln V); with torch's N(0, 1) its first
    loss is ~0.6 above ln V (measured 7.49 against 6.91 for this model)."""
    vocab = 1000
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(dropout=0.0, emb_init_std=std), vocab, vocab).eval()
    for embed in (model.encoder.embed, model.decoder.embed):
        assert embed.weight[PAD_ID].abs().max() == 0
        assert embed.weight[1:].std().item() == pytest.approx(std, rel=0.02)

    def first_loss(m: Seq2Seq) -> float:
        g = torch.Generator().manual_seed(1)
        src, tgt = torch.randint(4, vocab, (16, 9), generator=g), torch.randint(4, vocab, (16, 7), generator=g)
        with torch.no_grad():
            memory, state = m.encode(src, torch.full((16,), 9))
            att, _, _ = m.decoder(tgt, state, memory)
            return torch.nn.functional.cross_entropy(m.logits(att).flatten(0, 1), tgt.roll(-1, 1).flatten()).item()

    assert ModelConfig().emb_init_std == 0.25
    if std == 0.25:
        assert abs(first_loss(model) - math.log(vocab)) < 0.05
    torch.manual_seed(0)
    assert first_loss(Seq2Seq(ModelConfig(dropout=0.0, emb_init_std=1.0), vocab, vocab).eval()) > math.log(vocab) + 0.3


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_keeps_each_element_with_probability_1_minus_p_scaled_to_keep_the_mean(dtype) -> None:
    torch.manual_seed(0)
    drop = Dropout(0.25).train()
    x = torch.ones(1001, 999, dtype=dtype, requires_grad=True)  # an element count that is not a multiple of 4
    y = drop(x)
    assert y.dtype == dtype and y.shape == x.shape
    values = y.unique().tolist()  # dropped, or scaled by 1 / (1 - p)
    assert len(values) == 2 and values[0] == 0 and values[1] == pytest.approx(4 / 3, rel=4e-3)
    kept = (y != 0).float().flatten()
    # each of the four 16-bit lanes of a 64-bit draw keeps 3/4 (a lane without its sign bit would keep all)
    lanes = kept[: kept.numel() // 4 * 4].view(-1, 4).mean(0)
    torch.testing.assert_close(lanes, torch.full((4,), 0.75), rtol=0, atol=0.005)
    assert y.float().mean().item() == pytest.approx(1.0, abs=0.01)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(x * mask)/dx = mask
    assert drop.eval()(x) is x and Dropout(0.0).train()(x) is x


DROPPY = {"enc_layers": 2, "dec_layers": 2, "dropout": 0.5, "emb_init_std": 1.0}  # every place dropout can go


def output_scores(model: Seq2Seq) -> torch.Tensor:
    """The scores (B, T, V) of a teacher-forced pass over the padded test batch."""
    src, lens = padded_sources()
    memory, state = model.encode(src, lens)
    att, _, _ = model.decoder(target_inputs(), state, memory)
    return model.logits(att)


def test_the_model_drops_out_in_training_only_and_evaluates_as_a_dropout_free_copy() -> None:
    """ModelConfig(dropout=0.5): two train-mode passes differ; eval-mode passes are identical and equal to those of
    a dropout=0 model with the same weights, which gives them in train mode too (no randomness left)."""
    model = make_model(**DROPPY).train()
    plain = make_model(seed=1, **(DROPPY | {"dropout": 0.0}))
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        first, second = output_scores(model), output_scores(model)
        assert not torch.allclose(first, second)
        model.eval()
        evaluated = output_scores(model)
        assert torch.equal(evaluated, output_scores(model))
        assert torch.equal(evaluated, output_scores(plain.eval()))
        assert torch.equal(evaluated, output_scores(plain.train()))


def test_dropout_is_applied_to_embeddings_between_layers_and_before_the_output_layer() -> None:
    """Where ModelConfig.dropout says: on the source and target embeddings, between the encoder's layers, before
    the output layer (each seen by a hook: its input is that tensor, and about half of it is zeroed, the rest
    doubled), in training's loss as in `logits`, and between the decoder RNN's layers (torch's own dropout: with
    the modules above off, train-mode passes still differ)."""
    model = make_model(**DROPPY).train()
    src, lens = padded_sources()
    calls: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    for name, module in model.named_modules():
        if isinstance(module, Dropout):
            module.register_forward_hook(lambda _m, args, out, name=name: calls.append((name, args[0], out)))
    with torch.no_grad():
        memory, state = model.encode(src, lens)
        att, _, _ = model.decoder(target_inputs(), state, memory)
        model.logits(att)
        assert [(name, x.shape) for name, x, _ in calls] == [
            ("encoder.dropout", (3, 5, 12)),  # source embeddings
            ("encoder.dropout", (3, 5, 16)),  # the first layer's outputs, both directions
            ("decoder.dropout", (3, 6, 12)),  # target embeddings
            ("dropout", (3, 6, 12)),  # attentional vectors, before the output layer
        ]
        assert torch.equal(calls[0][1], model.encoder.embed(src))
        assert torch.equal(calls[2][1], model.decoder.embed(target_inputs()))
        assert torch.equal(calls[3][1], att)
        calls_by_logits = calls.copy()
        calls.clear()  # training's path: the output layer is fused into the loss (objective._loss), not `logits`
        batch = collate(EncodedSplit.from_lists([[5, 9, 12, 7], [11], [4, 16, 8]], [[4, 5], [6, 7, 8], [9]]), [0, 1, 2])
        TrainingLoss(model, TrainConfig())(batch)
        assert [(name, x.shape) for name, x, _ in calls] == [
            ("encoder.dropout", (3, 5, 12)),
            ("encoder.dropout", (3, 5, 16)),
            ("decoder.dropout", (3, 4, 12)),
            ("dropout", (batch.n_tokens, 12)),  # the real target positions' attentional vectors
        ]
        for name, x, y in calls_by_logits + calls:
            dropped = (y == 0) & (x != 0)
            assert 0.3 < dropped.sum() / (x != 0).sum() < 0.7, name  # of the elements that can be seen dropped
            assert torch.equal(y[~dropped], 2 * x[~dropped]), name  # 1 / (1 - 0.5): exact
        for module in model.modules():
            if isinstance(module, Dropout):
                module.p = 0.0  # off: what is left is the decoder RNN's own
        assert not torch.allclose(output_scores(model), output_scores(model))
