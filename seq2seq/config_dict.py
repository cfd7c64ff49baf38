"""Configs from and to plain dicts, strictly: an unknown key or a value of the wrong type is one ConfigError
naming the field and the closest valid key (`checked_values`, `from_dict`), the fields a caller asked for
(`requested`: a config, a dict of some fields, or None), and a config as a dict (`to_dict`, for JSON,
TOML and checkpoints). The fields, their defaults and their bounds are config.py's.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import fields
from typing import Any, TypeVar

from .config import coerce_field
from .errors import ConfigKeyError

C = TypeVar("C")
Settings = C | dict[str, Any] | None  # a config (every field asked for), a dict of some fields, or None


def checked_values(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """`values` with every key a field of `cls` and every value of its type (ints widened to floats);
    an unknown key or a wrong type raises ConfigError. The checks between fields are `cls`'s own."""
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(known)}"
            raise ConfigKeyError(f"unknown {cls.__name__} key {key!r}{hint}")
        kwargs[key] = coerce_field(cls, key, hints[key], value)
    return kwargs


def from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """Build `cls` from a dict; unknown keys and wrong types raise ConfigError."""
    return cls(**checked_values(cls, values))


def requested(cls: type, given: Any) -> dict[str, Any]:
    """The fields of `cls` a caller asked for: all of them for a `cls` instance, the keys of a dict
    (checked: `checked_values`), none for None. Fields not asked for are the library's to fill in (a
    default, a resumed run's saved value, a prepared folder's setting)."""
    if given is None:
        return {}
    if isinstance(given, cls):
        return to_dict(given)
    if not isinstance(given, dict):
        raise ConfigKeyError(f"expected a {cls.__name__} or a dict of its fields, got {type(given).__name__}")
    return checked_values(cls, given)


def changed_fields(old: dict[str, Any], new: dict[str, Any], was: str = "then", now: str = "now") -> list[str]:
    """`field OLD then, NEW now` (labels: `was`, `now`) for each field of `new` whose value differs from `old`'s."""
    return [f"{key} {old.get(key)!r} {was}, {value!r} {now}" for key, value in new.items() if old.get(key) != value]


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict of a config dataclass (for JSON and checkpoints)."""
    return dataclasses.asdict(cfg)
