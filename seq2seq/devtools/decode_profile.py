"""Where translating with an exported ONNX model spends its time: `cProfile` splits a run into ONNX
Runtime's `session.run` and the Python search around it; ONNX Runtime's own profiler splits the
graphs' kernel time by operator. Prints one JSON object.

    python -m seq2seq.devtools.decode_profile --model model.int8.onnx.zip --input test.de --beam-size 5

The model is loaded and warmed up on the first 64 sentences before anything is measured. The profiled
pass of ONNX Runtime runs again after the timed one (its profiler slows the run): only its shares are used.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..config import DecodeConfig
from ..text import read_lines
from ..translation import load_translator, onnx_engine

RUN = "<built-in method onnxruntime.capi.onnxruntime_pybind11_state.run>"  # InferenceSession.run, in pstats


def _python_split(model: str, sents: list[str], cfg: DecodeConfig) -> dict[str, Any]:
    translator = load_translator(model)
    translator.translate(sents[:64], cfg)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    translator.translate(sents, cfg)
    profile.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    run = [
        (calls, total)
        for (_, _, name), (_, calls, _, total, _) in stats.items()
        if name == "<built-in method onnxruntime.capi.onnxruntime_pybind11_state.run>"
    ]
    run_s, run_calls = sum(t for _, t in run), sum(c for c, _ in run)
    top = sorted(stats.items(), key=lambda kv: -kv[1][2])[:8]
    return {
        "wall_s": round(wall, 3),
        "onnxruntime_run_s": round(run_s, 3),
        "onnxruntime_run_calls": run_calls,
        "onnxruntime_share": round(run_s / wall, 3),
        "python_s": round(wall - run_s, 3),
        "python_self_time_s": {f"{Path(f).name}:{line}({name})": round(v[2], 3) for (f, line, name), v in top},
    }


def _operator_split(model: str, sents: list[str], cfg: DecodeConfig, folder: Path) -> dict[str, Any]:
    plain = onnx_engine._session

    def profiled(graph: bytes, threads: int) -> Any:
        return plain(graph, threads, profile_prefix=str(folder / "ort"))

    onnx_engine._session = profiled
    try:
        translator = load_translator(model)
    finally:
        onnx_engine._session = plain
    translator.translate(sents, cfg)
    engine = translator.search_engine(cfg)
    result = {}
    for graph, session in (("encoder", engine.encoder), ("decoder_step", engine.step_graph)):
        by_op: Counter[str] = Counter()
        for event in json.loads(Path(session.end_profiling()).read_text()):
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                by_op[event["args"]["op_name"]] += event["dur"]
        total = sum(by_op.values()) or 1
        result[graph] = {op: round(us / total, 3) for op, us in by_op.most_common(10)}
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m seq2seq.devtools.decode_profile", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="an exported ONNX model (seq2seq export)")
    p.add_argument("--input", required=True, help="source sentences, one per line")
    p.add_argument("--beam-size", type=int, default=5, help="1: greedy (default: 5)")
    p.add_argument("--sentences", type=int, default=1000, help="the first N lines of --input (default: 1000)")
    args = p.parse_args(argv)
    sents = read_lines(Path(args.input))[: args.sentences]
    cfg = DecodeConfig(beam_size=args.beam_size)
    with tempfile.TemporaryDirectory() as folder:
        out = {"model": args.model, "sentences": len(sents), "beam_size": args.beam_size,
               **_python_split(args.model, sents, cfg),
               "kernel_time_share_by_operator": _operator_split(args.model, sents, cfg, Path(folder))}  # fmt: skip
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
