"""One writer per run folder. `train` and `preprocess` hold an exclusive lock on RUN/.lock
(`fcntl.flock`) while they write, with the holder's PID in the file; a second process into the
same folder is refused in one line naming that PID (a RunFolderError: exit status 2).

The kernel releases a flock when its process ends, however it ends (`kill -9` included), so a
lock file left behind never blocks the next run. The file is emptied on release and never
deleted while the folder is in use (a process that deleted it could let two writers lock two
different files); a folder that the lock itself created and that still holds nothing else
(a run refused before it wrote anything) is removed again. Within one process the lock is
re-entrant: `train` holds it and its `preprocess` call takes it again. Torch-free."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import OutputError, RunFolderError

if TYPE_CHECKING:
    from types import TracebackType

log = logging.getLogger("seq2seq")
LOCK = ".lock"
_held: dict[Path, list[int]] = {}  # resolved run folder -> [file descriptor, depth] (this process's locks)
_guard = threading.Lock()
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)  # filesystems without flock


_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST)


class RunLock:
    """The exclusive lock of run folder `run` (created if missing), as a context manager or with
    `acquire`/`release` (a release without an acquire does nothing)."""

    def __init__(self, run: str | Path) -> None:
        self.run = Path(run)
        self.key: Path | None = None  # set while held
        self.created = False  # the folder was made by `acquire`

    def acquire(self) -> None:
        """Lock the folder, or raise RunFolderError naming the PID of the process that holds it."""
        self.created = not self.run.exists()
        try:
            self.run.mkdir(parents=True, exist_ok=True)
            key = self.run.resolve()
            with _guard:
                if key in _held:
                    _held[key][1] += 1
                else:  # refused: the folder, even one this call made, is the holder's now
                    _held[key] = [_lock_file(self.run / LOCK, self.run), 1]
        except OSError as err:  # a bad path, before any work: read-only, not ours, a file
            if err.errno not in _UNWRITABLE:
                raise
            raise OutputError(f"cannot write in the run folder {self.run}: {err.strerror}") from None
        self.key = key

    def release(self) -> None:
        key, self.key = self.key, None
        if key is None:
            return
        with _guard:
            entry = _held[key]
            entry[1] -= 1
            if entry[1]:
                return
            del _held[key]
        fd = entry[0]
        try:
            if fd >= 0:
                os.ftruncate(fd, 0)  # no PID in a lock nobody holds
            self._remove_if_empty()
        finally:
            if fd >= 0:
                os.close(fd)  # releases the flock

    def _remove_if_empty(self) -> None:
        """Remove the folder again if `acquire` made it and nothing but the lock file is in it."""
        if self.created and {p.name for p in self.run.iterdir()} <= {LOCK}:
            (self.run / LOCK).unlink(missing_ok=True)
            self.run.rmdir()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _lock_file(path: Path, run: Path) -> int:
    """An open descriptor of `path`, exclusively flocked, with this process's PID written in it; -1 on
    a filesystem without locks (a warning, and no lock)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise RunFolderError(
                f"{run} is in use by another seq2seq process (pid {pid}); wait for it or choose another --out"
            ) from None
        except OSError as err:
            os.close(fd)
            if err.errno not in _UNSUPPORTED:
                raise
            log.warning("%s: this filesystem cannot lock files (%s); nothing stops a second run writing here", run,
                        os.strerror(err.errno or 0))  # fmt: skip
            return -1
        if _same_file(fd, path):  # not a file another process deleted after we opened it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)
        run.mkdir(parents=True, exist_ok=True)


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, now = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)


def _holder(fd: int) -> str:
    """The PID written in a held lock file (its holder writes it just after locking: wait a moment)."""
    for _ in range(50):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text:
            return text
        time.sleep(0.01)
    return "unknown"
