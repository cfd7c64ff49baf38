"""Model files on the Hugging Face Hub: `hf://ORG/NAME[@REVISION][/FILE]` to a local file.

`model_file` is the one resolver every command that takes a model file goes through (translate,
serve, export, attention, average, gradflow, benchmark; `load_translator` and
`Translator.from_pretrained`): a local path comes back as it is; a Hub path is downloaded by
`huggingface_hub.hf_hub_download` into its cache (`HF_HOME`, `HF_HUB_CACHE`; `HF_HUB_OFFLINE=1`
reads the cache only; `HF_TOKEN` or `hf auth login` for private repositories), and the cached
file's path comes back. Without FILE the model is the file that the repository's `seq2seq.json`
names (`seq2seq push` writes it). REVISION is a branch, tag or commit (a `/` in it written `%2F`,
as in huggingface_hub's own `hf://` paths).

Every failure is one `HubError` line naming the repository (and the file): offline or
unreachable, no such repository, revision or file. `huggingface_hub` is imported only when a Hub
path is resolved, so local files (and ONNX models without torch) load as before.
"""

from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from ..errors import HubError

if TYPE_CHECKING:
    from collections.abc import Iterator

SCHEME = "hf://"
POINTER = "seq2seq.json"  # in a pushed repository: {"format": "seq2seq-hub", "model": FILE, ...}
POINTER_FORMAT = "seq2seq-hub"
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")  # a Hub user, organisation or repository name


@dataclass(frozen=True)
class HubPath:
    """A model on the Hub: a repository, a revision (None: main) and a file in it (None: seq2seq.json's)."""

    repo: str
    revision: str | None = None
    filename: str | None = None

    def __str__(self) -> str:
        at = f"@{quote(self.revision, safe='')}" if self.revision else ""
        return f"{SCHEME}{self.repo}{at}" + (f"/{self.filename}" if self.filename else "")


def is_hub_path(path: object) -> bool:
    return isinstance(path, str) and path[: len(SCHEME)].lower() == SCHEME  # a URL's scheme: any case


def parse_hub_path(text: str) -> HubPath:
    """`hf://ORG/NAME[@REVISION][/FILE]` (or `ORG/NAME...` without the scheme); else a HubError. FILE is a
    path inside the repository: no `.` or `..` segment, no empty one."""
    body = text[len(SCHEME) :] if is_hub_path(text) else text
    org, _, rest = body.partition("/")
    name_rev, _, filename = rest.partition("/")
    name, at, revision = name_rev.partition("@")
    if not (_PART.fullmatch(org) and _PART.fullmatch(name)) or (at and not revision):
        raise HubError(f"{text}: not a Hugging Face Hub model path: write hf://ORG/NAME[@REVISION][/FILE]")
    filename = filename.strip("/")
    if filename and any(part in ("", ".", "..") for part in filename.split("/")):
        raise HubError(f"{text}: FILE must be a path inside the repository, without '.', '..' or empty parts")
    return HubPath(f"{org}/{name}", unquote(revision) or None, filename or None)


def refuse_hub_output(out: object, command: str, advice: str = "a local file; upload it with seq2seq push") -> None:
    """An output path written `hf://...` (which a local write would turn into a folder named `hf:`): a HubError."""
    if is_hub_path(out):
        raise HubError(f"{out}: {command} writes {advice}")


def model_file(path: str | Path) -> Path:
    """The local file of a model path: `path` itself, or for `hf://...` the file downloaded into
    huggingface_hub's cache (`download`)."""
    return download(parse_hub_path(path)) if is_hub_path(path) else Path(path)


def pretrained_file(repo: str, revision: str | None = None, filename: str | None = None) -> Path:
    """The model file `Translator.from_pretrained` loads: from a Hub repository (`ORG/NAME` or an
    `hf://` path; `revision` and `filename` override the path's), or from a local folder laid out as
    one (the folder `seq2seq push --out` writes)."""
    if not is_hub_path(repo) and Path(repo).is_dir():
        return Path(repo) / (filename or _pointed(Path(repo) / POINTER, repo))
    where = parse_hub_path(repo)
    return download(HubPath(where.repo, revision or where.revision, filename or where.filename))


def download(where: HubPath) -> Path:
    """The model file of `where`, through huggingface_hub's cache (the file seq2seq.json names
    when `where` names none, fetched at the commit that seq2seq.json came from: a push between the
    two downloads cannot pair one push's pointer with another's model)."""
    if where.filename:
        return _fetch(where, where.filename)
    pointer = _fetch(where, POINTER, missing=_no_pointer(str(where)))
    return _fetch(HubPath(where.repo, _snapshot_commit(pointer) or where.revision), _pointed(pointer, str(where)))


_COMMIT = re.compile(r"[0-9a-f]{40}")


def _snapshot_commit(path: Path) -> str | None:
    """The commit of a file hf_hub_download returned: its cache path is `.../snapshots/COMMIT/FILE`
    (huggingface_hub's cache layout), so knowing it costs no request."""
    folder = path.parent
    return folder.name if folder.parent.name == "snapshots" and _COMMIT.fullmatch(folder.name) else None


def _no_pointer(where: str) -> str:
    return (f"{where}: no {POINTER} (which `seq2seq push` writes) to name the model file: name the file, "
            f"e.g. {where}/model.pt")  # fmt: skip


def _pointed(pointer: Path, where: str) -> str:
    """The model file a seq2seq.json names."""
    try:
        info = json.loads(pointer.read_text(encoding="utf-8"))
        model = info["model"] if info.get("format") == POINTER_FORMAT else None
    except FileNotFoundError:
        raise HubError(_no_pointer(where)) from None
    except (OSError, ValueError, AttributeError, KeyError, TypeError, RecursionError):
        model = None
    if not isinstance(model, str) or not model or model.startswith("/") or ".." in model.split("/"):
        raise HubError(f"{where}: {POINTER} does not name a model file (a {POINTER_FORMAT} 'model' entry)")
    return model


def _fetch(where: HubPath, filename: str, missing: str | None = None) -> Path:
    """`hf_hub_download` of one file of the repository; every failure one HubError naming repo and file
    (`missing`: the message when the repository does not hold the file)."""
    try:
        from huggingface_hub import constants, hf_hub_download
        from huggingface_hub import errors as hub
    except ImportError:
        raise HubError(f"{where}: models on the Hub need huggingface_hub: pip install huggingface_hub") from None
    repo = HubPath(where.repo, where.revision)  # named in messages with the file beside it
    # huggingface_hub 0.x: no RemoteEntryNotFoundError (its EntryNotFoundError is the remote one), and
    # LocalEntryNotFoundError (not in the cache, cannot download) is an EntryNotFoundError and an
    # HfHubHTTPError there: caught first, with the OSErrors it belongs to
    remote_missing = getattr(hub, "RemoteEntryNotFoundError", hub.EntryNotFoundError)
    try:
        with _quiet_retries():
            return Path(hf_hub_download(where.repo, filename, revision=where.revision))
    except (hub.LocalEntryNotFoundError, hub.OfflineModeIsEnabled) as err:
        raise HubError(_cannot_download(repo, filename, err, constants)) from None
    except remote_missing:
        raise HubError(missing or f"{repo}: the repository holds no file {filename!r}") from None
    except hub.RevisionNotFoundError:
        raise HubError(f"{repo}: the repository has no revision {where.revision!r}") from None
    except hub.GatedRepoError:
        raise HubError(f"{repo}: a gated repository: ask for access on its page, then log in "
                       "(hf auth login, or HF_TOKEN)") from None  # fmt: skip
    except hub.RepositoryNotFoundError:
        raise HubError(f"{repo}: no such model repository on the Hugging Face Hub (or a private one: "
                       "log in with hf auth login, or set HF_TOKEN)") from None  # fmt: skip
    except hub.HfHubHTTPError as err:
        raise HubError(f"{repo}: the Hugging Face Hub refused {filename}: {_first_line(err)}") from None
    except OSError as err:  # no connection, a full disk
        raise HubError(_cannot_download(repo, filename, err, constants)) from None
    except ValueError as err:  # a file name huggingface_hub refuses
        raise HubError(f"{repo}: cannot download {filename!r}: {_first_line(err)}") from None


@contextmanager
def _quiet_retries() -> Iterator[None]:
    """huggingface_hub retries an unreachable Hub five times (about 20 s), a warning line each: the
    failure is reported in one line (`_fetch`), so only its errors are shown meanwhile."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _cannot_download(repo: HubPath, filename: str, err: BaseException, constants: Any) -> str:
    return (f"{repo}: cannot download {filename} from the Hugging Face Hub ({constants.ENDPOINT}): "
            f"{_why(err, constants)}")  # fmt: skip


def _why(err: BaseException, constants: Any) -> str:
    cache = f"it is not in the local cache ({constants.HF_HUB_CACHE})"
    if getattr(constants, "is_offline_mode", lambda: constants.HF_HUB_OFFLINE)():  # huggingface_hub 0.x: the constant
        return f"offline mode is on (HF_HUB_OFFLINE=1) and {cache}"
    cause = err.__cause__ or err.__context__
    if isinstance(err, FileNotFoundError) and cause is not None:  # LocalEntryNotFoundError: cannot connect
        return f"cannot reach it ({_first_line(cause)}, retried) and {cache}"
    return _first_line(err)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
