"""Preprocessing: a corpus folder into a prepared run folder (the format is prepared.py's).

`preprocess` cleans and filters the corpus, trains SentencePiece and caches encoded splits;
`ensure_prepared` makes a run folder's preparation or checks it against what a run asks for
(the source, the corpus files' sizes and hashes, the data settings).

Nothing here holds a whole split in memory, so corpora of any size can be prepared: the files
are streamed, SentencePiece trains on a sample of `spm_input_sentence_size` sentences, and the
pairs are encoded and filtered a chunk at a time straight into the on-disk arrays.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from .config import DataConfig, check_language_codes
from .config_dict import Settings, changed_fields, from_dict, requested, to_dict
from .corpus import TrainFilter, clean_split, read_pairs, split_paths, write_text
from .errors import CheckpointError, CorpusError, OutputError
from .prepared import MANIFEST, Prepared, SplitWriter, install, tokenizer_key
from .runlock import RunLock
from .tokenizer import Tokenizer, train_tokenizers

log = logging.getLogger("seq2seq")


def _encode_train(work: Path, cache: Path, src_tok: Tokenizer, tgt_tok: Tokenizer, cfg: DataConfig) -> dict:
    """Encode and filter the cleaned training text chunk by chunk into `cache/train.*`; returns counts."""
    writer, filt, kept, tokens = SplitWriter(cache / "train"), TrainFilter(cfg), 0, {"src": 0, "tgt": 0}
    write_text(cache / "train", [], [], mode="w")
    for src_text, tgt_text in read_pairs(work / "train"):
        src_ids, tgt_ids = src_tok.encode(src_text), tgt_tok.encode(tgt_text)
        keep = filt.keep(src_ids, tgt_ids, src_text, tgt_text)
        writer.add([src_ids[i] for i in keep], [tgt_ids[i] for i in keep])
        write_text(cache / "train", [src_text[i] for i in keep], [tgt_text[i] for i in keep])
        kept += len(keep)
        tokens["src"] += sum(len(src_ids[i]) for i in keep)
        tokens["tgt"] += sum(len(tgt_ids[i]) for i in keep)
    writer.close()
    return {"kept": kept, "removed": filt.removed, "tokens": tokens}


def _encode_held_out(work: Path, cache: Path, split: str, toks: tuple[Tokenizer, Tokenizer], max_len: int) -> int:
    """Encode a held-out split; sides longer than `max_len` pieces are cut to it, so that the validation
    loss's memory (attention grows with source x target length) stays bounded. Their text (the BLEU
    references) stays whole. Returns how many pairs were cut."""
    writer, cut = SplitWriter(cache / split), 0
    for src_text, tgt_text in read_pairs(work / split):
        src_ids, tgt_ids = toks[0].encode(src_text), toks[1].encode(tgt_text)
        cut += sum(len(s) > max_len or len(t) > max_len for s, t in zip(src_ids, tgt_ids))
        writer.add([s[:max_len] for s in src_ids], [t[:max_len] for t in tgt_ids])
    writer.close()
    for side in ("src", "tgt"):
        os.replace(work / f"{split}.{side}.txt", cache / f"{split}.{side}.txt")
    return cut


def preprocess(
    data_dir: str | Path, src: str, tgt: str, out: str | Path, cfg: DataConfig, overwrite: bool = False
) -> dict:
    """Prepare run folder `out` from `{split}.{lang}` files in `data_dir`; returns the manifest.

    Every split is read and checked (into a work folder beside `out`) before anything in `out` is written.
    A folder that holds a trained model (last.pt) is refused unless `overwrite`: its SentencePiece
    models are the ones that model was trained with (its checkpoints are kept either way).
    Another process writing in `out` (RUN/.lock held) is a RunFolderError naming its PID (runlock.py)."""
    check_language_codes(src, tgt)  # before the lock: a model trained on them must be exportable
    with RunLock(out):  # one writer per run folder, from before the first check to the last write
        return _preprocess(Path(data_dir), src, tgt, Path(out), cfg, overwrite)


def _refuse_foreign(out: Path, data_dir: Path) -> None:
    """`out` is new, empty (hidden files aside: the lock; and the corpus being prepared, where it lies inside
    `out`, as the demo's does) or a run folder (a preparation's files, complete or cut short); a folder of
    other files is an OutputError, since preparing it and training there replace or delete cache/,
    config.json/.toml, metrics.jsonl, train.log and tensorboard/."""
    if not out.is_dir() or any((out / name).exists() for name in (MANIFEST, "spm.src.model", "spm.tgt.model")):
        return
    corpus = data_dir.resolve()
    names = sorted(
        p.name for p in out.iterdir() if not p.name.startswith(".") and not corpus.is_relative_to(p.resolve())
    )
    if names:
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        raise OutputError(f"{out} is not a run folder (no {MANIFEST}) and holds {shown}: preparing it would replace "
                          "or delete what is there; use a new or empty --out folder, or --overwrite")  # fmt: skip


def _preprocess(data_dir: Path, src: str, tgt: str, out: Path, cfg: DataConfig, overwrite: bool) -> dict:
    """`preprocess`, with the run folder locked."""
    if (out / "last.pt").exists() and not overwrite:
        raise CheckpointError(
            f"{out} already holds a trained model ({out / 'last.pt'}); preparing it again would replace the "
            "SentencePiece models it was trained with: use another --out folder, or --overwrite to prepare it again"
        )
    if not overwrite:
        _refuse_foreign(out, data_dir)
    place = out.resolve()  # a linked --out: the work folder beside its target, on the file system of `out`
    _remove_leftovers(place)
    work = place.parent / f".{place.name}.preprocess-{os.getpid()}"
    try:
        work.mkdir(parents=True)
        train_files = split_paths(data_dir, cfg.train_split, src, tgt)  # missing: clean_split's error comes first
        held_out = _clean_held_out(data_dir, src, tgt, cfg, work) if all(f.is_file() for f in train_files) else {}
        n_train, empty = clean_split(data_dir, cfg.train_split, src, tgt, work / "train")
        if not n_train:
            src_path, tgt_path = split_paths(data_dir, cfg.train_split, src, tgt)
            raise CorpusError(f"{src_path}/{tgt_path.name}: no non-empty sentence pairs after cleaning "
                              f"({empty} pairs, each with an empty side); nothing to train on")  # fmt: skip
        files = corpus_files([p for s in (cfg.train_split, *held_out) for p in split_paths(data_dir, s, src, tgt)])
        src_model, tgt_model = train_tokenizers(work / "train", cfg)
        src_tok, tgt_tok = Tokenizer(src_model), Tokenizer(tgt_model)
        key = tokenizer_key(src_model, tgt_model)
        cache = work / "cache" / key
        cache.mkdir(parents=True)
        train = _encode_train(work, cache, src_tok, tgt_tok, cfg)
        if not train["kept"]:
            raise CorpusError(_all_filtered(split_paths(data_dir, cfg.train_split, src, tgt), n_train, train, cfg))
        # logged once every check has passed, so that a refused corpus prints only its one error line
        log.info("train: %d pairs (%d empty pairs dropped)", n_train, empty)
        log.info("SentencePiece %s: %d %s pieces, %d %s pieces", cfg.sp_model_type, len(src_tok), src,
                 len(tgt_tok), tgt)  # fmt: skip
        removed = {"empty": empty, **train["removed"]}
        for name, count in removed.items():
            if count:
                log.info("train filter %s: removed %d pairs", name, count)
        splits = {"train": train["kept"]}  # stored as "train" whatever the split's file name
        cut = {}
        for split, n in held_out.items():
            cut[split] = _encode_held_out(work, cache, split, (src_tok, tgt_tok), cfg.max_len)
            splits[split] = n
            if cut[split]:
                msg = (
                    "%s: %d pairs longer than max_len=%d pieces are cut to it for the validation loss (the text stays)"
                )
                log.warning(msg, split, cut[split], cfg.max_len)
        manifest = {
            "data_dir": str(data_dir.resolve()),
            "src": src,
            "tgt": tgt,
            "data": to_dict(cfg),  # with the tokenizer's seed, spm_seed
            "splits": splits,
            "removed": removed,
            "held_out_cut_to_max_len": cut,
            "src_vocab": len(src_tok),
            "tgt_vocab": len(tgt_tok),
            "tokenizer": key,
            "train_tokens": train["tokens"],
            "corpus_files": files,  # name in data_dir -> bytes, mtime_ns, sha256: a later change is refused
        }
        install(work, out, src_model, tgt_model, manifest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def _remove_leftovers(out: Path) -> None:
    """Remove the work folders (`.NAME.preprocess-PID` beside `out`, `out/.install-PID`) of preprocess runs
    that no longer run (a `kill -9`, a power cut); a PID still in use keeps its folder."""
    named = re.compile(rf"(\.{re.escape(out.name)}\.preprocess|\.install)-([1-9][0-9]{{0,8}})")
    for folder in [*out.parent.glob(f".{glob.escape(out.name)}.preprocess-*"), *out.glob(".install-*")]:
        pid = int(found[2]) if (found := named.fullmatch(folder.name)) else os.getpid()
        if pid == os.getpid() or folder.is_symlink() or not folder.is_dir():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log.info("removing %s, left by preprocess process %d, which no longer runs", folder, pid)
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # it runs, as another user
            pass


def _clean_held_out(data_dir: Path, src: str, tgt: str, cfg: DataConfig, work: Path) -> dict[str, int]:
    """Clean the val and test splits into `work`; returns their pair counts. A missing or empty val split
    is an error (training validates on it), a missing test split a warning (an error when one other than the
    default `test` was named); both name a split of the
    folder to pass instead where there is one (test_2016_flickr for test; valid, dev for val)."""
    held_out, val = {}, cfg.val_split
    for split in dict.fromkeys([val, cfg.test_split]):
        missing = _absent([p for p in split_paths(data_dir, split, src, tgt) if not p.is_file()])
        if not missing:
            held_out[split] = clean_split(data_dir, split, src, tgt, work / split)[0]
        elif split == val:
            instead = _found(data_dir, val, src, tgt, "--val-split")
            raise CorpusError(f"no validation split: {missing}, and training validates on "
                              f"it (best.pt, early stopping): write {val}.{src} and {val}.{tgt} (`seq2seq download "
                              "--val-size N` holds N pairs out of a one-file dataset: docs/data.md), or name "
                              f"another split with --val-split NAME{instead}")  # fmt: skip
        elif split != DataConfig.test_split:  # named off the default: a test split asked for, not left out quietly
            raise CorpusError(f"no test split {split!r}: {missing}{_found(data_dir, split, src, tgt, '--test-split')}")
        else:
            log.warning("no %s split: %s%s", split, missing, _found(data_dir, split, src, tgt, "--test-split"))
    if not held_out[val]:
        raise CorpusError(f"validation split {val!r} of {data_dir} ({val}.{src}/{val}.{tgt}) has no non-empty "
                          "sentence pairs after cleaning, and training validates on it: write pairs there, or name "
                          "another split with --val-split NAME")  # fmt: skip
    return held_out


def _absent(paths: list[Path]) -> str:
    """Why a split's files cannot be read ("" for none): not there, or folders."""
    folders, gone = [str(p) for p in paths if p.is_dir()], [str(p) for p in paths if not p.is_dir()]
    said = [f"{' and '.join(gone)} not found"] if gone else []
    if folders:
        what = "is a folder, not a text file" if len(folders) == 1 else "are folders, not text files"
        said.append(f"{' and '.join(folders)} {what}")
    return "; ".join(said)


def _found(data_dir: Path, split: str, src: str, tgt: str, flag: str) -> str:
    """For a split not found: the splits of `data_dir` named like it and the flag to pass ("" if none)."""
    prefixes = (split, "dev") if split == "val" else (split,)
    stems = {f.name[: -len(src) - 1] for pre in prefixes for f in data_dir.glob(f"{glob.escape(pre)}*.{src}")}
    found = sorted(s for s in stems if s != split and (data_dir / f"{s}.{tgt}").is_file())
    pass_ = f"{flag} {found[0]}" if len(found) == 1 else f"{flag} with one of them"
    return f"; found {', '.join(f'{s}.{src}/{s}.{tgt}' for s in found)}: pass {pass_}" if found else ""


def _all_filtered(paths: tuple[Path, Path], n_train: int, train: dict, cfg: DataConfig) -> str:
    """The one line for a training split whose every pair the length filters removed."""
    r = train["removed"]
    return (
        f"{paths[0]}/{paths[1].name}: the length filters removed all {n_train} non-empty sentence pairs "
        f"(too_short {r['too_short']} with --min-len {cfg.min_len}, too_long {r['too_long']} with --max-len "
        f"{cfg.max_len}, length_ratio {r['length_ratio']} with --max-len-ratio {cfg.max_len_ratio:g}, in "
        "SentencePiece pieces); nothing to train on: loosen the filters"
    )


def corpus_files(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """What preprocess.json records of each corpus file it read: size, modification time and sha256."""
    return {p.name: {"bytes": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns, "sha256": _sha256(p)} for p in paths}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def corpus_change(prepared: Prepared, data_dir: Path, hash_all: bool = False) -> str | None:
    """How a corpus file differs from its record in preprocess.json (`corpus_files`), or None. Cheap:
    a file of the recorded size and modification time is taken as unchanged (unless `hash_all`); another
    size is a change; another modification time alone (an edit of the same length, a `touch`, a copy) is hashed."""
    for name, then in prepared.manifest["corpus_files"].items():
        path, since = data_dir / name, f"since {prepared.run} was prepared from it"
        try:
            now = path.stat()
        except OSError:
            return f"{path}: no such file any more ({then['bytes']} bytes {since})"
        if now.st_size != then["bytes"]:
            return f"{path} changed {since} ({then['bytes']} bytes then, {now.st_size} now)"
        if (hash_all or now.st_mtime_ns != then["mtime_ns"]) and (sha := _sha256(path)) != then["sha256"]:
            return f"{path} changed {since} (same size, sha256 {then['sha256'][:12]}… then, {sha[:12]}… now)"
    return None


def _difference(
    prepared: Prepared, data_dir: Path, src: str, tgt: str, asked: dict[str, Any]
) -> tuple[str, str] | None:
    """How a prepared folder differs from what a run asks for (the source, its corpus files, data
    settings), with the way out; None if it does not."""
    m, run = prepared.manifest, prepared.run
    moved = Path(m["data_dir"]) != data_dir.resolve()  # a moved or copied project: the same files are the same data
    same_files = not moved or ("corpus_files" in m and corpus_change(prepared, data_dir, hash_all=True) is None)
    if (m["src"], m["tgt"]) != (src, tgt) or not same_files:
        here, there = f"{m['data_dir']} {m['src']}->{m['tgt']}", f"{data_dir.resolve()} {src}->{tgt}"
        problem = f"{run} was prepared from {here}, not {there}"
        return problem, "use another --out folder, or --overwrite to prepare it again from the new data"
    if moved:
        log.info("%s was prepared from %s: %s holds the same corpus files (sizes, sha256); training on it", run,
                 m["data_dir"], data_dir.resolve())  # fmt: skip
    if changed := changed_fields(to_dict(prepared.cfg), asked, "there", "asked"):
        problem = f"{run / MANIFEST} records other data settings than asked ({', '.join(changed)})"
        return problem, ("leave those flags out to train on its preparation, pass --overwrite to prepare it again "
                         "with them, or use another --out folder")  # fmt: skip
    if "corpus_files" not in m:  # prepared by seq2seq before 2026-12: nothing to compare with
        log.warning("%s records no corpus file sizes and hashes (an older seq2seq prepared it): a corpus changed "
                    "since goes unnoticed; `seq2seq preprocess` again to record them", run / MANIFEST)  # fmt: skip
    elif not moved and (problem := corpus_change(prepared, data_dir)):
        return problem, "restore the file, or pass --overwrite to prepare the folder again from the new text"
    return None


def ensure_prepared(
    data_dir: str | Path,
    src: str,
    tgt: str,
    run: str | Path,
    cfg: Settings[DataConfig] = None,
    overwrite: bool = False,
    resume: bool = False,
) -> Prepared:
    """The run folder's preparation, made now if missing and otherwise checked against what is asked:
    the source (`data_dir`, `src`, `tgt`), the corpus files (sizes and hashes in preprocess.json) and
    the data settings of `cfg` (a DataConfig: every field; a dict: the fields asked for, the others are
    the folder's, or the defaults for a new preparation; None: none). A difference is a CorpusError
    naming it, or with `overwrite` the folder is prepared again, the asked settings over its own.
    `resume`: the folder is prepared beside a trained model if missing, and its settings are left to
    `check_resumable` (which compares them with the checkpoint's)."""
    run, data_dir, asked = Path(run), Path(data_dir), requested(DataConfig, cfg)
    if not (run / MANIFEST).is_file():
        log.info("%s is not prepared yet: preprocessing %s", run, data_dir)
        preprocess(data_dir, src, tgt, run, from_dict(DataConfig, asked), overwrite or resume)
        return Prepared.load(run)
    prepared = Prepared.load(run)
    difference = _difference(prepared, data_dir, src, tgt, {} if resume else asked)
    if difference is None:
        return prepared
    problem, way_out = difference
    if resume:  # --overwrite and --resume exclude each other
        way_out = ("a resumed run trains on the data it was prepared from: restore that (a copy of its folder will "
                   "do), or start the run again with --overwrite instead of --resume")  # fmt: skip
    if not overwrite:
        raise CorpusError(f"{problem}: {way_out}")
    log.info("%s; --overwrite: preparing it again", problem)
    preprocess(data_dir, src, tgt, run, from_dict(DataConfig, {**to_dict(prepared.cfg), **asked}), overwrite=True)
    return Prepared.load(run)
