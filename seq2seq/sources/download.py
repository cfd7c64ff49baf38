"""Download a parallel corpus with Hugging Face `datasets` into plain `{split}.{lang}` text files.

A Hub name, a local dataset folder and local data files (one file or a glob) take one code path;
`manifest.json` records what was loaded, which columns were read and how many lines came out. Reading
local data (which paths are local, each file's split and format) is local.py's.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, NamedTuple

from ..atomic import write_text_atomic
from ..errors import CorpusError
from ..runlock import RunLock
from .holdout import HoldOut, check_hold_out, split_off
from .local import is_local, load_local

MANIFEST = "manifest.json"
SPLIT_NAMES = {"validation": "val", "valid": "val", "dev": "val"}  # others are kept as they are
_BATCH = 10_000


class Schema(NamedTuple):
    """Where the two sides of a pair live: plain text columns, or keys of one dict column."""

    src_col: str
    tgt_col: str
    nested: bool  # True: both columns are the same `{lang: text}` column, read at src/tgt keys

    def describe(self, src: str, tgt: str) -> dict[str, str]:
        if self.nested:
            return {"src": f"{self.src_col}.{src}", "tgt": f"{self.tgt_col}.{tgt}"}
        return {"src": self.src_col, "tgt": self.tgt_col}


def _load(dataset: str, subset: str | None, revision: str | None, streaming: bool) -> tuple[dict, dict[str, Any]]:
    """The splits of `dataset` (Hub name, folder, file or glob) and a description of the source."""
    import datasets
    from datasets.exceptions import DatasetsError

    try:
        if not is_local(dataset):
            splits = datasets.load_dataset(dataset, name=subset, revision=revision, streaming=streaming)
            return dict(splits), {"source": "hub", "commit": _hub_commit(dataset, revision)}
        if revision:
            raise CorpusError(f"{dataset}: --revision applies to Hub datasets only")
        return load_local(dataset, subset, streaming)
    except CorpusError:
        raise
    except (OSError, ValueError, RuntimeError, DatasetsError) as err:
        raise CorpusError(f"cannot load {dataset!r}: {_reason(err)}") from err


def _old_splits(out: Path, src: str, tgt: str) -> list[str]:
    """The split files an earlier download wrote in `out` (its manifest's splits), which a new download of
    the same two languages replaces whole. A folder whose manifest cannot be read, or records another pair
    of languages, is refused (a CorpusError): replacing some of its files would leave the files of two
    downloads side by side (train.en of one beside train.de of the other)."""
    path = out / MANIFEST
    if not path.exists():
        return []
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(old, dict) or not isinstance(old.get("splits"), dict):
            raise ValueError("not a manifest of `seq2seq download`")
        old_src, old_tgt = old["src"], old["tgt"]
        if not (isinstance(old_src, str) and isinstance(old_tgt, str)):
            raise ValueError("no src and tgt languages")
    except (OSError, UnicodeDecodeError, ValueError, KeyError) as err:
        raise CorpusError(f"--out {out}: its {MANIFEST} cannot be read ({_reason(err, 120)}), so which files an "
                          "earlier download wrote there is unknown: name another folder, or remove that "
                          "one first") from None  # fmt: skip
    if {old_src, old_tgt} != {src, tgt}:
        raise CorpusError(f"--out {out}: holds a {old_src}-{old_tgt} download ({old.get('dataset')}); a {src}-{tgt} "
                          "download would leave its files beside that one's: name another folder, or remove "
                          "that one first")  # fmt: skip
    return [f"{split}.{lang}" for split in old["splits"] for lang in (old_src, old_tgt)]


def _check_clobber(out: Path, old: list[str], new: list[str]) -> None:
    """A CorpusError naming the first file the new download would write over that no earlier download
    (its manifest) wrote: the user's own `{split}.{lang}` files are never overwritten."""
    if foreign := [name for name in new if name not in old and (out / name).exists()]:
        raise CorpusError(f"--out {out}: {out / foreign[0]} is not a file of an earlier download (the folder's "
                          f"{MANIFEST} does not list it) and would be overwritten: move it, or name another "
                          "folder")  # fmt: skip


def _swap_in(stage: Path, out: Path, old: list[str], new: list[str]) -> None:
    """Replace an earlier download's split files in `out` by the new ones written in `stage`: the old
    manifest first (a folder without one is no finished download), then the old splits the new download
    lacks, then the new files by renames."""
    (out / MANIFEST).unlink(missing_ok=True)
    for name in set(old) - set(new):
        (out / name).unlink(missing_ok=True)
    for name in new:
        os.replace(stage / name, out / name)


def _reason(err: BaseException, limit: int = 300) -> str:
    """One line saying why `err` happened: the messages of its chain of causes (`raise ... from`, and
    exceptions raised while handling another), each whole on one line, cut at `limit` characters."""
    chain, e = [], err
    while e is not None and e not in chain and len(chain) < 4:
        chain.append(e)
        e = e.__cause__ or e.__context__

    def one_line(e: BaseException) -> str:
        text = " ".join(str(e).split()) or type(e).__name__
        return text if len(text) <= limit else text[: limit - 1] + "…"

    lines = list(dict.fromkeys(one_line(e) for e in chain))
    return " (".join(lines) + ")" * (len(lines) - 1)


def _hub_commit(name: str, revision: str | None) -> str | None:
    """The Hub commit a revision points at (None when the Hub cannot say, e.g. offline)."""
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(name, revision=revision).sha
    except Exception:  # best effort: the manifest still records fingerprints and config
        return None


def find_schema(
    columns: list[str], features: Any, src: str, tgt: str, src_column: str | None = None, tgt_column: str | None = None
) -> Schema:
    """Which columns hold `src` and `tgt` text; a clear error when the schema is not recognised."""
    if src_column or tgt_column:
        if not (src_column and tgt_column):
            raise CorpusError("give both --src-column and --tgt-column")
        missing = [c for c in (src_column, tgt_column) if c not in columns]
        if missing:
            raise CorpusError(f"no column {missing[0]!r}; columns found: {', '.join(columns)}")
        return Schema(src_column, tgt_column, nested=False)
    by_dict, by_lang = "translation" in columns, src in columns and tgt in columns
    if by_dict and by_lang:
        raise CorpusError(
            f"ambiguous schema: both a 'translation' column and {src!r}/{tgt!r} columns "
            f"(columns found: {', '.join(columns)}); pass --src-column and --tgt-column"
        )
    if by_lang:
        return Schema(src, tgt, nested=False)
    if not by_dict:
        raise CorpusError(
            f"cannot tell which columns hold {src!r} and {tgt!r} text; columns found: {', '.join(columns)}; "
            "pass --src-column and --tgt-column"
        )
    feature = (features or {}).get("translation")
    langs = getattr(feature, "languages", None) or (list(feature) if isinstance(feature, dict) else None)
    for lang in (src, tgt):
        if langs is not None and lang not in langs:
            raise CorpusError(f"language {lang!r} not in the translation column (it has {', '.join(langs)})")
    return Schema("translation", "translation", nested=True)


def _one_line(text: Any) -> tuple[str, bool, bool]:
    """`text` as one line (line breaks of any kind become spaces, missing -> "", NUL characters removed: every
    line reader takes the file, and `text.read_lines` refuses NUL as the mark of a binary file), whether it had
    line breaks and whether it had NULs."""
    text = "" if text is None else str(text)
    line = " ".join(text.splitlines())
    broken = line != text
    nul = "\x00" in line
    return (line.replace("\x00", "") if nul else line), broken, nul


def _show(value: Any, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _texts(batch: dict, schema: Schema, src: str, tgt: str, where: str, first: int) -> tuple[list, list]:
    """The source and target values of a batch whose first row is row `first`: strings, or None where
    missing (a pair without one of the languages becomes an empty line). Any other value is a CorpusError
    naming `where` (the split), the row and the column."""
    src_texts, tgt_texts = batch[schema.src_col], batch[schema.tgt_col]
    if schema.nested:
        for row, pair in enumerate(src_texts, first):
            if pair is not None and not isinstance(pair, dict):
                raise CorpusError(f"{where} {row:,}: column {schema.src_col!r} holds {type(pair).__name__} "
                                  f"{_show(pair)}, not a {{language: text}} dict")  # fmt: skip
        src_texts, tgt_texts = [(p or {}).get(src) for p in src_texts], [(p or {}).get(tgt) for p in tgt_texts]
    columns = schema.describe(src, tgt)
    for side, texts in (("src", src_texts), ("tgt", tgt_texts)):
        for row, text in enumerate(texts, first):
            if text is not None and not isinstance(text, str):
                raise CorpusError(f"{where} {row:,}: column {columns[side]!r} holds {type(text).__name__} "
                                  f"{_show(text)}, not text (a string)")  # fmt: skip
    return src_texts, tgt_texts


def _write_split(
    ds: Any, schema: Schema, src: str, tgt: str, paths: tuple[Path, Path], desc: str, split: str = "train"
) -> tuple[int, int, int]:
    """Write one split line by line; returns (lines written, sentences that had line breaks, sentences that
    had NUL characters). A value that is neither a string nor missing (None) is a CorpusError naming the
    split (`split`, the dataset's name of it), the row and the column: a number or a dict was written as
    its Python repr."""
    from tqdm.auto import tqdm

    n = broken = nuls = 0
    total = getattr(ds, "num_rows", None)
    tmp = [p.with_name(p.name + ".part") for p in paths]
    try:
        with (
            open(tmp[0], "w", encoding="utf-8", newline="\n") as src_f,
            open(tmp[1], "w", encoding="utf-8", newline="\n") as tgt_f,
            tqdm(total=total, desc=desc, unit=" pairs", disable=None) as bar,
        ):
            for batch in ds.select_columns(sorted({schema.src_col, schema.tgt_col})).iter(batch_size=_BATCH):
                src_texts, tgt_texts = _texts(batch, schema, src, tgt, f"split {split!r}, row", n + 1)
                for s, t in zip(src_texts, tgt_texts):
                    (s_line, s_broken, s_nul), (t_line, t_broken, t_nul) = _one_line(s), _one_line(t)
                    broken += s_broken + t_broken
                    nuls += s_nul + t_nul
                    src_f.write(s_line + "\n")
                    tgt_f.write(t_line + "\n")
                n += len(src_texts)
                bar.update(len(src_texts))
        for part, path in zip(tmp, paths):
            os.replace(part, path)
    finally:
        for part in tmp:
            part.unlink(missing_ok=True)
    return n, broken, nuls


def download(dataset: str | Path, src: str, tgt: str, out: str | Path, subset: str | None = None,
             columns: tuple[str | None, str | None] = (None, None), revision: str | None = None,
             streaming: bool = False, hold_out: HoldOut | None = None) -> dict:  # fmt: skip
    """Write `out/{split}.{src|tgt}` and `out/manifest.json` from `dataset`; returns the manifest.
    `datasets`' own progress bars show on a terminal only (a log file gets no bar frames).

    `columns`: the (source, target) columns to read (default: detected from the schema, `find_schema`).

    `hold_out.size` N > 0: a dataset without a val split (one file, or a train split only) gets one:
    N pairs of the train split, picked by `random.Random(hold_out.seed).sample` over its line numbers,
    go to val.{src,tgt} (in their order), the rest stay in train. N must be below the train split's
    line count; a dataset that has a val split already is refused."""
    import datasets

    if src == tgt:
        raise CorpusError(f"--src and --tgt are both {src!r}: each side is written to {{split}}.{{lang}}, so they need "
                          "two language codes")  # fmt: skip
    if columns[0] is not None and columns[0] == columns[1]:
        raise CorpusError(f"--src-column and --tgt-column are both {columns[0]!r}: the two sides of a pair are two "
                          "columns")  # fmt: skip
    bars = not datasets.are_progress_bars_disabled()
    if bars and not sys.stderr.isatty():
        datasets.disable_progress_bars()
    try:
        with RunLock(out):  # one writer per folder: two downloads into one folder mixed their files and manifests
            return _download(str(dataset), src, tgt, Path(out), subset, columns, revision, streaming,
                             hold_out or HoldOut())  # fmt: skip
    finally:
        if bars:
            datasets.enable_progress_bars()


def _download(dataset: str, src: str, tgt: str, out: Path, subset: str | None,
              columns: tuple[str | None, str | None], revision: str | None, streaming: bool,
              hold_out: HoldOut) -> dict:  # fmt: skip
    """`download`, with `datasets`' progress bars as the caller left them."""
    import datasets
    from datasets.exceptions import DatasetsError

    old = _old_splits(out, src, tgt)  # before any work: a folder of another download is refused
    splits, source = _load(dataset, subset, revision, streaming)
    names = {name: SPLIT_NAMES.get(name.lower(), name) for name in splits}
    clashes = sorted({n for n in names.values() if list(names.values()).count(n) > 1})
    if clashes:
        raise CorpusError(f"splits {sorted(splits)} give two {clashes[0]!r} splits")
    will_write = {*names.values(), *(["val"] if hold_out.size else [])}  # the split files this download writes:
    _check_clobber(out, old, [f"{split}.{lang}" for split in will_write for lang in (src, tgt)])  # before reading
    if hold_out.seed is not None and not hold_out.size:
        raise CorpusError(f"--val-seed {hold_out.seed} would be ignored: it picks the pairs --val-size holds out")
    if hold_out.size:
        check_hold_out(dataset, splits, names, hold_out.size)
    written, broken, nuls = {}, 0, 0
    stage = out / f".download-{os.getpid()}"  # every split is written here first: a failure leaves `out` as it was
    try:  # streaming datasets read (and may fail on) their rows only from here on
        schemas = {}
        for name, ds in splits.items():
            schemas[name] = find_schema(ds.column_names or list(next(iter(ds), {})), ds.features, src, tgt, *columns)
        stage.mkdir(parents=True)
        for name, ds in splits.items():
            split = names[name]
            whole = split == "train" and hold_out.size > 0  # written whole, then split in two (holdout.split_off)
            paths = tuple(stage / f"{'.' * whole}{split}.{lang}{'.whole' * whole}" for lang in (src, tgt))
            lines, n_broken, n_nul = _write_split(ds, schemas[name], src, tgt, paths, split, name)
            fingerprint = getattr(ds, "_fingerprint", None)  # None when streaming
            written[split] = {"from_split": name, "lines": lines, "fingerprint": fingerprint}
            broken += n_broken
            nuls += n_nul
            if whole:
                written["train"]["lines"] = lines - hold_out.size
                written["val"] = {"from_split": name, "lines": hold_out.size, "held_out_of": lines,
                                  "seed": hold_out.picks, "fingerprint": None}  # fmt: skip
                split_off(paths, stage, (src, tgt), hold_out, lines)
        new = [f"{split}.{lang}" for split in written for lang in (src, tgt)]
        _check_clobber(out, old, new)
        _swap_in(stage, out, old, new)
    except CorpusError:
        raise
    except (OSError, ValueError, DatasetsError) as err:
        raise CorpusError(f"cannot read {dataset!r}: {_reason(err)}") from err
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    info = next(iter(splits.values())).info
    manifest = {
        "dataset": str(dataset), "subset": subset, "revision": revision, **source, "streaming": streaming,
        "builder": info.builder_name, "config_name": info.config_name, "version": info.version and str(info.version),
        "src": src, "tgt": tgt, "columns": next(iter(schemas.values())).describe(src, tgt),
        "splits": written, "line_breaks_replaced": broken, "nul_characters_removed": nuls,
        "datasets_version": datasets.__version__,
    }  # fmt: skip
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest
