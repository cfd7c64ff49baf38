"""The translation server behind `seq2seq serve` (docs/serving.md): its models, limits and batching.

`TranslationServer` holds the models, checks each request against the limits (`ServeLimits`) and
hands its sentences to the `Batcher` (batcher.py); `serve` is the command (load, listen, stop on
SIGTERM or SIGINT). The HTTP in front of it (routes, CORS, keep-alive, request parsing) is transport.py,
which this module imports, never the other way. One worker owns the translator: it takes every job
queued (up to `max_batch` sentences), groups the jobs by decode settings, translates each group in
one call and hands each job its slice. Only the worker touches the model (torch is not made
thread-safe by the server); in `serve` the worker is the main thread (torch ran a real model ~1.6x
faster there than from a background thread). Several models share that one worker (`--model
NAME=PATH` repeated): jobs are grouped by model too. The JSON itself: protocol.py.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TextIO

from ..config import ConfigError, DecodeConfig, refuse_ignored_decode
from ..config_dict import to_dict
from ..text import clean
from ..translation.base import decode_config
from .batcher import MAX_DEPTH, Batcher, RequestError
from .connections import HTTPServer, HTTPServer6
from .hosts import HOST_HEADER, check_hosts, check_origins, host_names
from .limits import ServeLimits
from .protocol import (
    hypotheses_reply,
    opennmt_reply,
    opennmt_request,
    parse_body,
    quoted,
    refusal,
    reply_options,
)
from .transport import Handler

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from ..translation.base import Translating

log = logging.getLogger("seq2seq")

DEFAULT_MODEL = "default"  # the name of the one model of `--checkpoint`


@dataclass(frozen=True)
class Task:
    """What the worker groups jobs by and translates them with: a model, decode settings, and what
    the reply needs beyond the best texts (`hypotheses`: the n-best with scores; `alignments`: also
    word alignments and attention, which keep the search's attention)."""

    model: str
    cfg: DecodeConfig
    hypotheses: bool = False
    alignments: bool = False


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def parse_models(specs: Sequence[str]) -> dict[str, str]:
    """`--model NAME=PATH` values as {name: path}, in order (the first is the default); a bad or
    repeated name is a ConfigError."""
    models: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not path or not MODEL_NAME.fullmatch(name):
            raise ConfigError(
                f"--model {spec!r}: give NAME=PATH, NAME of letters, digits, '.', '_', '-' (e.g. de-en=best.pt)"
            )
        if name in models:
            raise ConfigError(f"--model {name!r} is given twice")
        models[name] = path
    return models


class TranslationServer:
    """The HTTP server and its batching worker, bound at construction (`port=0`: a free port, see
    `url`); `start()` serves from background threads, `stop()` finishes in-flight requests and ends.

    `translator`: one model (named "default"), or {name: translator} for several, the first the
    default (`model`: the path or {name: path} that /health and /models show). One worker serves
    them all. `allow_origins`: the origins whose pages may call this server (CORS; "*": any).
    `allow_hosts`: the Host names answered besides this machine's own (`host_names`; "*": any)."""

    def __init__(
        self,
        translator: Translating | Mapping[str, Translating],
        decode_cfg: DecodeConfig | None = None,
        limits: ServeLimits | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str | Mapping[str, str] = "",
        allow_origins: Sequence[str] = (),
        allow_hosts: Sequence[str] = (),
    ) -> None:
        self.models = dict(translator) if isinstance(translator, Mapping) else {DEFAULT_MODEL: translator}
        if not self.models:
            raise ConfigError("no model to serve")
        self.default = next(iter(self.models))
        self.translator, self.decode_cfg = self.models[self.default], decode_cfg or DecodeConfig()
        self.paths = {name: (model.get(name, "") if isinstance(model, Mapping) else model) for name in self.models}
        self.limits, self.model = limits or ServeLimits(), self.paths[self.default]
        self.allow_origins, allowed = check_origins(allow_origins), check_hosts(allow_hosts)
        check_beam(to_dict(self.decode_cfg), self.limits, "the default ")
        check_output_len(self.decode_cfg, self.limits, 1, "the default ")
        for served in self.models.values():
            served.check(self.decode_cfg)
        self.described = {name: served.describe(self.decode_cfg) for name, served in self.models.items()}  # once
        # Up to MAX_DEPTH + 1 searches hold memory at once (a round runs inside another's search, batcher.py):
        # each search gets that share of the budget (the server's memory_budget_gb, or half of the RAM).
        self.search_budget_gb = self.decode_cfg.memory_budget() / (MAX_DEPTH + 1) / 1e9
        wait_s, budget_s = self.limits.batch_wait_ms / 1000, self.limits.max_request_s
        self.batcher = Batcher(self._translate, self.limits.max_batch, wait_s, budget_s)
        check_address(host, port)
        try:
            self.httpd = (HTTPServer6 if ":" in host else HTTPServer)((host, port), Handler, self)
        except OSError as err:  # a port in use, a host that names no address here: one line (exit status 1)
            raise OSError(err.errno, f"cannot listen on {host}:{port}: {err.strerror or err}") from None
        self.hosts = host_names(self.httpd.server_address[0], allowed)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    def start(self, worker: bool = True) -> TranslationServer:
        """Serve HTTP from a background thread, and translate in another one; with `worker=False`, call
        `run_worker()` in the thread that should translate (`serve` uses the main thread: torch's
        OpenMP threads run its small operations faster there, docs/serving.md)."""
        if worker:
            self.batcher.start()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="seq2seq-serve-http", daemon=True)
        self._thread.start()
        return self

    def run_worker(self) -> None:
        """The batching worker in this thread, until `stop()` (called from another thread)."""
        self.batcher.run()

    def stop(self) -> None:
        """Stop accepting, close the idle connections, finish the requests in flight, end the worker."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
        self.httpd.close_idle()
        self.batcher.hurry()
        self.httpd.server_close()  # joins the handler threads, which wait for their jobs
        self.batcher.stop()

    def __enter__(self) -> TranslationServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def health(self) -> dict[str, Any]:
        stats = {**self.batcher.stats, "pending_jobs": self.batcher.pending}
        return {"status": "ok", "model": self.model, **self.described[self.default], "models": list(self.models),
                "decode": self.decode(), "limits": to_dict(self.limits), "stats": stats}  # fmt: skip

    def decode(self) -> dict[str, Any]:
        return to_dict(self.decode_cfg)

    def list_models(self) -> dict[str, Any]:
        """GET /models: each model's name, path, engine, languages, device and precision; the default's name."""
        models = [{"name": name, "path": self.paths[name], **self.described[name]} for name in self.models]
        return {"models": models, "default": self.default}

    def cors_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin for a request from `origin` (None: no CORS header)."""
        if not self.allow_origins:
            return None
        if "*" in self.allow_origins:
            return "*"
        return origin if origin in self.allow_origins else None

    def cors_headers(self, allowed: str | None) -> dict[str, str]:
        """The CORS headers of every reply: Access-Control-Allow-Origin for an allowed origin (errors
        included), and `Vary: Origin` when the answer depends on it."""
        if not self.allow_origins:
            return {}
        headers = {} if "*" in self.allow_origins else {"Vary": "Origin"}
        if allowed is not None:
            headers["Access-Control-Allow-Origin"] = allowed
        return headers

    def check_host(self, values: list[str]) -> None:
        """A request's Host headers: none or an empty one (no name to rebind), or one naming this server
        (`hosts`, host_names); else a RequestError 421."""
        if self.hosts is None or not values:
            return
        value = values[0].strip(" \t")
        named = HOST_HEADER.fullmatch(value)
        if len(values) == 1 and (not value or (named and self.hosts.answers(named.group(1)))):
            return
        raise RequestError(421, f"Host {quoted(values[0])} is not a name of this server: it answers {self.hosts} "
                                "(--allow-host NAME adds one)")  # fmt: skip

    def check_length(self, length: int) -> None:
        if length > self.limits.max_body_bytes:
            limit = self.limits.max_body_bytes
            raise RequestError(413, f"body of {length} bytes is over the limit of {limit} bytes (--max-body-bytes)")

    def _translate(self, sentences: list[str], task: Task) -> list[Any]:
        """The worker's call for one group of jobs: best texts, n-best (text, hypothesis) pairs, or
        `Aligned` hypotheses, as `task` asks."""
        translator = self.models[task.model]
        # the reply holds every sentence's hypotheses (and with alignments their attention) until it is written:
        # the library would search a long list in parts but keep them all, so the whole group must fit as one
        translator.check_memory(sentences, task.cfg, keep_attention=task.alignments)
        if task.alignments:
            return translator.translate_aligned(sentences, task.cfg)
        if task.hypotheses:
            return translator.translate_nbest(sentences, task.cfg)
        return translator.translate(sentences, task.cfg)

    def _check_sentences(self, sentences: list[str], where: str, attention: bool = False) -> None:
        """413 for too many or too long sentences, 400 for a lone surrogate (`where`: "sentences[{}]"...)."""
        limits = self.limits
        if len(sentences) > limits.max_sentences:
            msg = f"{len(sentences)} sentences in one request: the limit is {limits.max_sentences} (--max-sentences)"
            raise RequestError(413, msg)
        if attention and len(sentences) > limits.max_attention_sentences:
            limit = f"{limits.max_attention_sentences} (--max-attention-sentences)"
            raise RequestError(413, f"{len(sentences)} sentences with attention in one request: the limit is {limit}")
        for i, sentence in enumerate(sentences):
            if len(sentence) > limits.max_chars:
                msg = f"{where.format(i)} has {len(sentence)} characters: the limit is {limits.max_chars} (--max-chars)"
                raise RequestError(413, msg)
            if not sentence.isascii():
                try:
                    sentence.encode("utf-8")
                except UnicodeEncodeError:  # "\ud800" is valid JSON but no text: the tokenizer would fail
                    raise RequestError(400, f"{where.format(i)} holds a lone surrogate (not Unicode text)") from None

    def _decode_config(
        self, name: str, sentences: list[str], options: dict[str, Any], attention: bool = False, scores: bool = True
    ) -> DecodeConfig:
        """The request's decode settings over the server's, checked against the limits and the model: 400;
        with `attention` (the reply sends each hypothesis's matrix), matrices that could hold more than
        `max_attention_weights` weights: 413. `scores`: the reply shows hypotheses' scores (else a
        length_penalty with greedy search, which changes only them, is refused). The memory the search keeps
        (n-best lists, with attention for alignments) is the search's own check against the budget: 400."""
        translator = self.models[name]
        try:
            cfg = self._request_config(options, scores)
            translator.check(cfg)
            live = [text for text in map(clean, sentences) if text]  # as translate_nbest tokenizes them
            src_pieces = max(map(len, translator.src_tok.encode(live)), default=0) if live else 0
            check_output_len(cfg, self.limits, src_pieces)
        except (ConfigError, TypeError) as err:  # unknown option, wrong type, bad value, what this engine cannot run
            raise RequestError(400, refusal(err)) from None  # each value it echoes as JSON, clipped
        if attention:
            self._check_attention(cfg, len(sentences), src_pieces)
        return cfg

    def _request_config(self, options: dict[str, Any], scores: bool) -> DecodeConfig:
        """The request's `options` over the server's decode settings: a ConfigError (or TypeError) for one this
        server bounds, a value out of range, or one the search or the reply would ignore (`scores`: _decode_config)."""
        if "memory_budget_gb" in options:  # a bound of the server's, not a client's to raise
            raise ConfigError("memory_budget_gb is this server's setting (--memory-budget-gb), not a request's")
        check_beam(options, self.limits)  # the server's limits first: a beam of 5000 names --max-beam-size
        cfg = replace(decode_config(self.decode_cfg, options), memory_budget_gb=self.search_budget_gb)
        unshown = 'this reply shows none (ask for "scores": true)'
        refuse_ignored_decode({**options, "beam_size": cfg.beam_size, "n_best": cfg.n_best}, scores, options, unshown)
        return cfg

    def _check_attention(self, cfg: DecodeConfig, sentences: int, src_pieces: int) -> None:
        """413 for a reply's attention matrices that could hold more than `max_attention_weights` weights: each
        hypothesis's is (output pieces, source pieces), EOS included on both. Not for alignments: their reply
        sends no matrix, and what their search keeps is counted against the memory budget (search_budget)."""
        src = min(src_pieces, cfg.max_src_len) + 1
        weights = sentences * cfg.n_best * int(cfg.max_len_a * src + cfg.max_len_b) * src
        limit = self.limits.max_attention_weights
        if weights > limit:
            what = f"attention for {sentences} sentences x n_best {cfg.n_best} could hold {weights:,} attention weights"
            raise RequestError(413, f"{what} (up to {src} source pieces, max_len_a and max_len_b): the limit is "
                                    f"{limit:,} (--max-attention-weights)")  # fmt: skip

    def translate_body(self, body: bytes, gone: Callable[[], bool] | None = None) -> dict[str, Any]:
        """A /translate body's reply: `{"translations": [...]}` in order, and `"hypotheses"` when the
        request asks for n-best, scores, alignments or attention (docs/serving.md); a request the server
        refuses raises RequestError (503: not done within the time budget), one whose client has gone
        (`gone()`) ClientGone."""
        sentences, options = parse_body(body)
        name, wanted = reply_options(options)
        name = name if name is not None else self.default
        if name not in self.models:
            raise RequestError(400, f"no model {quoted(name)} on this server: it serves {', '.join(self.models)} "
                                    "(GET /models)")  # fmt: skip
        self._check_sentences(sentences, "sentences[{}]", wanted["attention"])
        cfg = self._decode_config(name, sentences, options, wanted["attention"], any(wanted.values()))
        task = Task(name, cfg, cfg.n_best > 1 or any(wanted.values()), wanted["alignments"] or wanted["attention"])
        found = self.batcher.submit(sentences, task, gone) if sentences else []
        if not task.hypotheses:
            return {"translations": found}
        return {"translations": [hyps[0][0] if hyps else "" for hyps in found],
                "hypotheses": [hypotheses_reply(hyps, wanted) for hyps in found]}  # fmt: skip

    def translate_opennmt(self, body: bytes, gone: Callable[[], bool] | None = None) -> list[list[dict]]:
        """OpenNMT-py's POST /translator/translate: `[{"src": ..., "id": ...}]` in, its reply out
        (protocol.py); `id` names the model (none: the default), the n-best is the server's default."""
        sentences, model_id = opennmt_request(body)
        if model_id is not None and model_id not in self.models:
            served = ", ".join(self.models)
            hint = f"--model {model_id}=PATH" if MODEL_NAME.fullmatch(model_id) and len(model_id) <= 40 else \
                "--model NAME=PATH, NAME of letters, digits, '.', '_', '-'"  # fmt: skip
            raise RequestError(400, f"No such model {quoted(model_id)}: this server serves {served} (name a model "
                                    f"by the id your clients send: {hint})")  # fmt: skip
        name = model_id if model_id is not None else self.default
        self._check_sentences(sentences, '[{}]["src"]')
        cfg = self._decode_config(name, sentences, {})
        found = self.batcher.submit(sentences, Task(name, cfg, hypotheses=True), gone) if sentences else []
        return opennmt_reply(sentences, found, cfg.n_best)


def check_address(host: str, port: int) -> None:
    """The address to listen on: an empty host (every interface, unsaid) or a port out of range is a ConfigError."""
    if not host:
        raise ConfigError("--host '' names no address: give one (127.0.0.1: this machine; 0.0.0.0: every interface)")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in [0, 65535], got {port}")


def check_beam(values: Mapping[str, Any], limits: ServeLimits, what: str = "") -> None:
    """A beam_size in `values` (a config's fields, or a request's options as sent: before DecodeConfig's
    own, wider bounds) over `limits.max_beam_size`, or an n_best over `limits.max_n_best`, is a
    ConfigError (`what`: "" or "the default "); a value of another type is left to DecodeConfig."""
    for name, limit in (("beam_size", limits.max_beam_size), ("n_best", limits.max_n_best)):
        value = values.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            flag = f"--max-{name.replace('_', '-')}"
            raise ConfigError(f"{what}{name} {value} is over this server's limit of {limit} ({flag})")


def check_output_len(cfg: DecodeConfig, limits: ServeLimits, src_pieces: int, what: str = "") -> None:
    """Outputs longer than `limits.max_output_len` pieces allowed for the longest source (`src_pieces`
    pieces, truncated to max_src_len, EOS added: what the search allows) are a ConfigError."""
    src = min(src_pieces, cfg.max_src_len) + 1
    limit = limits.max_output_len
    if cfg.max_len_b > limit or cfg.max_len_a * src + cfg.max_len_b > limit:  # b first: no int-to-float overflow
        allowed = f"max_len_a {cfg.max_len_a:g} x {src} source pieces + max_len_b {cfg.max_len_b}"
        raise ConfigError(f"{what}{allowed} allows outputs over this server's limit of {limit} (--max-output-len)")


def serve(
    checkpoint: str | Path | Mapping[str, str | Path],
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "cpu",
    decode_cfg: DecodeConfig | None = None,
    limits: ServeLimits | None = None,
    out: TextIO | None = None,
    allow_origins: Sequence[str] = (),
    allow_hosts: Sequence[str] = (),
) -> None:
    """`seq2seq serve`: load the model (a path), or the models ({name: path}, the first the default),
    listen, print `serving CKPT on http://HOST:PORT` (`serving NAME=PATH ... on ...`), serve until
    SIGTERM or SIGINT, finish the requests in flight, print `stopped`. A second signal exits at once."""
    from ..translation import load_translator

    out = out or sys.stdout
    decode_cfg, limits = decode_cfg or DecodeConfig(), limits or ServeLimits()
    check_address(host, port)  # before the models load
    check_beam(to_dict(decode_cfg), limits, "the default ")
    check_output_len(decode_cfg, limits, 1, "the default ")
    check_origins(allow_origins), check_hosts(allow_hosts)
    several = isinstance(checkpoint, Mapping)
    paths = {name: str(path) for name, path in checkpoint.items()} if several else {DEFAULT_MODEL: str(checkpoint)}
    if not paths:
        raise ConfigError("no model to serve")
    translators = {name: load_translator(path, device, decode_cfg) for name, path in paths.items()}
    server = TranslationServer(translators, decode_cfg, limits, host, port, paths, allow_origins, allow_hosts)
    stopper = threading.Thread(target=server.stop, name="seq2seq-serve-stop")  # the first signal starts it

    def on_signal(signum: int, frame: Any) -> None:
        if stopper.ident is not None:
            log.warning("second %s: exiting without finishing", signal.Signals(signum).name)
            os._exit(1)
        log.info("%s: stopping; requests in flight: %d", signal.Signals(signum).name, server.batcher.pending)
        stopper.start()

    server.start(worker=False)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for name, described in server.described.items():
            log.info("model %s: %s", name, ", ".join(f"{key} {value}" for key, value in described.items()))
        serving = " ".join(f"{name}={path}" for name, path in paths.items()) if several else str(checkpoint)
        print(f"serving {serving} on {server.url}", file=out, flush=True)
        server.run_worker()  # the main thread translates until the stopper has stopped the server
    finally:
        if stopper.ident is None:  # the worker failed (no signal): finish the requests in flight from a thread
            server.batcher.start()
            server.stop()
        else:
            stopper.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped", file=out, flush=True)
