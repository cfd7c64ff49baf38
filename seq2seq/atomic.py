"""Output files written whole or not at all, and never over the command's own input.

Every file a command writes for the user (translations, checkpoints, exported models, plots) goes
through `atomic_write`: the data goes into a temporary file beside the target (`.NAME.PID.tmp`),
which is flushed to disk and then renamed over the target (`os.replace`, atomic on one file
system). A run that is interrupted (Ctrl-C, a kill, a full disk, an error) leaves either the old
file or no file, never a partial one, and removes its temporary file where it still can.

`check_output` is the check a command makes first, before any work: it refuses an output path
whose folder is missing, that is a folder, or that is one of the command's inputs (the same file,
also through a symbolic or hard link: `os.path.samestat`, what `os.path.samefile` compares).
Torch-free, like the rest of the core that the NumPy runtime imports.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import OutputError  # defined in errors.py; `seq2seq.atomic.OutputError` stays

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator


def _stat(source: str | Path | int) -> os.stat_result | None:
    """os.stat of a path, or os.fstat of an open file descriptor; None where there is nothing to compare."""
    try:
        return os.fstat(source) if isinstance(source, int) else os.stat(source)
    except (OSError, ValueError):
        return None


def is_special(path: str | Path) -> bool:
    """A path that is not a file to replace: a device, a pipe or a socket (`--output /dev/null`,
    `/dev/stdout`, a named pipe), or anything under /dev or /proc. Written straight into, never renamed over."""
    if str(Path(path).absolute()).startswith(("/dev/", "/proc/")):
        return True
    found = _stat(path)
    return found is not None and not stat.S_ISREG(found.st_mode)


def _make_folder(path: Path) -> None:
    folder = path.parent
    if not folder.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"cannot write {path}: cannot create folder {folder}/ ({err.strerror})") from None


def _check_folder(path: Path, make_folder: bool, later: bool) -> None:
    """The folder of `path` exists (with `make_folder`: is created; with `later` too: the nearest existing
    folder above it is one this process may create it in) and this process may create files in it."""
    folder = path.parent
    if make_folder and later and not folder.exists():
        folder = next((p for p in folder.parents if p.exists()), folder)  # where the first new folder goes
    elif make_folder:
        _make_folder(path)
    why = unwritable_folder(folder)
    if why:
        raise OutputError(f"cannot write {path}: {why}")


def unwritable_folder(folder: Path) -> str | None:
    """Why this process cannot create files in `folder` ("folder F/ does not exist", "F is not a folder", "folder
    F/ is on a read-only file system", "folder F/ is not writable"), or None when it can."""
    if not folder.exists():
        return f"folder {folder}/ does not exist"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        read_only = os.statvfs(folder).f_flag & os.ST_RDONLY
        return f"folder {folder}/ " + ("is on a read-only file system" if read_only else "is not writable")
    return None


def check_output(
    path: str | Path, inputs: Iterable[str | Path | int | None] = (), make_folder: bool = False, *,
    later: bool = False, regular: bool = False,
) -> None:  # fmt: skip
    """Refuse, with an OutputError naming `path`, an output file that cannot be written: it is a
    folder, its folder is missing (with `make_folder`: created, or with `later` too created by
    `atomic_write(make_folder=True)` when written) or not writable, it is read-only, or it is one of
    `inputs` (paths, or file descriptors such as stdin's 0; also through a link). With `regular`, a device
    or pipe too (a model file is a zip or torch archive: written whole and renamed into place)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    if is_special(path) and regular:
        raise OutputError(f"cannot write {path}: not a regular file (a device or a pipe); a model file is written "
                          "whole, then renamed into place: name a file")  # fmt: skip
    if is_special(path):  # /dev/null, /dev/stdout, a pipe: written straight into, nothing to destroy
        return
    _check_folder(path, make_folder, later)
    out = _stat(path)
    if out is None:  # a new file: it cannot be an input
        return
    for source in inputs:
        given = _stat(source) if source is not None else None
        if given is not None and os.path.samestat(out, given):
            name = "standard input" if isinstance(source, int) else source
            raise OutputError(f"cannot write {path}: it is the input {name}; writing it would destroy the input")
    if not os.access(path, os.W_OK):
        raise OutputError(f"cannot write {path}: the file is read-only")


def temporary_path(path: str | Path) -> Path:
    """Where `atomic_write` writes before renaming: `.NAME.PID.tmp` beside the file (beside the file
    a symbolic link points to: the link is kept and its target replaced)."""
    target = Path(os.path.realpath(path))
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def _open(path: str | Path, mode: str) -> IO[Any]:
    return open(path, mode, **({"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}))


_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)  # a full disk, a quota, a failing device


@contextmanager
def _naming(path: str | Path) -> Iterator[None]:
    """A write error without a file name (a full disk: `[Errno 28] No space left on device`) gets `path`'s."""
    try:
        yield
    except OSError as err:
        if err.filename is None and err.errno in _WRITE_ERRORS:
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", make_folder: bool = False) -> Iterator[IO[Any]]:
    """A new file object ("w": UTF-8 text with \\n line endings, "wb": bytes) that becomes `path` when
    the block ends without an exception (flushed to disk, then renamed over it); on any exception,
    KeyboardInterrupt included, the temporary file is removed and `path` is left as it was.
    A device or pipe (`is_special`: /dev/null, /dev/stdout) is written straight into instead.
    `make_folder`: a missing folder is created first (`check_output(make_folder=True, later=True)`)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', not {mode!r}")
    if is_special(path):
        with _naming(path), _open(path, mode) as f:
            yield f
        return
    if make_folder:
        _make_folder(Path(os.path.realpath(path)))
    tmp = temporary_path(path)
    target = tmp.with_name(Path(os.path.realpath(path)).name)
    try:
        with _naming(path), _open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        old = _stat(target)
        if old is not None:  # keep the permissions of the file being replaced
            os.chmod(tmp, stat.S_IMODE(old.st_mode))
        os.replace(tmp, target)
        _sync_folder(target.parent)  # the rename itself on disk, before anything that counts on it (pruning)
    finally:
        tmp.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename into it survives a power loss (where the OS allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a folder: the rename is then as durable as they make it
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | Path, text: str) -> None:
    """`Path.write_text(text)` (UTF-8), through `atomic_write`."""
    with atomic_write(path) as f:
        f.write(text)


def refuse_run_checkpoint(out: str | Path, what: str, instead: str, flag: str = "--out") -> None:
    """An OutputError when `out` is a run's own checkpoint (last.pt, best.pt, stepN.pt beside a
    preprocess.json), also through a symbolic link (atomic_write replaces its target): writing `what`
    there would replace what training resumes from or chose."""
    for target in dict.fromkeys((Path(out), Path(os.path.realpath(out)))):
        if (target.parent / "preprocess.json").is_file() and (
            target.name in ("last.pt", "best.pt")
            or (target.name.startswith("step") and target.stem[4:].isdigit() and target.suffix == ".pt")
        ):
            link = "" if target == Path(out) else f" (a link to {target})"
            raise OutputError(f"{flag} {out}{link} is a checkpoint of the run in {target.parent} (training resumes "
                              f"from last.pt; best.pt is its chosen model): write {what} beside them under another "
                              f"name, e.g. {target.parent / instead}")  # fmt: skip
