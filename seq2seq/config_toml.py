"""The settings files: TOML with [data]/[model]/[train]/[decode] tables, read strictly (`load_toml`: a
`--config` file, a run folder's config.toml) and written back (`toml_text`). The tables' fields and
their checks are config.py's.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from .config import SECTIONS
from .config_dict import checked_values, to_dict
from .errors import ConfigError
from .text import read_capped

if TYPE_CHECKING:
    from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the tomli package
    import tomli as tomllib

MAX_TOML_BYTES = 1 << 20  # a settings file is a few hundred bytes: a larger one (/dev/zero, a corpus) is refused

TABLE_READERS = {  # who reads each table of a --config file: a table a command does not read is refused
    "data": "seq2seq preprocess, seq2seq train",
    "model": "seq2seq train",
    "train": "seq2seq train",
    "decode": "seq2seq translate, seq2seq serve",
}


def load_toml(path: str | Path, used: tuple[str, ...] = tuple(SECTIONS)) -> dict[str, dict[str, Any]]:
    """Read a TOML file with [data]/[model]/[train]/[decode] tables (each optional), e.g. a run
    folder's config.toml (`write_toml`). Every table is used or refused: a table that is not one of
    `used` (the tables the command reads) is a ConfigError naming it, and so is an unknown table, an
    unknown key or a value of the wrong type, whatever table it is in."""
    try:
        text = read_capped(path, MAX_TOML_BYTES, ConfigError, "settings file").decode("utf-8")
        raw = tomllib.loads(text.replace("\r\n", "\n").replace("\r", "\n"))  # line ends as read_text read them
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        hint = " (a run's settings to reuse: RUN/config.toml)" if str(path).endswith(".json") else ""
        raise ConfigError(f"{path}: {err}{hint}") from None
    tables = " ".join(f"[{name}]" for name in used)
    for section, values in raw.items():
        if section not in SECTIONS and not isinstance(values, dict):  # a key above every table
            owners = [f"[{name}]" for name, cls in SECTIONS.items() if section in {f.name for f in fields(cls)}]
            where = f"; it belongs in {' or '.join(owners)}" if owners else f"; this command reads {tables}"
            raise ConfigError(f"{path}: {section} = ... is outside any table{where}")
        if section not in SECTIONS:
            close = difflib.get_close_matches(section, list(SECTIONS), n=1)
            hint = f"; did you mean [{close[0]}]?" if close else f"; this command reads {tables}"
            raise ConfigError(f"{path}: unknown section [{section}]{hint}")
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {section} = ... is a value, not a [{section}] table")
        try:
            raw[section] = checked_values(SECTIONS[section], values)
        except ConfigError as err:
            raise type(err)(f"{path}: [{section}] {err}") from None
        if section not in used:
            raise ConfigError(
                f"{path}: table [{section}] is not read by this command (it reads {tables}); "
                f"remove it or give it to a command that reads it ({TABLE_READERS[section]})"
            )
    return raw


def toml_text(cfgs: dict[str, Any], header: str = "") -> str:
    """Config dataclasses as TOML tables ({"train": TrainConfig(...), ...}) that `load_toml` reads back."""
    lines = [f"# {line}" for line in header.splitlines()]
    for section, cfg in cfgs.items():
        lines += ["", f"[{section}]"]
        for key, value in to_dict(cfg).items():
            text = str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, float) else None
            lines.append(f"{key} = {text or json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines).lstrip("\n") + "\n"
