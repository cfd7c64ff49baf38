"""How the toolkit reports: every error type the command line turns into one clear line and an exit
status (`EXIT_STATUS`: 2 for a bad input or setting, 3 for a diverged training; Ctrl-C is 130; an OSError
1, the machine failing, or 2 for a path refused as named: `os_exit_status`), and
the format of its log lines (terminal and RUN/train.log). Library code raises these; `seq2seq.cli.main`
catches `USER_ERRORS` and nothing else by name. Torch-free and importing nothing of seq2seq, so that
every layer may import it (config.py, atomic.py, machine/hardware.py and tools/plots.py re-export
the names they used to define)."""

from __future__ import annotations

import errno

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

EXIT_SYSTEM = 1  # the machine failing: a full disk, an I/O error, a port in use (an OSError not of PATH_ERRNOS)
EXIT_USAGE = 2  # a bad input or setting: one line naming the file, line or field
EXIT_DIVERGED = 3  # the exit status of a `train` that stopped on a diverged loss
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, the status a shell gives a command killed by it


class ConfigError(ValueError):
    """A configuration value or key that cannot be used. A value refused for its type, or for not being one of
    a field's choices (config_dict), also carries `field`, `wanted` (a type's name, or the choices) and `value`,
    for a caller that shows values its own way (`seq2seq serve`: as JSON, `true` and `null`, not `True`, `None`)."""

    field: str | None = None
    wanted: str | tuple[object, ...] = ""
    value: object = None


class ConfigKeyError(ConfigError, TypeError):
    """An unknown key or a value of the wrong type: a TypeError to Python callers, a ConfigError to the CLI."""


class HardwareError(ConfigError):
    """A setting this machine cannot run (precision, device); the message says what to use instead."""


class CorpusError(ValueError):
    """A corpus file that cannot be used as it is; the message names the file and line."""


class RunFolderError(ValueError):
    """A run folder's file (metrics.jsonl) that cannot be read; the message names the file and line."""


class CheckpointError(ValueError):
    """A file that is not a loadable seq2seq checkpoint; the message says why in one line."""


class OutputError(ValueError):
    """An output path that cannot be written as asked; the message names the path and the problem."""


class HubError(ValueError):
    """A model the Hugging Face Hub cannot give or take (unreachable, offline, no such repository or
    file, no token); the message names the repository (`hf://ORG/NAME`) in one line."""


class PlotError(RuntimeError):
    """A picture that cannot be made (matplotlib missing, nothing to plot); one-line message."""


class DivergedError(RuntimeError):
    """Training stopped because its loss diverged (non-finite losses in a row, or a loss grown past
    TrainConfig.loss_growth times its first value); the message says whether a checkpoint was kept,
    and from which update. `result` holds where the run ended. The command line prints it in one line
    and exits with status 3 (EXIT_DIVERGED), so that `train && translate` stops."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


# The exit status of each error type the command line reports in one line (the first match counts).
EXIT_STATUS: dict[type[Exception], int] = {
    ConfigError: EXIT_USAGE,  # HardwareError and ConfigKeyError included
    CorpusError: EXIT_USAGE,
    CheckpointError: EXIT_USAGE,
    RunFolderError: EXIT_USAGE,
    OutputError: EXIT_USAGE,
    HubError: EXIT_USAGE,
    PlotError: EXIT_USAGE,
    DivergedError: EXIT_DIVERGED,
}
USER_ERRORS: tuple[type[Exception], ...] = tuple(EXIT_STATUS)


def exit_status(err: BaseException) -> int:
    """The exit status of `err`, one of `USER_ERRORS`: 2, or 3 for a diverged training."""
    return next(status for kind, status in EXIT_STATUS.items() if isinstance(err, kind))


# OSErrors that say a path cannot be used as the user named it, whatever the machine's state: a name too long, a
# loop of links, a file where a folder is needed or a folder where a file is, a read-only file system (train,
# preprocess and export refuse one up front, OutputError). Bad input: EXIT_USAGE. Not ENOENT, EACCES, EPERM:
# the commands check the user's paths for those up front, and raised later they may be about a file the toolkit or
# a library keeps itself (a cache, a temporary file): like ENOSPC, EDQUOT and EIO, EXIT_SYSTEM.
PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EROFS})


def os_exit_status(err: OSError) -> int:
    """The exit status of an OSError: EXIT_USAGE for one of PATH_ERRNOS that names its path, else EXIT_SYSTEM."""
    return EXIT_USAGE if err.filename is not None and err.errno in PATH_ERRNOS else EXIT_SYSTEM
