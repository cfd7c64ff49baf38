"""Serving translations over HTTP: `seq2seq serve` (docs/serving.md).

- limits.py: `ServeLimits`, what one request may ask of the server (light: the command line builds
  its flags from it without importing the server);
- server.py: `TranslationServer` (in-process: start/stop, for tests and embedding) and `serve` (the
  command: load, listen, stop on SIGTERM/SIGINT); import them from `seq2seq.serve.server`;
- transport.py: the HTTP transport in front of the server (routes, CORS, keep-alive, request parsing);
- hosts.py: the Host names and origins a server answers (`--allow-host`, `--allow-origin`; DNS rebinding);
- connections.py: the listening server (a thread per connection, their limit, closing them on stop);
- batcher.py: the worker that batches the requests and owns the translator;
- page.py: the page at `/` (its HTML, JavaScript and CSS in static/, shipped in the package).

This file re-exports `ServeLimits` and imports nothing else: never the server (no import cycle).
"""

from .limits import ServeLimits

__all__ = ["ServeLimits"]
