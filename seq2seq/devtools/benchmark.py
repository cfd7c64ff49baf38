"""Speed benchmark: training tokens/s and peak memory, translation speed, model FLOP/s against a GEMM.

Everything runs on this machine in one call: training and whole-process translation in child
processes (so their peak RSS and start-up are their own), the rest in-process; each training window
is followed by a GEMM of its precision. The result is one JSON object: what each side trains
(`architectures`: ours and the peer's matched setup differ) and `compare`'s ratios against a peer
measured on this machine (a peers.json), each only where the two figures are like for like.
It runs on any CPU: what the hardware cannot run (bf16 on an AVX2 CPU) is reported as skipped,
with the reason, and the JSON says which CPU (capability, native bf16) and GPU it ran on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..config import ModelConfig
from ..machine import process
from ..machine.hardware import cpu_bf16, report, usable_cores
from ..runfiles import read_metrics
from ..text import read_lines
from ..translation.hub import model_file
from .peers import PEER_MODEL, PEER_VOCAB, peer_ratios, peers_for_this_machine, read_peers


def gemm_gflop_s(dtype: torch.dtype, n: int = 1024, seconds: float = 2.0) -> float:
    """Sustained square-matmul throughput on the current thread setting."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def flops_per_tgt_token(cfg: ModelConfig, tgt_vocab: int, src_len: float, tgt_len: float) -> float:
    """Matmul FLOPs (forward + backward = 3x forward) per target token, for mean lengths (+EOS/BOS): per
    target token the decoder RNN, attention (Bahdanau: its query projection), the combine layer and the
    output layer; per source token the encoder RNNs and the attention keys; per sentence the bridges."""
    e, he, hd, gates = cfg.emb_size, cfg.enc_hidden, cfg.dec_hidden, {"lstm": 4, "gru": 3, "rnn": 1}[cfg.cell]
    enc = sum(2 * 2 * gates * he * ((e if layer == 0 else 2 * he) + he) for layer in range(cfg.enc_layers))
    keys = 0 if cfg.attention == "dot" else 2 * 2 * he * hd
    dec_in = e * (2 if cfg.input_feeding else 1)
    dec = sum(2 * gates * hd * ((dec_in if layer == 0 else hd) + hd) for layer in range(cfg.dec_layers))
    attend = 2 * src_len * (hd + 2 * he) + (2 * hd * hd if cfg.attention == "bahdanau" else 0)
    per_tgt = dec + attend + 2 * (hd + 2 * he) * e + 2 * e * tgt_vocab
    per_src = enc + keys
    bridges = (2 if cfg.cell == "lstm" else 1) * 2 * 2 * he * hd  # (h, c) from the encoder's final (2He) state
    return 3 * (per_tgt + (per_src * src_len + bridges) / tgt_len)


def _seq2seq(*args: str) -> list[str]:
    return [sys.executable, "-m", "seq2seq", *args]


_NOT_INHERITED = ("PYTHONDONTWRITEBYTECODE", "ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def _run_child(cmd: list[str], log: Path, threads: int = 0) -> tuple[float, float]:
    """Run a command; return its wall seconds and peak RSS in MiB (of that process alone).

    The child caches its bytecode as Python does by default, whatever PYTHONDONTWRITEBYTECODE says here:
    an installed package (and the peer's, which pip compiled) starts from .pyc files, and compiling
    seq2seq's sources at every start would add 0.05-0.1 s to each whole-process figure. The warm-up
    runs, which are not counted, write the cache. `threads` > 0: the child runs with OMP_NUM_THREADS and
    MKL_NUM_THREADS at that (torch's threads, as the peer's `run.sh` runs it) and, where this process may
    run on more cores, on that many of them (ONNX Runtime makes a thread per usable core). The primitive-cache
    sizes this process set for its own decoding (`process.limit_onednn_cache`) are not passed on: a training
    child sets training's, before its first primitive, as it does when started alone."""
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    cores: list[int] = []
    if threads:
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        cores = usable[:threads] if len(usable) > threads else []
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=pin)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{log.read_text()[-2000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


class Corpus(NamedTuple):
    """The parallel corpus measured on: a folder of {split}.{lang} files and the language pair."""

    data: Path
    src: str
    tgt: str


def train_command(corpus: Corpus, run: Path, precision: str, minutes: float, extra: list[str]) -> list[str]:
    """The `seq2seq train` process whose speed is measured: no validation, a train record every 5 updates."""
    return _seq2seq(
        "train", "--data", str(corpus.data), "--src", corpus.src, "--tgt", corpus.tgt, "--out", str(run), "--overwrite",
        "--max-minutes", f"{minutes:.3f}", "--valid-every", "1000000", "--valid-bleu-sentences", "0",
        "--log-every", "5", "--precision", precision, *extra,
    )  # fmt: skip


def mean_lengths(prepared: Any) -> tuple[float, float]:
    """Mean source and target lengths (+EOS/BOS) of a prepared folder's train split."""
    split = prepared.split("train")
    return float(split.src_lens.mean()) + 1, float(split.tgt_lens.mean()) + 1


def model_flops(prepared: Any, cfg: ModelConfig = ModelConfig()) -> float:
    """`flops_per_tgt_token` of the model `cfg` on a prepared folder's train split (its mean lengths)."""
    return flops_per_tgt_token(cfg, prepared.vocab[1], *mean_lengths(prepared))


def measure_training(
    corpus: Corpus, run: Path, precision: str, warmup_s: float, measure_s: float, extra: list[str]
) -> dict[str, float]:
    """Steady-state target tokens/s after `warmup_s`, over `measure_s`, from a real `seq2seq train`, and
    the mean real (non-padding) target tokens per update over the same updates. A training that stopped before
    two train records of that window (a train split that max_epochs passes over in seconds) is a CorpusError
    of one line."""
    cmd = train_command(corpus, run, precision, (warmup_s + measure_s + 5) / 60, extra)
    wall, rss = _run_child(cmd, run / f"bench-train-{precision}.log")
    records = read_metrics(run / "metrics.jsonl")
    train = records.get("train", [])
    window = [r for r in train if r["elapsed_s"] >= warmup_s]
    if len(window) < 2:  # no update measured after the warm-up: no speed to report
        from ..errors import CorpusError

        stop = records.get("stop", [{}])[-1]
        reason = str(stop.get("reason", "no stop record"))
        ran_out = reason.startswith("max_epochs")
        raise CorpusError(
            f"--data {corpus.data}: {'the corpus ran out: ' if ran_out else ''}training stopped ({reason}) after "
            f"{stop.get('step', train[-1]['step'] if train else 0)} updates in {stop.get('elapsed_s', 0.0):.1f} s, "
            f"before the measuring window ({warmup_s:g} s of warm-up, then {measure_s:g} s measured)"
            + (": give a larger train split" if ran_out else f" (its log: {run / f'bench-train-{precision}.log'})")
        )
    first, last = window[0], window[-1]
    tok_s = (last["tokens"] - first["tokens"]) / (last["elapsed_s"] - first["elapsed_s"])
    per_update = (last["tokens"] - first["tokens"]) / (last["step"] - first["step"])
    return {"tgt_tok_s": round(tok_s, 1), "tgt_tokens_per_update": round(per_update), "peak_rss_mb": round(rss, 1),
            "updates": last["step"], "measured_s": round(last["elapsed_s"] - first["elapsed_s"], 1),
            "wall_s": round(wall, 1)}  # fmt: skip


def bf16_skipped() -> dict[str, str] | None:
    """Why bf16 is not measured on this CPU (None: it runs, natively or emulated)."""
    probe = cpu_bf16()
    return None if probe.runs else {"skipped": f"{probe.describe} ({probe.error})"}


class Setting(NamedTuple):
    """One timed translation setting: its key suffix, beam size and --precision."""

    name: str
    beam: int
    precision: str


SETTINGS = (Setting("greedy", 1, "fp32"), Setting("beam5", 5, "fp32"), Setting("beam5_bf16", 5, "bf16"))


def _model_files(checkpoint: Path, out_dir: Path) -> dict[str, Path]:
    """Each engine's model file: '' the torch checkpoint, then the ONNX exports
    (fp32 and int8; left out, with the reason in the log, where the [onnx] extra is missing)."""
    from ..config import ConfigError
    from ..translation import export_model

    files = {"": checkpoint}
    try:
        files["_onnx"] = export_model(checkpoint, out_dir / "bench-model.onnx.zip")
        files["_onnx_int8"] = export_model(checkpoint, out_dir / "bench-model.int8.onnx.zip", quantize="int8")
    except ConfigError as err:
        print(f"benchmark: ONNX engines skipped: {err}", file=sys.stderr)
    return files


def _timed(
    tr: Any, path: Path, setting: Setting, sents: list[str], out_dir: Path, key: str, threads: int
) -> dict[str, Any]:
    """In-process sentences/s (model loaded) and whole-process wall seconds (best of 2 after a warm-up) on
    `threads` threads (`_run_child`)."""
    from ..config import DecodeConfig

    cfg = DecodeConfig(beam_size=setting.beam, precision=setting.precision)
    tr.translate(sents[:64], cfg)  # warm-up
    t0 = time.perf_counter()
    tr.translate(sents, cfg)
    result: dict[str, Any] = {f"translate_sent_s_{key}": round(len(sents) / (time.perf_counter() - t0), 1)}
    cmd = _seq2seq("translate", "--checkpoint", str(path), "--input", str(out_dir / "bench-input.txt"),
                   "--output", str(out_dir / f"bench-{key}.txt"), "--beam-size", str(setting.beam),
                   "--precision", setting.precision, "--quiet")  # fmt: skip
    walls = [_run_child(cmd, out_dir / f"bench-translate-{key}.log", threads)[0] for _ in range(3)]
    result[f"translate_wall_s_{key}"] = round(min(walls[1:]), 3)
    return result


def _quality(out_dir: Path, key: str, reference: str, refs: list[str] | None) -> dict[str, Any]:
    """Lines identical to the torch fp32 path's (`reference` key), and BLEU/chrF against `refs` (one a line)."""
    from ..errors import CorpusError
    from ..metrics import score

    ours = read_lines(out_dir / f"bench-{key}.txt")
    if refs is not None and len(ours) != len(refs):
        raise CorpusError(f"{out_dir / f'bench-{key}.txt'}: {len(ours)} lines for {len(refs)} references: "
                          "BLEU would pair the wrong lines")  # fmt: skip
    result: dict[str, Any] = {}
    if key != reference:
        result[f"translate_same_lines_{key}"] = sum(
            a == b for a, b in zip(ours, read_lines(out_dir / f"bench-{reference}.txt"))
        )
    if refs is not None:
        scores = score(ours, refs)
        result[f"bleu_{key}"], result[f"chrf_{key}"] = round(scores.bleu, 2), round(scores.chrf, 2)
        result.setdefault("bleu_signature", scores.get("bleu").signature)
    return result


def measure_translation(
    checkpoint: Path, src_file: Path, out_dir: Path, n_sent: int, ref_file: Path | None = None, threads: int = 0
) -> dict[str, Any]:
    """In-process sentences/s (model load excluded) and whole-process wall time of `seq2seq translate`,
    per engine: the torch `Translator` on the checkpoint (fp32, and bf16 where it runs), and
    ONNX Runtime on the fp32 and int8 exports (`*_onnx`, `*_onnx_int8`),
    with how many output lines equal the torch fp32 path's, BLEU/chrF against `ref_file` (if given),
    each file's size, and the whole-process seconds of a 1-sentence translation (start-up). `threads` > 0:
    ONNX Runtime's threads in-process and every engine's in the child processes (`_run_child`); torch's
    in-process are this process's (`run_benchmark` sets them with the rest of the decoding settings).
    """
    sents = read_lines(src_file)[:n_sent]
    refs = read_lines(ref_file)[:n_sent] if ref_file is not None and ref_file.exists() else None
    (out_dir / "bench-input.txt").write_text("".join(s + "\n" for s in sents), encoding="utf-8")
    (out_dir / "bench-one.txt").write_text(sents[0] + "\n", encoding="utf-8")
    result: dict[str, Any] = {}
    for engine, path in _model_files(checkpoint, out_dir).items():
        result[f"model_file_mb{engine}"] = round(path.stat().st_size / 2**20, 2)
        t0 = time.perf_counter()
        tr = _load(path, threads)
        result[f"load_s{engine}"] = round(time.perf_counter() - t0, 3)
        one = _seq2seq("translate", "--checkpoint", str(path), "--input", str(out_dir / "bench-one.txt"), "--quiet")
        walls = [_run_child(one, out_dir / "bench-one.log", threads)[0] for _ in range(3)]
        result[f"startup_s{engine}"] = round(min(walls), 3)
        for setting in SETTINGS:  # fp32 is the reference path; bf16 (opt-in) is reported beside it, torch only
            if engine and setting.precision != "fp32":
                continue
            key = setting.name + engine
            if engine == "_onnx_int8":  # int8 is the file's precision: --precision fp32 is refused there
                setting = setting._replace(precision="auto")
            if setting.precision == "bf16" and bf16_skipped():
                result[f"translate_sent_s_{key}"] = bf16_skipped()
                continue
            result |= _timed(tr, path, setting, sents, out_dir, key, threads)
            result |= _quality(out_dir, key, setting.name.replace("_bf16", ""), refs)
    return result


def _load(path: str | Path, threads: int = 0) -> Any:
    from ..translation import load_translator

    return load_translator(path, threads=threads)


def _architecture(cfg: ModelConfig, vocab: tuple[int, int], lengths: tuple[float, float]) -> dict[str, Any]:
    fields = ("cell", "emb_size", "enc_hidden", "enc_layers", "dec_hidden", "dec_layers", "attention",
              "input_feeding", "tie_embeddings")  # fmt: skip
    return {f: getattr(cfg, f) for f in fields} | {
        "src_vocab": vocab[0], "tgt_vocab": vocab[1],
        "model_mflop_per_tgt_token": round(flops_per_tgt_token(cfg, vocab[1], *lengths) / 1e6, 2),
    }  # fmt: skip


def architectures(cfg: ModelConfig, prepared: Any, peers_file: Path | None) -> dict[str, Any]:
    """What each side trains: our `cfg` on `prepared`'s vocabularies, and OpenNMT-py's matched setup
    (`PEER_MODEL`; its vocabulary sizes from the peers entry of this machine where it gives them, as
    `src_vocab` / `tgt_vocab`, else `PEER_VOCAB`), each with `flops_per_tgt_token` at this corpus' lengths."""
    _, entry = peers_for_this_machine(peers_file) if peers_file is not None else (None, None)
    figures = (entry or {}).get("peers", {}).get("opennmt-py", {})
    given = "src_vocab" in figures and "tgt_vocab" in figures
    vocab = (int(figures["src_vocab"]), int(figures["tgt_vocab"])) if given else PEER_VOCAB
    lengths = mean_lengths(prepared)
    ours, peer = _architecture(cfg, prepared.vocab, lengths), _architecture(PEER_MODEL, vocab, lengths)
    peer |= {"precision": "fp32", "vocab_from": "the peers file" if given else "../shared/PEERS.md"}
    return {"ours": ours, "opennmt-py": peer, "differ": [k for k in ours if ours[k] != peer[k]], "note": (
        "the ratios divide the speeds of these two networks, which differ where 'differ' says: the peer's "
        "MFLOP per target token is flops_per_tgt_token for its architecture at this corpus' mean lengths in "
        "our pieces (OpenNMT-py projects the attention query, not the keys, and has no bridge: under 1 % of "
        "it); --input-feeding trains ours with the peer's input feeding")}  # fmt: skip


def _check_inputs(corpus: Corpus, checkpoint: str | Path | None, test_split: str, peers: str | Path | None) -> None:
    """What the benchmark reads only after minutes of training, checked before it: the peers.json, the model
    (loaded once), and the test split's source file it translates (and its references, one a line)."""
    from ..errors import CorpusError

    if peers is not None:
        read_peers(Path(peers))
    if checkpoint is not None:
        _load(checkpoint)  # a missing or damaged file: a one-line CheckpointError
    src, ref = (corpus.data / f"{test_split}.{lang}" for lang in (corpus.src, corpus.tgt))
    if not src.is_file():
        raise CorpusError(f"{src}: no such file (the --test-split {test_split} that the benchmark translates)")
    if ref.is_file() and (refs := len(read_lines(ref))) != (sents := len(read_lines(src))):
        raise CorpusError(f"{ref}: {refs} lines, {src} {sents}: the translations are scored against one "
                          "reference per source line")  # fmt: skip


def train_windows(
    corpus: Corpus, out: Path, quick: bool, extra: list[str], flops: float, windows: tuple[float, float]
) -> dict[str, Any]:
    """The fp32 training window (its model kept as OUT/trained-fp32.pt) and the fp32 GEMM right after it,
    then the bf16 window and the bf16 GEMM right after that (`windows`: warm-up and measured seconds);
    model FLOP/s of each (`flops` per target token); ours per precision for the ratios (the peer's is fp32)."""
    run = out / "run"
    fp32 = measure_training(corpus, run, "fp32", *windows, extra)
    result: dict[str, Any] = {"train_fp32": fp32, "gemm_fp32_gflop_s": round(gemm_gflop_s(torch.float32), 1)}
    shutil.copyfile(run / "last.pt", out / "trained-fp32.pt")
    skipped = {"skipped": "--quick measures fp32 training only"} if quick else bf16_skipped()
    bf16 = skipped or measure_training(corpus, run, "bf16", *windows, extra)
    result["train_bf16"] = bf16
    if not skipped:
        result["gemm_bf16_gflop_s"] = round(gemm_gflop_s(torch.bfloat16), 1)
    result["train_tgt_tok_s_fp32"], result["train_tgt_tok_s_bf16"] = fp32["tgt_tok_s"], skipped or bf16["tgt_tok_s"]
    result["train_peak_rss_mb"] = max(t["peak_rss_mb"] for t in (fp32, bf16) if "peak_rss_mb" in t)
    result["model_mflop_per_tgt_token"] = round(flops / 1e6, 2)
    result["model_gflop_s"] = round(flops * fp32["tgt_tok_s"] / 1e9, 1)
    if not skipped:
        result["model_gflop_s_bf16"] = round(flops * bf16["tgt_tok_s"] / 1e9, 1)
    return result


def run_benchmark(
    corpus: Corpus,
    out: str | Path = "checkpoints/benchmark",
    checkpoint: str | Path | None = None,
    quick: bool = False,
    test_split: str = "test_2016_flickr",
    peers: str | Path | None = None,
    vocab_size: int = 4000,
    input_feeding: bool = ModelConfig.input_feeding,
) -> dict[str, Any]:
    """Measure everything and return one JSON-able dict (see the module docstring); with `peers`
    (a peers.json), also the ratios against the peers measured on a machine like this one.
    `input_feeding`: train the windows with input feeding (the peer's decoder), else ModelConfig's default."""
    from ..config import DataConfig
    from ..preprocess import ensure_prepared

    # the in-process translation's settings, as seq2seq translate's, before this process's first oneDNN
    # primitive (loading --checkpoint probes bf16 with one)
    process.apply(process.ProcessSettings.for_decoding())
    _check_inputs(corpus, checkpoint, test_split, peers)
    threads = min(2, usable_cores())  # the peers were measured at 2 threads (OMP_NUM_THREADS=2)
    torch.set_num_threads(threads)
    out = Path(out)
    data_cfg = DataConfig(vocab_size=vocab_size, test_split=test_split)
    prepared = ensure_prepared(corpus.data, corpus.src, corpus.tgt, out / "run", data_cfg)
    model = ModelConfig(input_feeding=input_feeding)
    hardware = report("cpu") | {"cpu_bf16_runs": cpu_bf16().runs, "cpu_bf16_native": cpu_bf16().native}
    hardware.pop("precision")
    result: dict[str, Any] = {"machine": f"{os.cpu_count()} cpus, torch {torch.__version__}, {threads} threads",
                              "hardware": hardware, "quick": quick, "max_tokens": 2700}  # fmt: skip
    extra = ["--max-tokens", "2700", "--threads", str(threads), *(["--input-feeding"] if input_feeding else [])]
    windows = (10.0, 25.0) if quick else (30.0, 90.0)
    result |= train_windows(corpus, out, quick, extra, model_flops(prepared, model), windows)
    trained = out / "trained-fp32.pt"
    ckpt = model_file(checkpoint) if checkpoint else trained  # hf://ORG/NAME: from huggingface_hub's cache
    result["translate_checkpoint"] = str(checkpoint or trained)
    result["translate_threads"] = threads
    src, ref = (corpus.data / f"{test_split}.{lang}" for lang in (corpus.src, corpus.tgt))
    result |= measure_translation(ckpt, src, out, 200 if quick else 1000, ref, threads)
    result["architectures"] = architectures(model, prepared, Path(peers) if peers is not None else None)
    return result | peer_ratios(result, Path(peers) if peers is not None else None, quick, own_model=not checkpoint)
