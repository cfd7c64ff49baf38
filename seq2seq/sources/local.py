"""Local data for `seq2seq download`: which of the user's paths are local (not a Hub name), and how a saved
dataset, a dataset folder or data files (one file or a glob) load with `datasets`: each file's split read
from its name, its format from its suffix."""

from __future__ import annotations

import csv
import glob
import os
import re
from pathlib import Path
from typing import Any

from ..errors import CorpusError

_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}
_COMPRESSED = {".gz", ".bz2", ".xz", ".zst", ".zip"}
# Keep "NA", "null", "" etc. as text: pandas would otherwise turn such sentences into missing values.
_CSV_ARGS = {"keep_default_na": False, "na_filter": False}
_TSV_ARGS = {**_CSV_ARGS, "delimiter": "\t", "quoting": csv.QUOTE_NONE}
_SPLIT_IN_NAME = re.compile(r"^(train|validation|valid|val|dev|test)(?![a-z])")
_SHARD = re.compile(r"^(train|validation|valid|val|dev|test)[-_]\d+(-of-\d+)?$")  # train-00000-of-00002


def _named_split(path: str) -> str | None:
    """The split a data file's name names (`validation.jsonl` -> validation, `test_2016_flickr.jsonl` ->
    test_2016_flickr, a shard `train-00001-of-00004.parquet` -> train), or None."""
    stem = Path(path).name.split(".")[0]
    if not (m := _SPLIT_IN_NAME.match(stem.lower())):
        return None
    return stem[: len(m.group(1))] if _SHARD.match(stem.lower()) else stem


def _file_splits(files: list[str]) -> dict[str, list[str]]:
    """The data files of each split, by name. Files whose names name no split are train (shards such as
    `part-0001.jsonl`), unless others do name theirs: `newstest2014.jsonl` beside `train.jsonl` would be
    merged into train, so it is refused (a CorpusError naming it)."""
    named = {f: _named_split(f) for f in files}
    if None in named.values() and (other := next((f for f, s in named.items() if s is not None), None)):
        bare = next(f for f, s in named.items() if s is None)
        raise CorpusError(f"{bare}: its name names no split, beside files that do ({Path(other).name}), so it "
                          "would be merged into train: name its split first (train, validation, valid, val, dev or "
                          "test, e.g. test_newstest2014.jsonl), or download it alone")  # fmt: skip
    splits: dict[str, list[str]] = {}
    for f, split in named.items():
        splits.setdefault(split or "train", []).append(f)
    return splits


def _extension(path: str) -> str:
    """The data format suffix of a file name, looking past a compression suffix (`a.jsonl.gz` -> .jsonl)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if len(suffixes) > 1 and suffixes[-1] in _COMPRESSED:
        return suffixes[-2]
    return suffixes[-1] if suffixes else ""


def _builder(files: list[str]) -> tuple[str, dict[str, Any]]:
    """The packaged `datasets` builder and its options for a list of data files of one format."""
    exts = {_extension(f) for f in files}
    if len(exts) != 1 or next(iter(exts)) not in _BUILDERS:
        raise CorpusError(f"cannot read {sorted(exts)} files; use one of {', '.join(_BUILDERS)}")
    ext = exts.pop()
    return _BUILDERS[ext], _TSV_ARGS if ext == ".tsv" else _CSV_ARGS if ext == ".csv" else {}


def is_local(name: str) -> bool:
    """Whether `name` means a path here rather than a Hub dataset (`name` or `owner/name`)."""
    path = Path(name).expanduser()
    return (
        path.exists()
        or any(c in name for c in "*?[")
        or name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or bool({s.lower() for s in path.suffixes} & (set(_BUILDERS) | _COMPRESSED))
    )


def load_local(dataset: str, subset: str | None, streaming: bool) -> tuple[dict, dict[str, Any]]:
    """`download`'s loading of a saved dataset, a dataset folder, or data files (a path or a glob)."""
    import datasets

    path = Path(dataset).expanduser()
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        if subset:
            raise CorpusError(f"{dataset}: a saved dataset has no subsets")
        if streaming:
            raise CorpusError(f"{dataset}: --streaming applies to Hub datasets, dataset folders and data files; a "
                              "saved dataset is read from its memory-mapped Arrow files anyway")  # fmt: skip
        # Arrow files on disk are memory-mapped, so `streaming` would save nothing here.
        loaded = datasets.load_from_disk(str(path))
        splits = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {str(loaded.split or "train"): loaded}
        return splits, {"source": "saved dataset"}
    if path.is_dir():
        return dict(datasets.load_dataset(str(path), name=subset, streaming=streaming)), {"source": "folder"}
    files = sorted(glob.glob(os.path.expanduser(dataset))) if any(c in dataset for c in "*?[") else [str(path)]
    files = [f for f in files if Path(f).is_file()]
    if not files:
        raise CorpusError(f"{dataset}: no such file or folder")
    if subset:
        raise CorpusError(f"{dataset}: --subset applies to Hub datasets and dataset folders only")
    data_files = _file_splits(files)
    builder, options = _builder(files)
    splits = datasets.load_dataset(builder, data_files=data_files, streaming=streaming, **options)
    return dict(splits), {"source": "files", "data_files": data_files}
