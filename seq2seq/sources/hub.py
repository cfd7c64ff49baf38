"""`seq2seq push`: a model file and a generated model card to a Hugging Face Hub model repository.

The repository gets the model (`model.pt`, or `model.onnx.zip` / `model.int8.onnx.zip` for an
exported ONNX model), `README.md` (the model card, card.py: Hub metadata, then what is known of
the model), `seq2seq.json` (names the model file: `hf://ORG/NAME` loads it, translation/hub.py)
and, where the settings are known, `config.toml` (`seq2seq train --config config.toml ...` trains
it again).

`--out DIR` writes the very files that are uploaded, the folder whole (staged beside it, then swapped
in: an earlier push's folder is replaced, none of its files left); `--dry-run` uploads nothing (and
refuses the flags of an upload). The upload uses huggingface_hub (`HfApi.create_repo`,
`create_commit`) with its usual token (`HF_TOKEN`, or `hf auth login`); its commit deletes the files
of an earlier push that this one does not write (an earlier model file, its config.toml).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat as stat_
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ConfigError, DataConfig, ModelConfig, TrainConfig
from ..config_dict import from_dict
from ..config_toml import toml_text
from ..errors import CheckpointError, CorpusError, HubError, OutputError
from ..translation.hub import POINTER, POINTER_FORMAT, SCHEME, model_file, parse_hub_path, refuse_hub_output
from .card import CardOptions, model_card, read_scores
from .facts import ModelFacts, add_run_facts, read_facts

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass(frozen=True)
class UploadOptions:
    """Where and how the files go to the Hub."""

    private: bool = False  # a new repository is private (an existing one keeps its visibility)
    revision: str | None = None  # the branch (None: main); created from main if missing
    commit_message: str | None = None


# ---------------------------------------------------------------------------------------------- push

# Every file `stage` may write: a folder (or repository) holding seq2seq.json was written by push, and
# these are its files; the first four may be left over from an earlier push of another model file.
MODEL_FILES = ("model.pt", "model.onnx.zip", "model.int8.onnx.zip")
PUSH_FILES = (*MODEL_FILES, "config.toml", "README.md", POINTER)


def _config_toml(facts: ModelFacts, model: Path) -> str | None:
    """The settings as `seq2seq train --config` reads them: a checkpoint's own, else the run's config.toml."""
    if facts.configs is None:
        return facts.run.get("config")
    try:
        tables = {name: from_dict(cls, facts.configs[name])
                  for name, cls in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig))}  # fmt: skip
    except ConfigError:  # written by another seq2seq version
        return facts.run.get("config")
    return toml_text(tables, f"The settings {model.name} was trained with (seq2seq push).")


@contextlib.contextmanager
def _snapshot_folder(model: str | Path) -> Iterator[Path]:
    """A temporary folder for `stage`'s snapshot: beside the model file where that folder is writable (the
    same file system: a hard link, no copy of a model of gigabytes into a small /tmp), else the system's."""
    try:
        holder = tempfile.TemporaryDirectory(prefix=".seq2seq-push-", dir=model_file(model).parent)
    except OSError:
        holder = tempfile.TemporaryDirectory(prefix="seq2seq-push-")
    with holder as folder:
        yield Path(folder)


def _version(files: dict[str, Path | bytes]) -> tuple[int, int]:
    """(size, modification time) of the staged model file."""
    st = next(v for v in files.values() if isinstance(v, Path)).stat()
    return st.st_size, st.st_mtime_ns


def _unchanged(files: dict[str, Path | bytes], read_as: tuple[int, int], model: str | Path, what: str) -> None:
    """The snapshot (a hard link) must be as `stage` read it: a model file written over in place (`cp` onto
    it, where training replaces its files by a rename) changes the link's bytes too. A HubError if it did."""
    if _version(files) != read_as:
        raise HubError(f"{model}: written over while push read it, so {what} may hold parts of two versions; "
                       "push again once it is written")  # fmt: skip


def stage(model: str | Path, repo: str, card: CardOptions = CardOptions(),
          snapshot: Path | None = None) -> dict[str, Path | bytes]:  # fmt: skip
    """The repository's files, name -> the local model file or the bytes of a generated one.

    `snapshot`: a folder to take the model file into first, as a hard link where it is on the model's file
    system (no copy: checkpoints are replaced by a rename, so the link keeps this version's bytes), else a
    copy; the facts, the card's SHA-256 and size, and the file uploaded are then all of that one version
    (a training process replacing best.pt meanwhile changes none of them). Without it, the file is read
    where it is."""
    model = model_file(model)  # hf://ORG/NAME too: downloaded (translation/hub.py)
    if not model.is_file():
        raise HubError(f"{model}: no such model file")
    copy = model
    if snapshot is not None:
        copy = snapshot / model.name
        try:
            os.link(model, copy)
        except OSError:  # another file system, or no hard links there
            try:
                shutil.copyfile(model, copy)
            except OSError as err:
                raise HubError(f"{model}: cannot copy it to {snapshot} to push one version of it "
                               f"({err.strerror or err})") from None  # fmt: skip
    read_as = (copy.stat().st_size, copy.stat().st_mtime_ns)
    facts = _read_facts(copy, model)
    add_run_facts(facts, model, card.run)
    scores = read_scores(card.bleu_files)
    config = _config_toml(facts, model)
    digest = hashlib.sha256()
    with open(copy, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    pointer = {"format": POINTER_FORMAT, "version": 1, "model": facts.filename, "kind": facts.kind,
               "src_lang": facts.src_lang, "tgt_lang": facts.tgt_lang}  # fmt: skip
    readme = model_card(repo, facts, scores, card, digest.hexdigest(), copy.stat().st_size, config is not None)
    files: dict[str, Path | bytes] = {facts.filename: copy, "README.md": readme.encode(),
                                      POINTER: (json.dumps(pointer, indent=1) + "\n").encode()}  # fmt: skip
    if config is not None:
        files["config.toml"] = config.encode()
    if snapshot is not None:
        _unchanged(files, read_as, model, "the card")
    return files


def _read_facts(copy: Path, model: Path) -> ModelFacts:
    """`read_facts` of the snapshot `copy`, its errors naming `model` (the file the user named)."""
    try:
        return read_facts(copy)
    except (CheckpointError, ConfigError, CorpusError, HubError, OutputError) as err:
        if copy == model or str(copy) not in str(err):
            raise
        raise type(err)(str(err).replace(str(copy), str(model))) from None


def check_out(out: str | Path) -> Path:
    """`--out`: a new or empty folder, or one an earlier push wrote holding nothing else (it is replaced
    whole: a file push does not write would be lost); else a HubError, before any work."""
    out = Path(out)
    if not out.exists():
        return out
    if not out.is_dir():
        raise HubError(f"--out {out}: not a folder")
    present = sorted(p.name for p in out.iterdir())
    if present and POINTER not in present:
        raise HubError(f"--out {out}: not a new or empty folder (nor one `seq2seq push --out` wrote)")
    if foreign := [name for name in present if name not in PUSH_FILES]:
        raise HubError(f"--out {out}: holds {foreign[0]}, which `seq2seq push` does not write, and the folder is "
                       "replaced whole: move it out, or name another folder")  # fmt: skip
    return out


def write_folder(files: dict[str, Path | bytes], out: str | Path) -> Path:
    """The staged files as the folder `out` (`check_out`), written whole: into `.NAME.push-PID` beside it,
    each file synced, then swapped in by renames. An interruption leaves the earlier folder as it was
    (or none), never a mix of two pushes; no file of an earlier push stays (model.pt beside a new
    model.onnx.zip, its config.toml). A link to a folder is kept: its target is replaced."""
    out = check_out(out)
    target = Path(os.path.realpath(out))
    stage, old = (target.with_name(f".{target.name}.{what}-{os.getpid()}") for what in ("push", "old"))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        for name, content in files.items():
            with open(stage / name, "wb") as f:
                if isinstance(content, Path):
                    with open(content, "rb") as src:
                        shutil.copyfileobj(src, f, 1 << 20)
                else:
                    f.write(content)
                f.flush()
                os.fsync(f.fileno())
        if target.exists():
            os.chmod(stage, stat_.S_IMODE(target.stat().st_mode))  # the folder's permissions kept
            os.replace(target, old)
        os.replace(stage, target)
        _sync_folder(target.parent)
    except OSError as err:
        if old.exists() and not target.exists():
            os.replace(old, target)  # the earlier folder back
        raise HubError(f"--out {out}: cannot write it ({err.strerror or err}"
                       f"{': ' + str(err.filename) if err.filename else ''})") from None  # fmt: skip
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _repo_id(repo: str) -> str:
    where = parse_hub_path(repo)
    if where.revision or where.filename:
        raise HubError(f"--repo {repo}: name the repository only, ORG/NAME (a branch: --revision)")
    return where.repo


def check_token(repo: str) -> None:
    """A HubError unless huggingface_hub has a token (HF_TOKEN, or `hf auth login`)."""
    from huggingface_hub import get_token

    if get_token() is None:
        raise HubError(f"{SCHEME}{repo}: no Hugging Face token: log in with `hf auth login` or set HF_TOKEN "
                       "(--dry-run --out DIR writes the files without uploading)")  # fmt: skip


def upload(
    files: dict[str, Path | bytes], repo: str, options: UploadOptions = UploadOptions()
) -> tuple[str, list[str]]:
    """Create the repository if missing (and the branch), then commit the files in one commit, which
    deletes the files of an earlier push (the repository holds seq2seq.json) that this push does not
    write: its model file of another kind, its config.toml (earlier commits keep them). The commit's URL,
    and the files deleted."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    where = f"{SCHEME}{repo}"
    check_token(repo)
    api = HfApi()
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=content if isinstance(content, bytes)
                                     else str(content)) for name, content in files.items()]  # fmt: skip
    message = options.commit_message or f"seq2seq push: {next(iter(files))}"
    try:
        api.create_repo(repo, private=options.private, exist_ok=True)
        if options.revision:
            api.create_branch(repo, branch=options.revision, exist_ok=True)
        present = set(api.list_repo_files(repo, revision=options.revision))
        stale = sorted(present & set(PUSH_FILES) - set(files)) if POINTER in present else []
        operations += [CommitOperationDelete(path_in_repo=name) for name in stale]
        info = api.create_commit(repo, operations, commit_message=message, revision=options.revision)
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise HubError(f"{where}: cannot upload to the Hugging Face Hub: {_first_line(err)}") from None
    except Exception as err:  # httpx2's connection errors (no OSError)  # noqa: BLE001
        if type(err).__module__.split(".")[0] != "httpx2":
            raise
        raise HubError(f"{where}: cannot reach the Hugging Face Hub: {_first_line(err)}") from None
    return str(info.commit_url), stale


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def push(
    model: str | Path,
    repo: str,
    out: str | Path | None = None,
    card: CardOptions = CardOptions(),
    options: UploadOptions = UploadOptions(),
    dry_run: bool = False,
) -> str:
    """`seq2seq push`: stage the files (`stage`), write them to `out` if given, upload them unless
    `dry_run`; a line saying what was done (with `dry_run` and no `out`: the model card too)."""
    repo = _repo_id(repo)
    if dry_run and (upload_flags := _upload_flags(options)):
        these = ("they apply", "them") if len(upload_flags) > 1 else ("it applies", "it")
        raise HubError(f"{', '.join(upload_flags)}: {these[0]} to an upload, and --dry-run uploads nothing: leave "
                       f"{these[1]} out, or drop --dry-run")  # fmt: skip
    if out is not None:
        refuse_hub_output(out, "push --out", "a local folder (what it would upload); the repository is --repo")
        check_out(out)  # before any work
    if not dry_run:
        check_token(repo)
    with _snapshot_folder(model) as snapshot:
        files = stage(model, repo, card, snapshot)  # one version of the model file: read, digested, uploaded
        read_as, names = _version(files), ", ".join(files)
        done = []
        if out is not None:
            done.append(f"wrote {names} to {write_folder(files, out)}")
            _unchanged(files, read_as, model, "the folder written")
        if dry_run:
            card_text = files["README.md"]
            readme = "" if out is not None or isinstance(card_text, Path) else "\n" + card_text.decode()
            return "; ".join([*done, f"nothing uploaded (--dry-run): {SCHEME}{repo} would get {names}"]) + readme
        url, stale = upload(files, repo, options)
        _unchanged(files, read_as, model, "the upload")
    removed = f"; removed {', '.join(stale)} of the earlier push" if stale else ""
    return "; ".join([*done, f"uploaded {names} to {SCHEME}{repo} ({url}){removed}"])


def _upload_flags(options: UploadOptions) -> list[str]:
    """The flags given that only an upload uses."""
    given = (("--private", options.private), ("--revision", options.revision is not None),
             ("--commit-message", options.commit_message is not None))  # fmt: skip
    return [flag for flag, on in given if on]
