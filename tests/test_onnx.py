"""The ONNX export and its engine (translation/onnx_model.py, onnx_engine.py) against the torch reference path.

The network: every cell, attention kind, depth and input feeding exports, and its graphs give
model.Seq2Seq's memory and step log-probs within float32 rounding, with beams grouped per sentence.
Whole translation: a trained checkpoint exported and translated gives the torch fp32 path's text,
greedy, beam, n-best, alone and in an ensemble; int8 translates; translating never imports torch;
bad files and a missing extra are one-line errors.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from corpora import translate_in_a_fresh_process
from model_kinds import VARIANTS, output_layer_op

from seq2seq.checkpoint import load_checkpoint
from seq2seq.cli import main
from seq2seq.config import ConfigError, DecodeConfig
from seq2seq.errors import CheckpointError
from seq2seq.model import Seq2Seq
from seq2seq.tokenizer import EOS_ID
from seq2seq.translation import export_model, load_translator, onnx_engine
from seq2seq.translation.onnx_model import (
    CANDIDATES,
    MANIFEST,
    OnnxEngine,
    OnnxTranslator,
    export_graphs,
    is_onnx_model,
    read_manifest,
)
from seq2seq.translation.torch_engine import Translator

pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ["red cat", "the moon", "dog dog bird sun moon tree house", "", "green", "blue house red tree", "sun"]

# --- the network --------------------------------------------------------------------------------


def _engine(model: Seq2Seq) -> OnnxEngine:
    encoder, step, names = export_graphs(model)
    return OnnxEngine(encoder, step, {"model_config": dataclasses.asdict(model.cfg), **names}, threads=1)


@pytest.mark.parametrize("name", VARIANTS)
def test_graphs_compute_the_torch_model_with_beams_grouped_per_sentence(name: str) -> None:
    torch.manual_seed(0)
    cfg = VARIANTS[name]
    model = Seq2Seq(dataclasses.replace(cfg, dropout=0.0), 23, 29).eval()
    engine = _engine(model)
    src = [[5, 6, 7, 8, 9, 10, EOS_ID], [11, 12, EOS_ID], [13, 14, 15, EOS_ID]]  # other lengths than traced
    memory, state = engine.encode(src)
    lens = torch.tensor([len(s) for s in src])
    padded = torch.zeros(3, 7, dtype=torch.long)
    for i, s in enumerate(src):
        padded[i, : len(s)] = torch.tensor(s)
    with torch.no_grad():
        ref_memory, ref_state = model.encode(padded, lens)
    np.testing.assert_allclose(memory.states, ref_memory.states.numpy(), atol=1e-5)
    rows = np.repeat(np.arange(3), 4)  # 4 beams per sentence: the memory stays one row per sentence
    memory, state = engine.select(memory, rows), engine.select(state, rows)
    assert memory.group == 4 and len(memory.states) == 3
    ref_memory, ref_state = ref_memory.select(torch.from_numpy(rows)), ref_state.select(torch.from_numpy(rows))
    prev = np.arange(12) % 20 + 4
    for _ in range(3):  # the state the graph returns feeds the next step
        log_probs, state, attention = engine.step(prev, state, memory)
        with torch.no_grad():
            ref_lp, ref_state, ref_att = model.step(torch.from_numpy(prev), ref_state, ref_memory)
        np.testing.assert_allclose(log_probs, ref_lp.numpy(), atol=1e-4)
        np.testing.assert_allclose(attention, ref_att.numpy(), atol=1e-5)
        prev = log_probs.argmax(axis=1)


def test_rows_in_unequal_groups_get_a_memory_row_each() -> None:
    memory = onnx_engine.OnnxMemory(np.arange(3.0)[:, None, None], np.zeros((3, 1, 1)), np.ones((3, 1), bool), 2)
    picked = OnnxEngine.select(object.__new__(OnnxEngine), memory, np.array([0, 1, 5]))
    assert picked.group == 1 and picked.states[:, 0, 0].tolist() == [0.0, 0.0, 2.0]


# --- whole translation --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(run_dir / "best.pt", tmp_path_factory.mktemp("onnx") / "model.onnx.zip")


@pytest.fixture(scope="module")
def exported_int8(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(run_dir / "best.pt", tmp_path_factory.mktemp("onnx8") / "model.onnx.zip", quantize="int8")


@pytest.mark.parametrize("cfg", [DecodeConfig(beam_size=1), DecodeConfig(beam_size=4, n_best=3),
                                 DecodeConfig(beam_size=3, stopping="beam", batch_size=2)])  # fmt: skip
def test_exported_model_translates_like_the_checkpoint(run_dir: Path, exported: Path, cfg: DecodeConfig) -> None:
    reference = dataclasses.replace(cfg, precision="fp32")  # the graphs compute in float32
    expect = Translator.from_checkpoint(run_dir / "best.pt").translate_nbest(SENTENCES, reference)
    got = load_translator(exported).translate_nbest(SENTENCES, cfg)
    assert [[text for text, _ in nbest] for nbest in got] == [[text for text, _ in nbest] for nbest in expect]
    for g, e in zip(got, expect):
        np.testing.assert_allclose([h.score for _, h in g], [h.score for _, h in e], rtol=1e-4)
    one = load_translator(exported).translate_nbest(SENTENCES, dataclasses.replace(cfg, batch_size=1))
    assert [[text for text, _ in nbest] for nbest in one] == [[text for text, _ in nbest] for nbest in got]


@pytest.mark.parametrize("beam_size", [1, 4])
def test_the_search_over_the_graphs_candidates_is_the_search_over_all_log_probs(
    run_dir: Path, exported: Path, tmp_path: Path, beam_size: int
) -> None:
    """A version-1 file (no candidate outputs: its search takes all (N, V) log-probs) and the same
    graphs searched through their per-row candidates give the same hypotheses and scores."""
    manifest = json.loads(zipfile.ZipFile(exported).read(MANIFEST))
    v1 = manifest | {"version": 1, "step_inputs": manifest["step_inputs"][:-1],
                     "step_outputs": [o for o in manifest["step_outputs"] if o not in CANDIDATES]}  # fmt: skip
    old = load_translator(_rewrite(exported, tmp_path / "v1.onnx.zip", seq2seq_onnx_json=json.dumps(v1).encode()))
    new = load_translator(exported)
    assert new.net.supports_candidates and not old.net.supports_candidates
    cfg = DecodeConfig(beam_size=beam_size, n_best=min(beam_size, 3), max_len_a=0.0, max_len_b=6)  # limits reached
    for got, expect in zip(new.translate_nbest(SENTENCES, cfg), old.translate_nbest(SENTENCES, cfg)):
        assert [(h.ids, h.score) for _, h in got] == [(h.ids, h.score) for _, h in expect]


def test_onnx_runtime_runs_the_step_graph_with_any_k_without_a_warning(exported: Path) -> None:
    """`k` is a required input with no default: with one, ONNX Runtime inferred the candidates as (N, 1)
    and warned ("Expected shape ... does not match") at every call with another k, in any user's log."""
    code = (
        "import sys, zipfile, numpy as np, onnxruntime as ort\n"
        "z = zipfile.ZipFile(sys.argv[1]); opts = ort.SessionOptions(); opts.log_severity_level = 1\n"
        "step = ort.InferenceSession(z.read('decoder_step.onnx'), opts)\n"
        "feed = {i.name: np.zeros([d if isinstance(d, int) else 3 for d in i.shape],\n"
        "        np.int64 if 'int64' in i.type else (np.bool_ if 'bool' in i.type else np.float32))\n"
        "        for i in step.get_inputs()}\n"
        "feed['mask'][:] = True; feed['k'] = np.array([4])\n"
        "values, ids = step.run(['cand_values', 'cand_ids'], feed)\n"
        "print(values.shape, ids.shape)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(exported)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(3, 4) (3, 4)"
    assert "does not match" not in proc.stderr and "appears in graph inputs" not in proc.stderr, proc.stderr


def test_the_file_holds_both_graphs_tokenizers_and_a_manifest(run_dir: Path, exported: Path) -> None:
    with zipfile.ZipFile(exported) as z:
        assert set(z.namelist()) == {MANIFEST, "encoder.onnx", "decoder_step.onnx", "src.spm.model", "tgt.spm.model"}
        manifest = json.loads(z.read(MANIFEST))
    assert manifest["format"] == "seq2seq-onnx" and manifest["quantize"] == "none"
    assert manifest["step_inputs"] == ["prev_ids", "h", "c", "states", "keys", "mask", "k"]
    assert manifest["step_outputs"] == ["log_probs", "h_out", "c_out", "attention", *CANDIDATES]
    assert manifest["version"] == 2
    assert is_onnx_model(exported) and not is_onnx_model(run_dir / "best.pt")


def test_int8_translates_and_says_so(run_dir: Path, exported: Path, exported_int8: Path) -> None:
    translator = load_translator(exported_int8)
    assert translator.describe()["precision"] == "int8" and load_translator(exported).describe()["precision"] == "fp32"
    with zipfile.ZipFile(exported_int8) as z:
        ops = z.read("decoder_step.onnx")
    assert output_layer_op(ops) == "MatMulIntegerToFloat"  # the output layer in int8
    assert b"QuantizeLSTM" not in ops  # the decoder's LSTM written out as its cell (quantize.lstm_cells)
    fp32 = load_translator(exported).translate(SENTENCES, beam_size=3)
    int8 = translator.translate(SENTENCES, beam_size=3)
    assert sum(a == b for a, b in zip(fp32, int8)) >= len(SENTENCES) - 2  # a trained model's outputs barely move
    with pytest.raises(ConfigError, match="an int8 ONNX model decodes in int8, not fp32: drop --precision"):
        translator.translate(SENTENCES, DecodeConfig(precision="fp32"))  # would run int8 all the same
    cfg = DecodeConfig(beam_size=3, precision="fp32")  # beside torch members, fp32 is theirs
    ensemble = load_translator([exported_int8, run_dir / "best.pt"], cfg=cfg)
    assert (
        len(ensemble.translate(SENTENCES, cfg)) == len(SENTENCES)
        and ensemble.describe(cfg)["precision"] == "int8, fp32"
    )


def test_onnx_and_torch_members_ensemble(run_dir: Path, exported: Path) -> None:
    cfg = DecodeConfig(beam_size=3, precision="fp32")
    mixed = load_translator([exported, run_dir / "best.pt"], cfg=cfg).translate(SENTENCES, cfg)
    assert mixed == Translator.from_checkpoint(run_dir / "best.pt").translate(SENTENCES, cfg)  # a model twice


def test_translate_command_with_an_onnx_model_never_imports_torch(exported: Path, tmp_path: Path) -> None:
    out, imported_torch = translate_in_a_fresh_process(exported, tmp_path, ["red cat", "", "sun"], beam_size=2)
    assert not imported_torch, "torch was imported"
    assert out == OnnxTranslator.load(exported).translate(["red cat", "", "sun"], DecodeConfig(beam_size=2))


def test_the_deploy_page_example_translates_with_onnxruntime_sentencepiece_and_numpy(exported: Path) -> None:
    """docs/deploy.md's greedy example, run as written, gives the engine's greedy output without seq2seq."""
    page = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(# greedy\.py.*?)```", page, re.S)
    assert code, "docs/deploy.md has no greedy.py example"
    blocked = "import sys; sys.modules['torch'] = None; sys.modules['seq2seq'] = None\n"  # neither is used
    done = subprocess.run([sys.executable, "-c", blocked + code[1], str(exported), "red cat"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    engine = OnnxTranslator.load(exported)
    assert done.stdout.strip() == engine.translate("red cat", beam_size=1)
    # at the length limit (here 0 S + 3: two pieces, then EOS forced) too; the example ran one step more
    short = code[1].replace("2 * src.shape[1] + 10", "0 * src.shape[1] + 3")
    assert short != code[1], "the example's length limit is not 2 * src.shape[1] + 10"
    long_one = SENTENCES[2]
    limited = engine.translate(long_one, beam_size=1, max_len_a=0.0, max_len_b=3)
    assert len(limited.split()) < len(engine.translate(long_one, beam_size=1).split())  # the limit is reached
    done = subprocess.run([sys.executable, "-c", blocked + short, str(exported), long_one],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == limited


def test_onnx_models_refuse_what_they_cannot_do(exported: Path) -> None:
    tr = OnnxTranslator.load(exported)
    for precision in ("bf16", "fp16"):  # the precision asked for is the one named (fp16 was told bf16)
        with pytest.raises(ConfigError, match=f"ONNX model .*use the .pt checkpoint for --precision {precision}$"):
            tr.translate(["red cat"], DecodeConfig(precision=precision))
    with pytest.raises(ConfigError, match="^unknown DecodeConfig key 'shortlist'") as err:  # the shortlist is gone
        tr.translate(["red cat"], shortlist=10)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="on the CPU"):
        load_translator(exported, device="cuda")
    assert load_translator(exported, device="auto").translate("red cat") == tr.translate("red cat")  # auto: the CPU


def test_onnx_runtime_threads_follow_the_cores_this_process_may_use(
    exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One intra-op thread per core of the process's affinity (taskset, a cpuset), not per core of the machine."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    engine = OnnxTranslator.load(exported).net
    assert engine.encoder.get_session_options().intra_op_num_threads == 3
    assert OnnxTranslator.load(exported, threads=2).net.step_graph.get_session_options().intra_op_num_threads == 2


def _rewrite(src: Path, dst: Path, **changes: bytes) -> Path:
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for name in z.namelist():
            out.writestr(name, changes.get(name.replace(".", "_").replace("-", "_"), z.read(name)))
    return dst


def test_an_onnx_model_given_for_a_checkpoint_is_named_whole_or_damaged(
    run_dir: Path, exported: Path, tmp_path: Path, capsys
) -> None:
    """Where a .pt checkpoint is read (export, average, the torch engine), an ONNX model is named as one by its
    owner's test (onnx_model.is_onnx_model): a truncated one too, which a second copy of the test in checkpoint.py
    called 'truncated or corrupt checkpoint (PytorchStreamReader ...)'."""
    cut = tmp_path / "cut.onnx.zip"
    cut.write_bytes(exported.read_bytes()[: exported.stat().st_size // 2])
    for model in (exported, cut):
        says = f"{model}: an ONNX model (from seq2seq export), no checkpoint: seq2seq translate and load_translator "
        says += "take it"
        commands = (
            ["export", "--checkpoint", str(model), "--out", str(tmp_path / "m.onnx.zip")],
            ["average", "--checkpoints", str(model), str(run_dir / "best.pt"), "--out", str(tmp_path / "a.pt")],
            ["attention", "--checkpoint", str(model), "--sentence", "red", "--out", str(tmp_path / "a.png")],
        )
        for command in commands:
            assert main(command) == 2
            assert capsys.readouterr().err == f"seq2seq {command[0]}: error: {says}\n", command
        with pytest.raises(CheckpointError, match="^" + re.escape(says) + "$"):
            Translator.from_checkpoint(model)
    assert not list(tmp_path.glob("[ma].*"))
    # the core's reader, from Python, cannot ask the ONNX format's owner: it names a whole zip without torch's records
    # (it said "truncated or corrupt checkpoint (PytorchStreamReader failed locating file data.pkl ...)")
    with pytest.raises(CheckpointError, match=re.escape(f"{exported}: a zip archive but no torch checkpoint (an ")):
        load_checkpoint(exported)


def test_the_removed_npz_format_is_named_in_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The NumPy runtime (a second copy of the network) is gone: an old .npz, given to any command that
    takes a model, says what it is and what to do; `export` no longer writes one."""
    old = tmp_path / "old.npz"
    np.savez(old, format=np.array(1), version=np.array(1))  # what the runtime wrote: a zip holding format.npy
    assert main(["translate", "--checkpoint", str(old), "--input", str(tmp_path / "x")]) == 2
    out = tmp_path / "m.npz"
    assert main(["export", "--checkpoint", str(run_dir / "best.pt"), "--out", str(out), "--quantize", "int8"]) == 2
    with pytest.raises(SystemExit, match="2"):
        main(["export", "--checkpoint", str(run_dir / "best.pt"), "--out", str(out), "--format", "npz"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == (f"seq2seq translate: error: {old}: a removed NumPy runtime .npz (from seq2seq export), "
                        "no checkpoint: export ONNX instead")  # fmt: skip
    assert "the NumPy runtime's .npz format was removed" in lines[1] and "--out model.onnx.zip" in lines[1]
    assert "invalid choice: 'npz'" in lines[-1] and not out.exists()


def test_export_keeps_tokenizers_and_languages_exactly(run_dir: Path, exported: Path) -> None:
    """The file's tokenizers are the checkpoint's own, each on its side (a swap translates garbage that a
    round trip through one reader would not notice)."""
    from seq2seq.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run_dir / "best.pt")  # the file's keys as written
    with zipfile.ZipFile(exported) as z:
        assert z.read("src.spm.model") == ckpt["src_spm"] and z.read("tgt.spm.model") == ckpt["tgt_spm"]
        manifest = json.loads(z.read(MANIFEST))
    assert (manifest["src_lang"], manifest["tgt_lang"]) == (ckpt["src_lang"], ckpt["tgt_lang"])


def test_export_command_makes_folders_and_reports_unwritable_paths(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a" / "b" / "model.onnx.zip"
    assert main(["export", "--checkpoint", str(tmp_path / "no.pt"), "--out", str(out)]) == 2
    assert not (tmp_path / "a").exists()  # the folder is made when the model is written, not before a refusal
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(run_dir / "best.pt"), "--out", str(out)]) == 0
    assert is_onnx_model(out)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["export", "--checkpoint", str(run_dir / "best.pt"), "--out", str(blocker / "m.onnx.zip")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"seq2seq export: error: cannot write {blocker / 'm.onnx.zip'}: {blocker} is not a folder"
    )  # a bad output path is exit 2, checked before the checkpoint is read (tests/test_output_files.py)
    assert main(["export", "--checkpoint", str(run_dir / "best.pt"), "--out", str(blocker / "new" / "m.onnx.zip")]) == 2
    assert capsys.readouterr().err.endswith(f"{blocker} is not a folder\n")  # a folder that could not be made


def test_export_and_average_write_model_files_not_devices_or_pipes(run_dir: Path, tmp_path: Path) -> None:
    """`export --out /dev/stdout > m.onnx.zip` wrote the zip with the 'wrote ...' line after it, exit 0: a
    corrupt model file. A model file is written whole and renamed into place: a device or a pipe is refused."""
    copy = tmp_path / "copy.pt"
    copy.write_bytes((run_dir / "best.pt").read_bytes())
    best = str(run_dir / "best.pt")
    for command in (["export", "--checkpoint", best, "--out", "/dev/stdout"],
                    ["average", "--checkpoints", best, str(copy), "--out", "/dev/stdout"]):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "seq2seq", *command], capture_output=True, timeout=300)
        assert done.returncode == 2 and done.stdout == b"", done.stderr
        assert done.stderr.decode() == (f"seq2seq {command[0]}: error: cannot write /dev/stdout: not a regular file (a "
                                        "device or a pipe); a model file is written whole, then renamed into place: "
                                        "name a file\n")  # fmt: skip


def test_bad_onnx_files_are_one_line_errors(exported: Path, tmp_path: Path) -> None:
    manifest = json.loads(zipfile.ZipFile(exported).read(MANIFEST))
    newer = json.dumps(manifest | {"version": 99}).encode()
    (tmp_path / "cut.zip").write_bytes(exported.read_bytes()[: exported.stat().st_size // 2])  # no zip directory
    assert is_onnx_model(tmp_path / "cut.zip")  # so `translate` and `serve` load it as one, and say what is wrong
    cases = {
        "newer": (_rewrite(exported, tmp_path / "newer.zip", seq2seq_onnx_json=newer), "version 99 is newer"),
        "graph": (_rewrite(exported, tmp_path / "graph.zip", decoder_step_onnx=b"junk"), "corrupt ONNX model"),
        "missing": (tmp_path / "nothing.onnx.zip", "no such model file"),
        "truncated": (tmp_path / "cut.zip", "incomplete or corrupt ONNX model"),
        "huge manifest": (  # its unpacked size is checked before it is read (a deflated one is a few KB)
            _rewrite(exported, tmp_path / "huge.zip", seq2seq_onnx_json=b" " * (2 << 20) + newer),
            f"seq2seq-onnx.json unpacks to {(2 << 20) + len(newer):,} bytes",
        ),
        "nested manifest": (_rewrite(exported, tmp_path / "deep.zip", seq2seq_onnx_json=b"[" * 100_000), "ONNX model"),
    }
    for name, (path, message) in cases.items():
        with pytest.raises(CheckpointError, match=message) as err:
            OnnxTranslator.load(path)
        assert "\n" not in str(err.value), name
        if "manifest" in name:  # the model card's reader (`seq2seq push`) too
            with pytest.raises(CheckpointError, match=message) as err:
                read_manifest(path)
            assert "\n" not in str(err.value), name


def _spm(tmp_path: Path, pieces: int) -> bytes:
    import sentencepiece as spm

    words = [" ".join(chr(97 + i * j % 12) + chr(97 + (i + j) % 12) + chr(97 + j % 12) for j in range(6))
             for i in range(300)]  # fmt: skip
    prefix = tmp_path / f"spm{pieces}"
    spm.SentencePieceTrainer.train(sentence_iterator=iter(words), model_prefix=str(prefix), vocab_size=pieces,
                                   pad_id=0, unk_id=1, bos_id=2, eos_id=3, minloglevel=2)  # fmt: skip
    return prefix.with_suffix(".model").read_bytes()


def test_a_file_whose_parts_disagree_is_one_line_not_garbage_or_a_traceback(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Each part readable, but not parts of one model: a tokenizer of another size than its embedding or
    output layer (ids read as other pieces: garbage, exit 0 until checked), a manifest naming other graph
    inputs (a ValueError traceback at the first sentence) or the right ones in another order (values are
    passed by position: h fed as c)."""
    z = zipfile.ZipFile(exported)
    manifest = json.loads(z.read(MANIFEST))
    vocab = len(OnnxTranslator.load(exported).tgt_tok)
    small, large = _spm(tmp_path, vocab - 10), _spm(tmp_path, vocab + 10)
    inputs = manifest["step_inputs"]
    swapped = [inputs[0], inputs[2], inputs[1], *inputs[3:]]  # h, c
    assert inputs[1:3] == ["h", "c"] and sorted(swapped) == sorted(inputs)
    assert set(manifest["spm_sha256"]) == {"src", "tgt"}
    before = json.dumps({k: v for k, v in manifest.items() if k != "spm_sha256"}).encode()  # exported before digests
    cases = {
        "tgt small": ({"tgt_spm_model": small, "seq2seq_onnx_json": before}, f"its tgt.spm.model has {vocab - 10} "
                      f"pieces, the output layer of its decoder_step.onnx {vocab}"),
        "src small": ({"src_spm_model": small, "seq2seq_onnx_json": before}, f"its src.spm.model has {vocab - 10} "
                      "pieces, the embedding of its encoder.onnx more"),
        "src large": ({"src_spm_model": large, "seq2seq_onnx_json": before},
                      "its graphs do not run on the last pieces of its tokenizers"),
        "tgt large": ({"tgt_spm_model": large, "seq2seq_onnx_json": before},
                      "its graphs do not run on the last pieces of its tokenizers"),
        "swapped": ({"src_spm_model": z.read("tgt.spm.model"), "tgt_spm_model": z.read("src.spm.model")},
                    "src.spm.model is not the tokenizer the model was exported with"),  # the sizes alike: garbage
        "names": ({"seq2seq_onnx_json": json.dumps(manifest | {"step_inputs": ["x", "k"]}).encode()},
                  "its seq2seq-onnx.json lists step_inputs x, k, its decoder_step.onnx has prev_ids, h, c, states"),
        "order": ({"seq2seq_onnx_json": json.dumps(manifest | {"step_inputs": swapped}).encode()},
                  "its seq2seq-onnx.json lists step_inputs prev_ids, c, h, "),
        "outputs": ({"seq2seq_onnx_json": json.dumps(manifest | {"encoder_outputs": ["states"]}).encode()},
                    "its seq2seq-onnx.json lists encoder_outputs states, its encoder.onnx has states, keys"),
    }  # fmt: skip
    for name, (changes, message) in cases.items():
        path = _rewrite(exported, tmp_path / f"{name.replace(' ', '-')}.onnx.zip", **changes)
        with pytest.raises(CheckpointError) as err:
            OnnxTranslator.load(path)
        assert str(err.value).startswith(f"{path}: {message}"), (name, str(err.value))
        assert str(err.value).endswith(": damaged or inconsistent ONNX model") and "\n" not in str(err.value)
        assert main(["translate", "--checkpoint", str(path), "--input", os.devnull]) == 2
        err_text = capsys.readouterr().err
        assert err_text == f"seq2seq translate: error: {err.value}\n", (name, err_text)  # no ONNX Runtime log


def _overlapping(src: Path, dst: Path) -> Path:
    """`src` with its decoder_step.onnx's entry inside its encoder.onnx's: each entry valid (name, size, CRC),
    but the two share their bytes, so reading every member reads more than the file."""
    with zipfile.ZipFile(src) as z:
        members = {name: z.read(name) for name in z.namelist()}
    step = zipfile.ZipInfo("decoder_step.onnx")
    step.file_size = step.compress_size = len(members["decoder_step.onnx"])
    step.CRC = zlib.crc32(members["decoder_step.onnx"])
    with zipfile.ZipFile(dst, "w") as out:
        out.writestr(MANIFEST, members[MANIFEST])
        out.writestr("encoder.onnx", step.FileHeader() + members["decoder_step.onnx"] + members["encoder.onnx"])
        encoder = out.getinfo("encoder.onnx")
        step.header_offset = encoder.header_offset + 30 + len(encoder.filename) + len(encoder.extra)
        out.filelist.append(step)
        out.NameToInfo[step.filename] = step
        for name in ("src.spm.model", "tgt.spm.model"):
            out.writestr(name, members[name])
    return dst


def test_members_are_stored_and_together_no_larger_than_the_file(exported: Path, tmp_path: Path) -> None:
    """A 7 MB file holding two deflated 768 MiB graphs made loading take 2.4 GB: each member is stored (as
    export writes it) and checked before it is read, a tokenizer at most 64 MiB, all together at most the file."""
    deflated = tmp_path / "deflated.zip"
    with zipfile.ZipFile(exported) as z, zipfile.ZipFile(deflated, "w") as out:
        for name in z.namelist():
            deflate = name == "decoder_step.onnx"
            out.writestr(name, z.read(name), zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED)
    cases = {
        deflated: "its decoder_step.onnx is compressed (deflate); a model file's members are stored, not compressed",
        _rewrite(exported, tmp_path / "big.zip", tgt_spm_model=bytes((64 << 20) + 1)):
            f"its tgt.spm.model unpacks to {(64 << 20) + 1:,} bytes, more than the {64 << 20:,}",
        _overlapping(exported, tmp_path / "overlapping.zip"): "its members unpack to ",
    }  # fmt: skip
    for path, message in cases.items():
        with pytest.raises(CheckpointError) as err:
            OnnxTranslator.load(path)
        assert str(err.value).startswith(f"{path}: {message}") and "\n" not in str(err.value), str(err.value)


def test_a_graph_whose_tensors_are_in_another_file_is_refused_before_it_is_read(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An initializer, or a Constant's tensor, stored as ONNX external data ("secret.bin") made ONNX Runtime read
    that file from the current folder: a model file is read whole from itself, never from other files."""
    import math

    import onnx
    from onnx import TensorProto, helper

    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.bin").write_bytes(os.urandom(1 << 22))
    for where in ("initializer", "constant"):
        proto = onnx.load_from_string(zipfile.ZipFile(exported).read("encoder.onnx"))
        if where == "initializer":
            tensor = next(t for t in proto.graph.initializer if len(t.dims) == 2)
        else:
            value = helper.make_tensor("secret", TensorProto.FLOAT, [4], [0.0] * 4)
            proto.graph.node.append(helper.make_node("Constant", [], ["unused"], value=value))
            tensor = proto.graph.node[-1].attribute[0].t
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "secret.bin"), ("offset", "0"), ("length", str(4 * math.prod(tensor.dims)))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        path = _rewrite(exported, tmp_path / f"{where}.onnx.zip", encoder_onnx=proto.SerializeToString())
        with pytest.raises(CheckpointError) as err:
            OnnxTranslator.load(path)
        assert str(err.value) == (f"{path}: its encoder.onnx keeps tensor {tensor.name!r} in another file (ONNX "
                                  "external data): refused, a model file is read whole from itself")  # fmt: skip


def test_the_manifests_quantization_is_the_graphs(exported: Path, exported_int8: Path, tmp_path: Path) -> None:
    """quantize was never checked: an fp32 file marked int8 (or int4) loaded and said it decoded in int8."""
    for src, claim, graphs in ((exported, "int8", "fp32"), (exported_int8, "none", "int8")):
        manifest = json.loads(zipfile.ZipFile(src).read(MANIFEST)) | {"quantize": claim}
        path = _rewrite(src, tmp_path / f"{claim}.onnx.zip", seq2seq_onnx_json=json.dumps(manifest).encode())
        with pytest.raises(CheckpointError) as err:
            OnnxTranslator.load(path)
        assert str(err.value) == (f"{path}: its {MANIFEST} has quantize {claim!r}, its graphs are {graphs}: damaged "
                                  "or inconsistent ONNX model")  # fmt: skip


def test_every_manifest_field_is_checked_and_named(exported: Path, tmp_path: Path, capsys) -> None:
    """A missing src_lang loaded (then `push` raised KeyError), a dict for a language reached the model card,
    version true or 0 loaded, '2' was 'not a seq2seq-onnx model', a string for a list was "'str' object has no
    attribute 'items'": each field's type and value is checked, one line naming it."""
    manifest = json.loads(zipfile.ZipFile(exported).read(MANIFEST))
    field_is = f"{exported.parent}/{{}}.onnx.zip: its {MANIFEST} has "
    cases = {
        "no_lang": ({"src_lang": ...}, "no src_lang"),
        "lang_obj": ({"src_lang": {"x": [1]}}, "src_lang {'x': [1]}, not a language code"),
        "lang_nl": ({"tgt_lang": "de\nlicense: mit"}, "tgt_lang 'de\\nlicense: mit', not a language code"),
        "ver_bool": ({"version": True}, "version True, not a whole number >= 1"),
        "ver_0": ({"version": 0}, "version 0, not a whole number >= 1"),
        "ver_str": ({"version": "2"}, "version '2', not a whole number >= 1"),
        "int4": ({"quantize": "int4"}, "quantize 'int4', not none or int8"),
        "no_config": ({"model_config": ...}, "no model_config"),
        "config_list": ({"model_config": [1, 2]}, "model_config [1, 2], not an object"),
        "config_bad": ({"model_config": manifest["model_config"] | {"emb_size": 10**9}},
                       "a model_config seq2seq cannot build (emb_size must be in"),
        "sha_str": ({"spm_sha256": "abc"}, "spm_sha256 'abc', not the src and tgt tokenizers' SHA-256 digests"),
        "no_inputs": ({"step_inputs": ...}, "no step_inputs"),
        "steps": ({"trained_steps": "many"}, "trained_steps 'many', not a whole number >= 0, or null"),
        "averaged": ({"averaged": [1]}, "averaged [1], not a list of file names, or null"),
        "train_config": ({"train_config": "x"}, "train_config 'x', not an object (the run's settings), or null"),
    }  # fmt: skip
    for name, (changes, message) in cases.items():
        changed = {k: v for k, v in (manifest | changes).items() if v is not ...}
        path = _rewrite(exported, exported.parent / f"{name}.onnx.zip", seq2seq_onnx_json=json.dumps(changed).encode())
        for read in (OnnxTranslator.load, read_manifest):  # read_manifest: the model card's reader
            with pytest.raises(CheckpointError) as err:
                read(path)
            assert str(err.value) == field_is.format(name) + message + str(err.value).split(message, 1)[1], name
            assert str(err.value).endswith(": damaged or inconsistent ONNX model") and "\n" not in str(err.value)
    listed = _rewrite(exported, tmp_path / "list.onnx.zip", seq2seq_onnx_json=b"[1, 2]")
    with pytest.raises(CheckpointError, match=f"its {MANIFEST} is list, not a JSON object: damaged"):
        OnnxTranslator.load(listed)
    argv = ["push", "--checkpoint", str(exported.parent / "no_lang.onnx.zip"), "--repo", "a/b", "--dry-run"]
    assert main(argv) == 2
    assert capsys.readouterr().err.endswith(f"its {MANIFEST} has no src_lang: damaged or inconsistent ONNX model\n")


def test_export_writes_no_manifest_its_reader_would_refuse(run_dir: Path, tmp_path: Path, capsys) -> None:
    """A checkpoint's languages are whatever --src and --tgt were: any printable code (`sr@latin`, which preprocess
    and train take) exports and loads; one that is not printable is refused when exporting, not written into a
    file that would not load."""
    from seq2seq.checkpoint import read_model, write_model_checkpoint

    saved = read_model(run_dir / "best.pt")
    odd, out = tmp_path / "odd.pt", tmp_path / "m.onnx.zip"
    write_model_checkpoint(odd, dataclasses.replace(saved, src_lang="de\nlicense: mit"))
    assert main(["export", "--checkpoint", str(odd), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"seq2seq export: error: {odd}: cannot be exported: its {MANIFEST} has "
                                       "src_lang 'de\\nlicense: mit', not a language code (1 to 100 printable "
                                       "characters)\n")  # fmt: skip
    assert not out.exists()
    write_model_checkpoint(odd, dataclasses.replace(saved, src_lang="sr@latin"))  # refused by a stricter rule once
    assert main(["export", "--checkpoint", str(odd), "--out", str(out), "-q"]) == 0
    assert OnnxTranslator.load(out).src_lang == "sr@latin"


def test_the_model_config_is_the_graphs_sizes(exported: Path, tmp_path: Path) -> None:
    """A manifest claiming sizes of 1 escaped the search's memory budget (estimated from the config): each size
    the graphs fix is checked against the model config."""
    manifest = json.loads(zipfile.ZipFile(exported).read(MANIFEST))
    config = manifest["model_config"]
    assert [config[k] for k in ("attention", "cell", "enc_hidden", "dec_hidden")] == ["general", "lstm", 32, 32]
    cases = {
        "small": ({"emb_size": 1, "enc_hidden": 1, "dec_hidden": 1},
                  "its encoder.onnx has keys of shape (B, S, 32), its model config (attention general, dec_hidden 1) "
                  "makes (B, S, 1)"),
        "layers": ({"dec_layers": 2}, "its encoder.onnx has h of shape (1, B, 32), its model config (dec_layers 2, "
                   "dec_hidden 32) makes (2, N, 32)"),
        "dot": ({"attention": "dot", "enc_hidden": 16}, "its decoder_step.onnx has states of shape (B, S, 64), its "
                "model config (enc_hidden 16) makes (B, S, 32)"),  # dot needs dec_hidden = 2 x enc_hidden
    }  # fmt: skip
    for name, (changes, message) in cases.items():
        lie = json.dumps(manifest | {"model_config": config | changes}).encode()
        path = _rewrite(exported, tmp_path / f"{name}.onnx.zip", seq2seq_onnx_json=lie)
        with pytest.raises(CheckpointError) as err:
            OnnxTranslator.load(path)
        assert str(err.value) == f"{path}: {message}: damaged or inconsistent ONNX model", name


def test_a_missing_extra_is_named_in_one_line(
    run_dir: Path, exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["translate", "--checkpoint", str(exported), "--input", str(tmp_path / "x")]) == 2
    assert main(["export", "--checkpoint", str(run_dir / "best.pt"), "--out", str(tmp_path / "m.onnx.zip")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all("seq2seq-nmt[onnx]" in line for line in lines), lines


def test_int8_without_onnx_runtime_is_one_line_before_any_export(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """With onnx installed but not ONNX Runtime, --quantize int8 made the whole fp32 export, then a traceback."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)
    out = tmp_path / "m.onnx.zip"
    assert main(["export", "--checkpoint", str(run_dir / "best.pt"), "--out", str(out), "--quantize", "int8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--quantize int8 needs ONNX Runtime" in err and "seq2seq-nmt[onnx]" in err, err
    assert not out.exists()


def test_export_never_writes_over_a_runs_checkpoint(run_dir: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "preprocess.json").write_text("{}")
    (run / "last.pt").write_bytes((run_dir / "best.pt").read_bytes())
    before = (run / "last.pt").read_bytes()
    for name in ("last.pt", "best.pt", "step400.pt"):
        assert main(["export", "--checkpoint", str(run_dir / "best.pt"), "--out", str(run / name)]) == 2
        assert f"is a checkpoint of the run in {run}" in capsys.readouterr().err
    links = tmp_path / "links"
    links.mkdir()
    (links / "model.onnx.zip").symlink_to(run / "last.pt")  # atomic_write replaces a link's target
    assert main(["export", "--checkpoint", str(run_dir / "best.pt"), "--out", str(links / "model.onnx.zip")]) == 2
    err = capsys.readouterr().err
    assert f"(a link to {run / 'last.pt'}) is a checkpoint of the run in {run}" in err and err.count("\n") == 1
    assert (run / "last.pt").read_bytes() == before and not (run / "best.pt").exists()


def test_a_misshapen_checkpoint_is_one_line_for_export_as_for_translate(run_dir: Path, tmp_path: Path, capsys) -> None:
    from seq2seq.checkpoint import read_model, write_model_checkpoint

    saved = read_model(run_dir / "best.pt")
    bad = tmp_path / "bad.pt"
    write_model_checkpoint(bad, dataclasses.replace(
        saved, model_config={**saved.model_config, "dec_hidden": saved.model_config["dec_hidden"] + 1}))  # fmt: skip
    for command in (["export", "--checkpoint", str(bad), "--out", str(tmp_path / "m.onnx.zip")],
                    ["translate", "--checkpoint", str(bad), "--input", os.devnull]):  # fmt: skip
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "inconsistent checkpoint" in err, err


def test_export_quality_scores_the_three_paths_on_val_and_test(run_dir: Path, tmp_path: Path) -> None:
    from seq2seq.devtools.export_quality import export_quality

    found = export_quality(run_dir / "best.pt", run_dir.parent / "data", "xx", "yy", tmp_path, ["val", "test"])
    for split in ("val", "test"):
        for beam in (1, 5):
            torch_path, fp32 = found[f"{split}/beam{beam}/torch_fp32"], found[f"{split}/beam{beam}/onnx_fp32"]
            assert fp32 == torch_path and fp32["same_lines"] == fp32["lines"] > 0  # the fp32 export is the model
            assert 0 <= found[f"{split}/beam{beam}/onnx_int8"]["same_lines"] <= fp32["lines"]
    assert found["size_mb"]["onnx_int8"] < found["size_mb"]["onnx_fp32"] and "tok:13a" in found["signature"]


def test_export_quality_checks_its_inputs_before_any_export_in_one_line(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No argument was 'unbound variable'; a missing checkpoint a traceback; a missing val split a traceback after
    both exports were written."""
    from seq2seq.devtools.export_quality import main as export_quality_main

    done = subprocess.run(["bash", str(ROOT / "scripts/export_quality.sh")], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("usage: scripts/export_quality.sh CHECKPOINT"), done.stderr
    assert done.stderr.count("\n") == 1
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    for lang in ("xx", "yy"):  # a test split, no val split
        (data / f"test.{lang}").write_text((run_dir.parent / "data" / f"test.{lang}").read_text())
    prog = "python -m seq2seq.devtools.export_quality"
    for checkpoint, says in ((tmp_path / "no.pt", "no.pt"), (run_dir / "best.pt", f"{data / 'val.xx'}: no such file")):
        argv = [prog, str(checkpoint), str(data), "xx", "yy", "--out", str(out), "--splits", "test", "val"]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as stop:
            export_quality_main()
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.count("\n") == 1 and err.startswith(f"{prog}: error: ") and says in err
        assert not out.exists()  # refused before any export


def test_export_quality_puts_each_checkpoints_exports_in_a_folder_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every checkpoint's exports went to checkpoints/export_quality/, each run replacing the last one's."""
    from seq2seq.devtools import export_quality as module

    fake = tmp_path / "python"  # the script's Python: prints the command it is given
    fake.write_text('#!/bin/sh\nif [ "$1" = -c ]; then exit 0; fi\necho "$@"\n')
    fake.chmod(0o755)
    script = ["bash", str(ROOT / "scripts/export_quality.sh"), "runs/a/best.pt"]
    env = {**os.environ, "PYTHON": str(fake), "DATA": str(tmp_path)}
    done = subprocess.run(script, env=env, capture_output=True, text=True, check=True)
    assert "--out" not in done.stdout and "runs/a/best.pt" in done.stdout  # the module's default, not one folder
    done = subprocess.run(script, env={**env, "OUT": str(tmp_path / "o")}, capture_output=True, text=True, check=True)
    assert f"--out {tmp_path / 'o'}" in done.stdout
    asked = []
    monkeypatch.setattr(module, "export_quality", lambda *args: asked.append(args[4]) or {})
    for run in ("a", "b"):
        monkeypatch.setattr(sys, "argv", ["prog", f"runs/{run}/best.pt", str(tmp_path), "xx", "yy"])
        module.main()
    assert asked == [Path("checkpoints/export_quality/a.best"), Path("checkpoints/export_quality/b.best")]


def test_decode_profile_splits_a_run_between_onnx_runtime_and_the_search(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The profile behind docs/deploy.md's figures: session.run time and calls against the whole run,
    and each graph's kernel time by operator (shares of one)."""
    from seq2seq.devtools.decode_profile import main as profile

    src = tmp_path / "src.txt"
    src.write_text("".join(s + "\n" for s in SENTENCES), encoding="utf-8")
    profile(["--model", str(exported), "--input", str(src), "--beam-size", "2"])
    out = json.loads(capsys.readouterr().out)
    assert out["sentences"] == len(SENTENCES) and out["beam_size"] == 2
    assert 0 < out["onnxruntime_run_s"] < out["wall_s"] and out["onnxruntime_run_calls"] >= 2
    assert out["python_s"] == pytest.approx(out["wall_s"] - out["onnxruntime_run_s"], abs=2e-3)
    ops = out["kernel_time_share_by_operator"]
    assert "LSTM" in ops["decoder_step"] and "LSTM" in ops["encoder"]
    for shares in ops.values():  # the 10 largest operators' shares of the graph's kernel time
        assert all(0 < v <= 1 for v in shares.values()) and sum(shares.values()) <= 1.001


@pytest.mark.parametrize("threads", [10**6, 1025, -1, 2.5, "4", True])
def test_onnx_threads_out_of_range_or_not_a_whole_number_are_refused_before_a_session(exported: Path, threads) -> None:
    """threads=10**6 made ONNX Runtime's thread pool grow without end (0.5 GB in 5 s, 2 GB in 35 s); 2.5 or "4"
    read as "incomplete or corrupt ONNX model"; -1 was taken. One line naming threads, before the file is read."""
    with pytest.raises(ConfigError, match=r"^threads must be a whole number in \[0, 1024\] .*, got "):
        load_translator(exported, threads=threads)
    assert load_translator(exported, threads=1).translate(["red cat"]) == load_translator(exported).translate(
        ["red cat"]
    )


def test_export_names_an_unknown_format_and_keeps_the_npz_message_for_npz(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^unknown export format 'ONNX': the one format is 'onnx'"):
        export_model(run_dir / "best.pt", tmp_path / "m.onnx.zip", "ONNX")
    with pytest.raises(ConfigError, match="npz"):
        export_model(run_dir / "best.pt", tmp_path / "m.npz", "npz")
    assert list(tmp_path.iterdir()) == []
