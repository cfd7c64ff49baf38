"""A local stand-in for the Hugging Face Hub's file endpoint, to check `hf://` models without the Hub.

It serves local folders (such as the one `seq2seq push --out DIR` writes) as model repositories at
one commit each, answering `HEAD` and `GET /ORG/NAME/resolve/REVISION/FILE` with the headers
`huggingface_hub.hf_hub_download` reads (X-Repo-Commit, ETag, Content-Length) and the Hub's error
codes (RepoNotFound, RevisionNotFound, EntryNotFound). Pointed at it with `HF_ENDPOINT`, seq2seq
downloads through huggingface_hub's own code and cache, as from the Hub (tests/test_hub.py;
docs/hub.md). Uploads are not served.

    python -m seq2seq.devtools.hub_standin --repo me/tiny=checkpoints/hub-tiny --port 8765
    HF_ENDPOINT=http://127.0.0.1:8765 seq2seq translate --checkpoint hf://me/tiny
"""

from __future__ import annotations

import argparse
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


def commit_of(folder: Path) -> str:
    """A 40-hex commit id for the folder's files (names and bytes): another content, another commit."""
    digest = hashlib.sha1()  # noqa: S324  (an id, as git's, not a security measure)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class HubStandIn:
    """Serve `repos` ({"ORG/NAME": folder}) on 127.0.0.1 (port 0: a free one); `url` is the HF_ENDPOINT.
    `requests` lists the paths asked for, in order. A context manager: stopped on exit."""

    def __init__(self, repos: dict[str, str | Path], port: int = 0) -> None:
        self.repos = {repo: Path(folder) for repo, folder in repos.items()}
        self.commits = {repo: commit_of(folder) for repo, folder in self.repos.items()}
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="hub-standin", daemon=True)

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str) -> tuple[int, dict[str, str], Path | None]:
        """(status, headers, file) for a request path."""
        parts = [unquote(p) for p in urlsplit(path).path.strip("/").split("/")]
        if len(parts) < 5 or parts[2] != "resolve":
            return 404, {}, None
        repo, revision, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        if repo not in self.repos:  # the Hub answers 401 for a missing (or private) repository
            return 401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, None
        commit = self.commits[repo]
        if revision not in ("main", commit):
            return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, None
        file = self.repos[repo] / name
        if not file.is_file() or ".." in name.split("/"):
            return 404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                         "X-Repo-Commit": commit}, None  # fmt: skip
        etag = hashlib.sha256(file.read_bytes()).hexdigest()
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Content-Length": str(file.stat().st_size),
                   "Content-Type": "application/octet-stream"}  # fmt: skip
        return 200, headers, file

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, body: bool) -> None:
                standin.requests.append(f"{self.command} {self.path}")
                status, headers, file = standin.answer(self.path)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if file is None:
                    self.send_header("Content-Length", "0")
                self.end_headers()
                if body and file is not None:
                    self.wfile.write(file.read_bytes())

            def do_HEAD(self) -> None:  # noqa: N802
                self._reply(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._reply(body=True)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m seq2seq.devtools.hub_standin", description=__doc__.splitlines()[0])
    p.add_argument("--repo", action="append", required=True, metavar="ORG/NAME=FOLDER", help="a repository to serve")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default: 8765; 0: a free one)")
    args = p.parse_args(argv)
    repos = dict(item.split("=", 1) for item in args.repo)
    try:
        standin = HubStandIn(repos, args.port)
    except OSError as err:
        raise SystemExit(f"hub_standin: cannot listen on 127.0.0.1:{args.port}: {err.strerror}") from None
    with standin:
        for repo, commit in standin.commits.items():
            print(f"serving {repo} ({repos[repo]}, commit {commit[:12]}) on {standin.url}: HF_ENDPOINT={standin.url}",
                  flush=True)  # fmt: skip
        try:
            standin.thread.join()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
