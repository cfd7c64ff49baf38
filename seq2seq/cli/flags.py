"""Command-line flags generated from the config dataclasses: one `--flag` per field, its help from
the field's comment in config.py, and the values the user gave laid over a TOML table; an empty path or name
refused (`refuse_empty`)."""

from __future__ import annotations

import argparse
import functools
import inspect
import re
import sys
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal, TypeVar

from ..config import DecodeConfig, refuse_ignored_decode
from ..config_dict import from_dict
from ..errors import ConfigError

C = TypeVar("C")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@functools.cache
def _class_bodies(module: str) -> dict[str, str]:
    """Each top-level class's source in `module`, read once (inspect.getsource parses the whole file per
    class: 60 ms of every command's start-up for the 8 config classes)."""
    source = Path(inspect.getsourcefile(sys.modules[module]) or "").read_text(encoding="utf-8")
    parts = re.split(r"^class (\w+)\b", source, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def field_help(cls: type) -> dict[str, str]:
    """Each field's comment in the class's source (`name: type = default  # comment`): the --help text."""
    body = _class_bodies(cls.__module__)[cls.__name__]
    return dict(re.findall(r"^    (\w+): [^#\n]+?  # (.+)$", body, flags=re.MULTILINE))


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one `--flag` per field of `cls`, its help from the field's comment; defaults stay None so
    a TOML file can sit below."""
    group = parser.add_argument_group(f"{cls.__name__} options")
    hints, notes = typing.get_type_hints(cls), field_help(cls)
    for f in fields(cls):
        tp = hints[f.name]
        help_ = f"{notes.get(f.name, '')} (default: {f.default})".lstrip().replace("%", "%%")
        if tp is bool:
            group.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, help=help_)
        elif typing.get_origin(tp) is Literal:
            group.add_argument(_flag(f.name), dest=f.name, choices=typing.get_args(tp), help=help_)
        else:
            group.add_argument(_flag(f.name), dest=f.name, type=tp, metavar=tp.__name__.upper(), help=help_)


class DefaultsHelp(argparse.HelpFormatter):
    """Help that shows every option's default: a help text that does not say it (in words, or
    "required") gets " (default: VALUE)", or " (default: none)" for an option that is off unless given.
    On/off switches (store_true) are off unless given and say nothing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_ = action.help or ""
        if not action.option_strings or action.required or action.nargs == 0 or action.default == argparse.SUPPRESS:
            return help_
        if "default" in help_ or "required" in help_:
            return help_
        return f"{help_} (default: {'none' if action.default is None else '%(default)s'})"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser (and so every subcommand's) whose --help shows the defaults (`DefaultsHelp`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelp)
        super().__init__(*args, **kwargs)


def given(cls: type, args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The values of `cls`'s fields the user gave: `base` (e.g. a TOML table) overridden by the flags
    given; a field given neither way is absent (the library decides: a default, or a run's saved value)."""
    values = dict(base or {})
    values.update({f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None})
    return values


def from_flags(
    cls: type[C], args: argparse.Namespace, base: dict[str, Any] | None = None, scores_shown: bool = True
) -> C:
    """Build `cls` from `base` (e.g. a TOML table) overridden by the flags the user gave; for DecodeConfig,
    a setting given that the search would ignore, or that would change nothing printed (`scores_shown` False:
    an output of texts alone), is refused (`refuse_ignored_decode`)."""
    values = given(cls, args, base)
    if cls is DecodeConfig:
        refuse_ignored_decode(values, scores_shown, flags=given(cls, args))
    return from_dict(cls, values)


# Flags whose '' is not a path or a name left empty: --retry-lrs '' means no retry (SpanSettings); serve refuses
# --host '' itself, saying what '' would mean to a socket (every interface).
EMPTY_TAKEN = frozenset({"--retry-lrs", "--host"})


def refuse_empty(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A flag that takes a path or a name (a string, not one of choices) given '' (`--input ''`, `--out=`), alone
    or among several values: a ConfigError naming it. '' was taken as the flag left out (stdin, stdout, the current
    folder, no --config, the default column or licence) or as the path `.`."""
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for action in subcommands.choices[args.command]._actions:
        flag = max(action.option_strings, key=len, default="")
        if not flag or flag in EMPTY_TAKEN or action.nargs == 0 or action.choices or action.type not in (None, str):
            continue
        value = getattr(args, action.dest, None)
        if value == "" or (isinstance(value, list) and "" in value):
            default = "" if action.required else f", or leave {flag} out for its default"
            raise ConfigError(f"{flag} is empty (''): give a value{default}")
