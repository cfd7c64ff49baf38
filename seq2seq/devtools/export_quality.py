"""What exporting costs in quality: BLEU and chrF of a checkpoint's torch fp32 path, its ONNX fp32
export and its ONNX int8 export on the val and test splits (greedy and beam 5), with file sizes and
the lines identical to the torch path's; one JSON object (`scripts/export_quality.sh`, docs/deploy.md).

    python -m seq2seq.devtools.export_quality CHECKPOINT DATA SRC TGT [--out DIR] [--splits val test]

The exports go to DIR/model.onnx.zip and DIR/model.int8.onnx.zip; DIR is by default named after the
checkpoint (`checkpoints/export_quality/RUN.NAME` for RUN/NAME.pt), so each checkpoint's exports are its own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..config import DecodeConfig
from ..errors import CorpusError, OutputError
from ..machine.process import one_line
from ..metrics import score
from ..text import read_lines
from ..translation import export_model, load_translator


def export_quality(checkpoint: Path, data: Path, src: str, tgt: str, out: Path, splits: list[str]) -> dict[str, Any]:
    """The scores (module docstring). Every input is checked before the exports are written: the checkpoint
    loads, each split's source and reference files read, as many lines each, and `out` is a folder or new
    (a CheckpointError, CorpusError or OutputError of one line otherwise)."""
    torch_path = load_translator(checkpoint)  # a missing or damaged checkpoint: one line, before any export
    texts = {}
    for split in splits:
        sources, refs = read_lines(data / f"{split}.{src}"), read_lines(data / f"{split}.{tgt}")
        if len(sources) != len(refs):
            raise CorpusError(f"{data / f'{split}.{src}'} has {len(sources)} lines but {data / f'{split}.{tgt}'} "
                              f"has {len(refs)}")  # fmt: skip
        texts[split] = sources, refs
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: not a folder (--out names the folder the exports go to)")
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "torch_fp32": checkpoint,
        "onnx_fp32": export_model(checkpoint, out / "model.onnx.zip"),
        "onnx_int8": export_model(checkpoint, out / "model.int8.onnx.zip", quantize="int8"),
    }
    result: dict[str, Any] = {"size_mb": {k: round(p.stat().st_size / 2**20, 2) for k, p in files.items()}}
    translators = {k: torch_path if k == "torch_fp32" else load_translator(p) for k, p in files.items()}
    for split, (sources, refs) in texts.items():
        for beam in (5, 1):
            cfg = DecodeConfig(beam_size=beam, precision="fp32")  # int8: the file's own (fp32 is refused there)
            auto = DecodeConfig(beam_size=beam)
            outputs = {k: tr.translate(sources, auto if k == "onnx_int8" else cfg) for k, tr in translators.items()}
            for k, hyps in outputs.items():
                scores = score(hyps, refs)
                same = sum(a == b for a, b in zip(hyps, outputs["torch_fp32"]))
                result[f"{split}/beam{beam}/{k}"] = {"bleu": round(scores.bleu, 2), "chrf": round(scores.chrf, 2),
                                                     "same_lines": same, "lines": len(hyps)}  # fmt: skip
                result.setdefault("signature", scores.get("bleu").signature)
    return result


def default_out(checkpoint: Path) -> Path:
    """Where a checkpoint's exports go without --out: a folder named after its run folder and file name."""
    whole = checkpoint.resolve()
    return Path("checkpoints/export_quality") / f"{whole.parent.name}.{whole.stem}"


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m seq2seq.devtools.export_quality", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("data", type=Path, help="folder of {split}.{lang} files")
    p.add_argument("src")
    p.add_argument("tgt")
    p.add_argument("--out", type=Path, help="folder of the exports (default: checkpoints/export_quality/RUN.NAME)")
    p.add_argument("--splits", nargs="+", default=["val", "test"])
    args = p.parse_args()
    out = args.out or default_out(args.checkpoint)
    result = one_line(p.prog, lambda: export_quality(args.checkpoint, args.data, args.src, args.tgt, out,
                                                     args.splits))  # fmt: skip
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
