"""The page at `/` of `seq2seq serve` (docs/serving.md): served from the package with the right
Content-Type and a Content-Security-Policy that allows only this server; every file it references
is served; nothing is loaded from elsewhere and no inline script or style attribute exists (the
policy would block them); the package build ships the files. The page in a real browser:
scripts/browser_check.sh (chromium, not part of the suite)."""

from __future__ import annotations

import http.client
import json
import re
import sys
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from seq2seq.serve.page import PAGE_ROUTES
from seq2seq.serve.server import TranslationServer
from seq2seq.translation.torch_engine import Translator

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "seq2seq/serve/static"


@pytest.fixture(scope="module")
def server(run_dir: Path):
    with TranslationServer(Translator.from_checkpoint(run_dir / "best.pt"), port=0) as running:
        yield running


def _get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, parts.path or "/")
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def test_the_page_and_every_file_it_references_are_served_with_their_content_type(server) -> None:
    status, headers, body = _get(server.url + "/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    html = body.decode("utf-8")
    assert "<title>" in html and 'id="translate"' in html
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    local = [ref for ref in refs if not ref.startswith("data:")]
    assert sorted(local) == ["static/app.js", "static/style.css"]
    types = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
    for ref in local:
        status, got, body = _get(urljoin(server.url + "/", ref))
        assert status == 200 and got["content-type"] == types[ref.rsplit("/", 1)[-1]], ref
        assert body == (STATIC / ref.rsplit("/", 1)[-1]).read_bytes()


def test_the_policy_allows_only_this_server(server) -> None:
    for path in PAGE_ROUTES:
        _, headers, _ = _get(server.url + path)
        policy = dict(rule.strip().split(" ", 1) for rule in headers["content-security-policy"].split(";"))
        assert policy["default-src"] == "'none'"
        for kind in ("script-src", "style-src", "connect-src"):
            assert policy[kind] == "'self'", kind
        assert headers["x-content-type-options"] == "nosniff"


def test_nothing_is_loaded_from_elsewhere_and_nothing_inline_needs_the_policy_relaxed() -> None:
    html = (STATIC / "index.html").read_text()
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|@import|url\(", text), name  # no CDN, no fonts
    assert re.findall(r"<script[^>]*>(.*?)</script>", html, re.S) == [""]  # one script, from a file
    assert not re.search(r"\sstyle=|\son[a-z]+=", html)  # no inline style or handler
    app = (STATIC / "app.js").read_text()
    assert "innerHTML" not in app and "eval(" not in app  # text from the server goes in as text
    missing = set(re.findall(r'\$\("([\w-]+)"\)', app)) - set(re.findall(r'\sid="([\w-]+)"', html))
    assert not missing, f"app.js uses element ids the page lacks: {missing}"


def _post(url: str, body: dict) -> tuple[int, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("POST", "/translate", json.dumps(body), {"Content-Type": "application/json"})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


# What app.js sends and what it reads from /health and /translate (docs/serving.md): the contract the page needs.
PAGE_SENDS = ("sentences", "beam_size", "n_best", "scores", "alignments", "attention", "model")
PAGE_READS = ("hypotheses", "text", "score", "alignment", "src_pieces", "tgt_pieces", "weights", "src_words",
              "tgt_words", "src_word_of_piece", "tgt_word_of_piece", "max_beam_size", "max_n_best",
              "max_attention_sentences", "models", "default")  # fmt: skip


def test_the_request_the_page_sends_gets_every_field_the_page_draws(server) -> None:
    app = (STATIC / "app.js").read_text()
    for key in (*PAGE_SENDS, *PAGE_READS):
        assert re.search(rf"\b{key}\b", app), f"app.js no longer uses {key!r}"
    body = {"sentences": ["red cat", "big old dog"], "beam_size": 3, "n_best": 2, "scores": True,
            "alignments": True, "attention": True}  # fmt: skip
    status, reply = _post(server.url, body)
    assert status == 200, reply
    assert len(reply["translations"]) == len(reply["hypotheses"]) == 2
    for best, hypotheses in zip(reply["translations"], reply["hypotheses"]):
        assert 1 <= len(hypotheses) <= 2 and hypotheses[0]["text"] == best
        for hyp in hypotheses:
            assert isinstance(hyp["score"], float) and re.fullmatch(r"(\d+-\d+( |$))*", hyp["alignment"])
            att = hyp["attention"]
            assert att["src_pieces"][-1] == att["tgt_pieces"][-1] == "</s>"
            assert [len(row) for row in att["weights"]] == [len(att["src_pieces"])] * len(att["tgt_pieces"])
            assert len(att["src_word_of_piece"]) == len(att["src_pieces"]) and att["src_word_of_piece"][-1] is None
            assert len(att["tgt_word_of_piece"]) == len(att["tgt_pieces"]) and att["tgt_word_of_piece"][-1] is None
            for pair in hyp["alignment"].split():  # the alignment's words are the attention's words
                i, j = map(int, pair.split("-"))
                assert i < len(att["src_words"]) and j < len(att["tgt_words"])
    limits = json.loads(_get(server.url + "/health")[2])["limits"]
    assert {"max_beam_size", "max_n_best", "max_attention_sentences"} <= set(limits)


def test_other_methods_and_paths_are_refused_in_json(server) -> None:
    status, headers, body = _get(server.url + "/", "POST")
    assert status == 405 and headers["allow"] == "GET, HEAD" and body.startswith(b'{"error": ')
    status, headers, body = _get(server.url + "/static/nope.js")
    assert status == 404 and headers["content-type"].startswith("application/json")


def test_the_package_build_ships_the_page() -> None:
    with open(ROOT / "pyproject.toml", "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["seq2seq.serve"]
    shipped = {p.name for pattern in patterns for p in (ROOT / "seq2seq/serve").glob(pattern)}
    assert shipped == {p.name for p in STATIC.iterdir()} == {"index.html", "app.js", "style.css"}
