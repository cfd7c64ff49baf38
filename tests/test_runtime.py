"""The NumPy runtime (engines/numpy_runtime.py) against the torch reference path.

Three levels: the network (every cell, attention kind, depth and input feeding: encoder
memory and step log-probs equal to model.Seq2Seq's within float32 rounding), the searches
(driven by one random log-prob table through both implementations: identical hypotheses and
scores), and whole translation (export a trained checkpoint, translate: identical text).
"""

from __future__ import annotations

import dataclasses
import zipfile
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pytest
import torch
from corpora import translate_in_a_fresh_process

from seq2seq import search
from seq2seq.checkpoint import load_checkpoint, save_checkpoint
from seq2seq.config import ConfigError, DecodeConfig, ModelConfig
from seq2seq.errors import CheckpointError
from seq2seq.model import Seq2Seq
from seq2seq.tokenizer import BOS_ID, EOS_ID
from seq2seq.translation import numpy_runtime as runtime
from seq2seq.translation.numpy_runtime import Network, RuntimeTranslator, export_runtime, is_runtime_model
from seq2seq.translation.torch_engine import Translator

if TYPE_CHECKING:
    from pathlib import Path

SENTENCES = ["red cat", "the moon", "dog dog bird sun moon tree house", "", "green", "blue house red tree", "sun"]

# --- the network --------------------------------------------------------------------------------

VARIANTS = {
    "lstm general": ModelConfig(emb_size=16, enc_hidden=8, dec_hidden=24),
    "gru bahdanau 2x2": ModelConfig(
        cell="gru", emb_size=16, enc_hidden=8, dec_hidden=24, attention="bahdanau", enc_layers=2, dec_layers=2
    ),  # fmt: skip
    "rnn dot": ModelConfig(cell="rnn", emb_size=16, enc_hidden=8, dec_hidden=16, attention="dot"),
    "lstm input feeding, untied, 2 decoder layers": ModelConfig(
        emb_size=16, enc_hidden=8, dec_hidden=24, input_feeding=True, tie_embeddings=False, dec_layers=2
    ),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_network_matches_the_torch_model_step_by_step(name: str) -> None:
    cfg = VARIANTS[name]
    torch.manual_seed(0)
    model = Seq2Seq(cfg, src_vocab=30, tgt_vocab=40).eval()
    net = Network(cfg, {k: v.numpy() for k, v in model.state_dict().items()})
    src = torch.tensor([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0], [11, 3, 0, 0, 0]])  # padded, EOS-terminated
    lens = torch.tensor([5, 3, 2])
    with torch.inference_mode():
        memory, state = model.encode(src, lens)
        np_memory, np_state = net.encode_padded(src.numpy(), lens.numpy())
        np.testing.assert_allclose(np_memory.states, memory.states.numpy(), atol=1e-5)
        np.testing.assert_array_equal(np_memory.mask, memory.mask.numpy())
        prev = torch.full((3,), BOS_ID)
        for t in range(6):  # a few steps on the model's own greedy output
            log_probs, state, weights = model.step(prev, state, memory)
            np_log_probs, np_state, np_weights = net.step(prev.numpy(), np_state, np_memory)
            np.testing.assert_allclose(np_log_probs, log_probs.numpy(), atol=1e-5, err_msg=f"step {t}")
            np.testing.assert_allclose(np_weights, weights.numpy(), atol=1e-5, err_msg=f"step {t}")
            prev = log_probs.argmax(dim=1)


# --- the one search, whatever arrays the engine hands it -----------------------------------------


class Rows(NamedTuple):
    """Memory and state of the table engines: the sentence each row belongs to."""

    sent: np.ndarray

    def select(self, idx) -> Rows:  # a NumPy array or a torch tensor
        return Rows(self.sent[np.asarray(idx)])


class TableNet:
    """A next-piece distribution per (sentence, step, previous piece), handed over as NumPy arrays
    (as runtime.Network does).

    With the step in the key, different outputs have different scores (no exact ties, whose
    order two top-k implementations may break differently).
    """

    def __init__(self, table: np.ndarray) -> None:
        self.table, self.t = table, 0  # (sentences, steps, V, V) normalised float32 log-probs

    def next(self, sent: np.ndarray, prev: np.ndarray) -> np.ndarray:
        self.t += 1
        return self.table[sent, self.t - 1, prev]

    def select(self, obj: Rows, rows: np.ndarray) -> Rows:
        return obj.select(rows)

    def step(self, prev: np.ndarray, state: Rows, memory: Rows):
        return self.next(memory.sent, prev), state, np.zeros((len(prev), 1), np.float32)


class TableStepper(TableNet):
    """The same table handed over as torch tensors (as a torch model's step returns them)."""

    def step(self, prev_ids: np.ndarray, state: Rows, memory: Rows):
        return torch.from_numpy(self.next(memory.sent, prev_ids)), state, torch.zeros(len(prev_ids), 1)


def _table(seed: int, sentences: int, steps: int, vocab: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((sentences, steps, vocab, vocab)) * 2
    logits[..., EOS_ID] -= 1.5  # long enough outputs that the length limits matter too
    logits[..., : BOS_ID + 1] = -np.inf  # never PAD, UNK or BOS
    return (logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))).astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "beam,penalty,n_best,stopping",
    [(1, 0.0, 1, "bound"), (1, 1.0, 1, "bound"), (3, 1.0, 2, "bound"), (4, 0.6, 4, "beam"), (5, 0.0, 1, "bound"),
     (3, -0.5, 1, "bound"), (2, 1.0, 1, "beam")],
)  # fmt: skip
def test_one_search_gives_the_same_hypotheses_from_numpy_and_torch_arrays(
    seed: int, beam: int, penalty: float, n_best: int, stopping: str
) -> None:
    n, vocab = 5, 12
    max_lens, rows = np.array([3, 9, 5, 14, 1]), Rows(np.arange(n))
    table, limits = _table(seed, n, max_lens.max(), vocab), torch.from_numpy(max_lens)
    if beam == 1:
        expect = [[h] for h in search.greedy_search(TableStepper(table), rows, rows, limits, penalty)]
        got = [[h] for h in search.greedy_search(TableNet(table), rows, rows, max_lens, penalty)]
    else:
        expect = search.beam_search(TableStepper(table), rows, rows, limits, beam, penalty, n_best, stopping=stopping)
        got = search.beam_search(TableNet(table), rows, rows, max_lens, beam, penalty, n_best, stopping=stopping)
    assert [[(h.ids, h.score, h.log_prob) for h in hyps] for hyps in got] == [
        [(h.ids, h.score, h.log_prob) for h in hyps] for hyps in expect
    ]
    assert all(len(h.ids) < m for hyps, m in zip(got, max_lens) for h in hyps)  # EOS counts toward the limit


def test_topk_is_exact_on_wide_rows_with_ties_and_infinities() -> None:
    rng = np.random.default_rng(0)
    for trial in range(100):
        n, k = int(rng.integers(1, 9)), int(rng.integers(1, 11))
        x = rng.standard_normal((n, 16 * int(rng.integers(40, 200)))).astype(np.float32)
        x[rng.random(x.shape) < 0.3] = -np.inf
        if trial % 3 == 0:
            x = np.round(x)  # many ties
        if trial % 4 == 0:
            x[0] = -np.inf
            x[0, :2] = 1.0  # fewer finite values than k
        vals, idx = search.topk(x, k)
        assert np.array_equal(vals, -np.sort(-x, axis=1)[:, :k])
        assert np.array_equal(np.take_along_axis(x, idx, axis=1), vals)
        assert all(len(set(row)) == k for row in idx.tolist())


# --- whole translation --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_runtime(run_dir / "best.pt", tmp_path_factory.mktemp("export") / "model.npz")


@pytest.mark.parametrize("cfg", [DecodeConfig(beam_size=1), DecodeConfig(beam_size=4, n_best=3),
                                 DecodeConfig(beam_size=3, stopping="beam", batch_size=2)])  # fmt: skip
def test_exported_model_translates_like_the_checkpoint(run_dir: Path, exported: Path, cfg: DecodeConfig) -> None:
    reference = dataclasses.replace(cfg, precision="fp32")  # the runtime computes in float32 (auto: fp32 there)
    expect = Translator.from_checkpoint(run_dir / "best.pt").translate_nbest(SENTENCES, reference)
    got = RuntimeTranslator.load(exported).translate_nbest(SENTENCES, cfg)
    assert [[text for text, _ in nbest] for nbest in got] == [[text for text, _ in nbest] for nbest in expect]
    for g, e in zip(got, expect):
        np.testing.assert_allclose([h.score for _, h in g], [h.score for _, h in e], rtol=1e-4)
    one = RuntimeTranslator.load(exported).translate(SENTENCES, dataclasses.replace(cfg, batch_size=1))
    assert one == [nbest[0][0] if nbest else "" for nbest in got]


def test_translate_command_with_an_exported_model_never_imports_torch(exported: Path, tmp_path: Path) -> None:
    out, imported_torch = translate_in_a_fresh_process(exported, tmp_path, ["red cat", "", "sun"], beam_size=2)
    assert not imported_torch, "torch was imported"
    assert out == RuntimeTranslator.load(exported).translate(["red cat", "", "sun"], DecodeConfig(beam_size=2))


def test_runtime_rejects_what_it_cannot_do(exported: Path) -> None:
    tr = RuntimeTranslator.load(exported)
    with pytest.raises(ConfigError, match="NumPy runtime"):
        tr.translate(["red cat"], DecodeConfig(precision="bf16"))
    with pytest.raises(ConfigError, match="^unknown DecodeConfig key 'shortlist'") as err:  # the shortlist is gone
        tr.translate(["red cat"], shortlist=10)
    assert "\n" not in str(err.value)


def test_bad_runtime_files_are_rejected(run_dir: Path, exported: Path, tmp_path: Path) -> None:
    assert is_runtime_model(exported) and not is_runtime_model(run_dir / "best.pt")
    with pytest.raises(CheckpointError, match="no such model file"):
        RuntimeTranslator.load(tmp_path / "missing.npz")
    with pytest.raises(CheckpointError, match="not a runtime model"):
        RuntimeTranslator.load(run_dir / "best.pt")
    with pytest.raises(CheckpointError, match=r"runtime model \(from seq2seq export\)"):
        load_checkpoint(exported)  # the torch loader points at the right tool
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(exported.read_bytes()[: exported.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        RuntimeTranslator.load(truncated)
    with np.load(exported) as z:
        arrays = {k: z[k] for k in z.files}
    missing = tmp_path / "missing_weight.npz"
    np.savez(missing, **{k: v for k, v in arrays.items() if k != "w.out.bias"})
    with pytest.raises(CheckpointError, match="incomplete or corrupt runtime model .*out.bias"):
        RuntimeTranslator.load(missing)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **(arrays | {"w.out.bias": np.array([object()], dtype=object)}))
    with pytest.raises(CheckpointError, match="incomplete or corrupt"):  # allow_pickle=False: never unpickled
        RuntimeTranslator.load(pickled)
    newer = tmp_path / "newer.npz"
    np.savez(newer, **(arrays | {"version": np.array(runtime.VERSION + 1)}))
    with pytest.raises(CheckpointError, match="this seq2seq reads"):
        RuntimeTranslator.load(newer)
    with pytest.raises(CheckpointError, match="must end in .npz"):
        export_runtime(run_dir / "best.pt", tmp_path / "model.bin")
    with zipfile.ZipFile(exported) as z:
        assert all(name.endswith(".npy") for name in z.namelist())


def test_export_keeps_weights_exactly(run_dir: Path, exported: Path) -> None:
    ckpt = load_checkpoint(run_dir / "best.pt")
    with np.load(exported) as z:
        for name, tensor in ckpt["model"].items():
            np.testing.assert_array_equal(z[f"w.{name}"], tensor.float().numpy())
        assert z["src_spm"].tobytes() == ckpt["src_spm"] and z["tgt_spm"].tobytes() == ckpt["tgt_spm"]
    save_checkpoint(run_dir / "copy.pt", {k: v for k, v in ckpt.items() if k not in ("format", "version")})
    assert Translator.from_checkpoint(run_dir / "copy.pt").translate(["red cat"]) == RuntimeTranslator.load(
        exported
    ).translate(["red cat"])


def test_export_command_makes_folders_and_reports_unwritable_paths(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from seq2seq.cli import main

    out = tmp_path / "a" / "b" / "model.npz"
    assert main(["export", "--checkpoint", str(run_dir / "best.pt"), "--out", str(out)]) == 0
    assert is_runtime_model(out)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["export", "--checkpoint", str(run_dir / "best.pt"), "--out", str(blocker / "model.npz")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"seq2seq export: error: cannot write {blocker / 'model.npz'}: {blocker} is not a folder"
    ]  # a bad output path is exit 2, checked before the checkpoint is read (tests/test_output_files.py)
