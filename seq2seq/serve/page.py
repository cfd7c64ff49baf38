"""The page at `/` (docs/serving.md): static HTML, JavaScript and CSS shipped in the package
(seq2seq/serve/static/), served as they are: no build step, nothing loaded from elsewhere. The
page calls the same JSON API as any client. Its Content-Security-Policy allows only this server
(scripts, styles, fetch), so the page runs no inline script and no other site's code.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
PAGE_ROUTES = dict.fromkeys(_FILES, "GET")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # a new version of the server never runs an old app.js
}


@cache
def page_file(path: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one of the page's files (`path` in PAGE_ROUTES), read once from the package."""
    name, content_type = _FILES[path]
    body = (resources.files(__package__) / "static" / name).read_bytes()
    return body, {"Content-Type": content_type, **HEADERS}
