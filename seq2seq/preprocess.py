"""Prepare a run folder: clean and filter the corpus, train SentencePiece, cache encoded splits.

A prepared run folder holds `preprocess.json` (what was done, with counts), `spm.src.model` and
`spm.tgt.model` (the same bytes when the vocabulary is joint) and `cache/` (encoded splits and
the validation text used for BLEU during training).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import DataConfig, from_dict, to_dict
from .data import CorpusError, EncodedSplit, clean, read_parallel, split_paths
from .tokenizer import Tokenizer, train_sentencepiece

log = logging.getLogger("seq2seq")
MANIFEST = "preprocess.json"


def _filter_train(
    src: list[list[int]], tgt: list[list[int]], cfg: DataConfig, pairs: list[tuple[str, str]]
) -> tuple[list[int], dict[str, int]]:
    """Indices of training pairs kept by the length, ratio and duplicate filters, with counts."""
    removed = {"too_short": 0, "too_long": 0, "length_ratio": 0, "duplicate": 0}
    seen: set[tuple[str, str]] = set()
    keep = []
    for i, (s, t) in enumerate(zip(src, tgt)):
        ls, lt = len(s), len(t)
        if min(ls, lt) < cfg.min_len:
            removed["too_short"] += 1
        elif max(ls, lt) > cfg.max_len:
            removed["too_long"] += 1
        elif max(ls, lt) / max(1, min(ls, lt)) > cfg.max_len_ratio:
            removed["length_ratio"] += 1
        elif cfg.dedup and pairs[i] in seen:
            removed["duplicate"] += 1
        else:
            seen.add(pairs[i])
            keep.append(i)
    return keep, removed


def _read_clean(data_dir: Path, split: str, src: str, tgt: str) -> tuple[list[str], list[str], int]:
    """Cleaned non-empty pairs of a split and how many empty pairs were dropped."""
    src_lines, tgt_lines = read_parallel(*split_paths(data_dir, split, src, tgt))
    pairs = [(clean(s), clean(t)) for s, t in zip(src_lines, tgt_lines)]
    kept = [(s, t) for s, t in pairs if s and t]
    return [s for s, _ in kept], [t for _, t in kept], len(pairs) - len(kept)


def _write_text(folder: Path, split: str, src: list[str], tgt: list[str]) -> None:
    """The cleaned text of a split (BLEU references; re-sampled segmentations for training)."""
    (folder / f"{split}.src.txt").write_text("".join(x + "\n" for x in src), encoding="utf-8")
    (folder / f"{split}.tgt.txt").write_text("".join(x + "\n" for x in tgt), encoding="utf-8")


def preprocess(data_dir: str | Path, src: str, tgt: str, out: str | Path, cfg: DataConfig, seed: int = 1234) -> dict:
    """Prepare run folder `out` from `{split}.{lang}` files in `data_dir`; returns the manifest."""
    data_dir, out = Path(data_dir), Path(out)
    train_src, train_tgt, empty = _read_clean(data_dir, cfg.train_split, src, tgt)
    log.info("train: %d pairs (%d empty pairs dropped)", len(train_src), empty)
    held_out = {}  # read (and check) every split before anything is written
    for split in dict.fromkeys([cfg.val_split, cfg.test_split]):
        if all(p.is_file() for p in split_paths(data_dir, split, src, tgt)):
            held_out[split] = _read_clean(data_dir, split, src, tgt)[:2]
        else:
            log.warning("no %s split in %s (looked for %s.%s and %s.%s)", split, data_dir, split, src, split, tgt)
    spm_args = dict(
        vocab_size=cfg.vocab_size,
        model_type=cfg.sp_model_type,
        character_coverage=cfg.character_coverage,
        input_sentence_size=cfg.spm_input_sentence_size,
        seed=seed,
    )
    if cfg.joint_vocab:
        src_model = tgt_model = train_sentencepiece(train_src + train_tgt, **spm_args)
    else:
        src_model = train_sentencepiece(train_src, **spm_args)
        tgt_model = train_sentencepiece(train_tgt, **spm_args)
    src_tok, tgt_tok = Tokenizer(src_model), Tokenizer(tgt_model)
    log.info("SentencePiece %s: %d %s pieces, %d %s pieces", cfg.sp_model_type, len(src_tok), src, len(tgt_tok), tgt)

    (out / "cache").mkdir(parents=True, exist_ok=True)
    (out / "spm.src.model").write_bytes(src_model)
    (out / "spm.tgt.model").write_bytes(tgt_model)
    src_ids, tgt_ids = src_tok.encode(train_src), tgt_tok.encode(train_tgt)
    keep, removed = _filter_train(src_ids, tgt_ids, cfg, list(zip(train_src, train_tgt)))
    removed = {"empty": empty, **removed}
    for name, count in removed.items():
        if count:
            log.info("train filter %s: removed %d pairs", name, count)
    EncodedSplit.from_lists([src_ids[i] for i in keep], [tgt_ids[i] for i in keep]).save(out / "cache" / "train")
    splits = {"train": len(keep)}  # stored as "train" whatever the split's file name
    _write_text(out / "cache", "train", [train_src[i] for i in keep], [train_tgt[i] for i in keep])
    for split, (s, t) in held_out.items():
        EncodedSplit.from_lists(src_tok.encode(s), tgt_tok.encode(t)).save(out / "cache" / split)
        _write_text(out / "cache", split, s, t)
        splits[split] = len(s)
    manifest = {
        "data_dir": str(data_dir.resolve()),
        "src": src,
        "tgt": tgt,
        "seed": seed,
        "data": to_dict(cfg),
        "splits": splits,
        "removed": removed,
        "src_vocab": len(src_tok),
        "tgt_vocab": len(tgt_tok),
        "train_tokens": {
            "src": int(sum(len(src_ids[i]) for i in keep)),
            "tgt": int(sum(len(tgt_ids[i]) for i in keep)),
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


@dataclass
class Prepared:
    """A prepared run folder, loaded."""

    run: Path
    manifest: dict[str, Any]
    cfg: DataConfig
    src_tok: Tokenizer
    tgt_tok: Tokenizer

    @classmethod
    def load(cls, run: str | Path) -> Prepared:
        run = Path(run)
        if not (run / MANIFEST).is_file():
            raise CorpusError(f"{run} is not a prepared run folder (no {MANIFEST}); run `seq2seq preprocess` first")
        manifest = json.loads((run / MANIFEST).read_text(encoding="utf-8"))
        cfg = from_dict(DataConfig, manifest["data"])
        return cls(
            run,
            manifest,
            cfg,
            Tokenizer((run / "spm.src.model").read_bytes()),
            Tokenizer((run / "spm.tgt.model").read_bytes()),
        )

    def split(self, name: str) -> EncodedSplit:
        if name not in self.manifest["splits"]:
            raise CorpusError(f"{self.run}: split {name!r} was not prepared (have {sorted(self.manifest['splits'])})")
        return EncodedSplit.load(self.run / "cache" / name)

    def text(self, name: str) -> tuple[list[str], list[str]]:
        """Cleaned source and reference lines of a prepared val/test split."""
        self.split(name)
        src, tgt = (self.run / "cache" / f"{name}.{side}.txt" for side in ("src", "tgt"))
        return src.read_text(encoding="utf-8").split("\n")[:-1], tgt.read_text(encoding="utf-8").split("\n")[:-1]


def ensure_prepared(data_dir: str | Path, src: str, tgt: str, run: str | Path, cfg: DataConfig, seed: int) -> Prepared:
    """The run folder's preparation, made now if missing; a folder prepared from other data is an error."""
    run = Path(run)
    if not (run / MANIFEST).is_file():
        log.info("%s is not prepared yet: preprocessing %s", run, data_dir)
        preprocess(data_dir, src, tgt, run, cfg, seed)
    prepared = Prepared.load(run)
    m = prepared.manifest
    if (m["src"], m["tgt"]) != (src, tgt) or Path(m["data_dir"]) != Path(data_dir).resolve():
        raise CorpusError(
            f"{run} was prepared from {m['data_dir']} {m['src']}->{m['tgt']}, not {Path(data_dir).resolve()} "
            f"{src}->{tgt}; use another --out folder"
        )
    return prepared
