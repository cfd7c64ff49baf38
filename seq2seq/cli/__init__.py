"""The `seq2seq` command: each subcommand parses its flags (parser.py), calls one library function and
prints (commands.py); `main` runs it and turns errors into one line and an exit status."""

from __future__ import annotations

import logging
import os
import sys

from ..errors import EXIT_INTERRUPTED, LOG_FORMAT, TIME_FORMAT, USER_ERRORS, exit_status, os_exit_status
from .flags import refuse_empty
from .parser import build_parser

__all__ = ["build_parser", "main", "setup_logging"]


class _BarShowsIt(logging.Filter):
    """Drop the training-progress lines on a terminal, where the progress bar shows them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "seq2seq.progress" and sys.stderr.isatty())


def setup_logging(quiet: bool) -> None:
    """Timestamped lines on stderr: INFO and up (warnings and errors only with --quiet). Like
    logging.basicConfig, nothing is added where the root logger has handlers already (an application
    or test harness that configured logging itself)."""
    logger = logging.getLogger("seq2seq")
    logger.setLevel(logging.INFO)
    if logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, TIME_FORMAT))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    handler.addFilter(_BarShowsIt())
    for old in [h for h in logger.handlers if isinstance(h.filters[0] if h.filters else None, _BarShowsIt)]:
        logger.removeHandler(old)  # main() called again in one process (tests, notebooks)
    logger.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.quiet)
    try:
        refuse_empty(parser, args)  # `--input ''` is no file, not standard input
        args.func(args)
    except USER_ERRORS as err:  # errors.EXIT_STATUS: 2, or 3 for a diverged loss (`train && translate` stops)
        if not getattr(err, "reported_by_rank0", False):  # several processes: rank 0 prints what all raise
            print(f"seq2seq {args.command}: error: {err}", file=sys.stderr)
        return exit_status(err)
    except BrokenPipeError:
        return 1
    except OSError as err:  # 1: the system failing (a full disk, an I/O error); 2: a path refused as named (too long)
        where = f"{err.filename}: " if err.filename else ""
        print(f"seq2seq {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return os_exit_status(err)
    except KeyboardInterrupt:  # Ctrl-C (training turns it into a stop between updates: StopSignal)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, one line for all processes
            print(f"seq2seq {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
