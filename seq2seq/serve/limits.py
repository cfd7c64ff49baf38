"""`ServeLimits`: what one request may ask of `seq2seq serve`, and how its worker batches requests.
Light (no server, no torch), so that building the command line does not import the server."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

# The most each count may be set to: far beyond a sane server, so that a typo (--max-body-bytes 1e14, a request
# body read in one allocation; --max-connections 1e9, a thread each) is one line, not a server that can be felled.
LIMIT_BOUNDS = {
    "max_body_bytes": 1 << 30,
    "max_sentences": 100_000,
    "max_chars": 1_000_000,
    "max_beam_size": 1000,  # DecodeConfig's own bounds
    "max_n_best": 1000,
    "max_attention_sentences": 100_000,
    "max_attention_weights": 10**9,
    "max_output_len": 100_000,
    "max_batch": 100_000,
    "max_connections": 10_000,
}


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask of the server, and how the worker batches requests (flags: --max-body-bytes, ...)."""

    max_body_bytes: int = 1 << 20  # a larger request body: 413
    max_sentences: int = 256  # more sentences in one request: 413
    max_chars: int = 2000  # a longer sentence (characters): 413
    max_beam_size: int = 32  # a larger beam_size, the server's default or a request's: 400
    max_n_best: int = 8  # a larger n_best (hypotheses per sentence), the server's default or a request's: 400
    max_attention_sentences: int = 32  # more sentences in one request asking for "attention" matrices: 413
    max_attention_weights: int = 4_000_000  # attention matrices that could hold more weights (x ~12 bytes of JSON): 413
    max_output_len: int = 1024  # a request whose max_len_a x source pieces + max_len_b allows longer outputs: 400
    max_request_s: float = 60.0  # a request not answered within this many seconds: 503, and its translation stops
    max_batch: int = 256  # sentences the worker takes per round (a larger request is a round on its own)
    max_connections: int = 64  # open connections (one handler thread each); one more is answered 503 and closed
    batch_wait_ms: float = 0.0  # > 0: the worker waits this long for a round to fill before translating
    max_read_s: float = 30.0  # seconds to send a whole request (request line, headers, body: else 408), or to stay idle

    def __post_init__(self) -> None:
        for name, high in LIMIT_BOUNDS.items():
            if not 1 <= getattr(self, name) <= high:
                raise ConfigError(f"{name} must be in [1, {high:,}], got {getattr(self, name):,}")
        if not 0 <= self.batch_wait_ms <= 60_000:
            raise ConfigError(f"batch_wait_ms must be in [0, 60000], got {self.batch_wait_ms}")
        if not 0 < self.max_request_s <= 86_400:  # also refuses nan
            raise ConfigError(f"max_request_s must be in (0, 86400] seconds, got {self.max_request_s}")
        if not 0 < self.max_read_s <= 3600:
            raise ConfigError(f"max_read_s must be in (0, 3600] seconds, got {self.max_read_s}")
        if self.batch_wait_ms > 0 and self.max_batch == 1:  # a round is full with one job's first sentence
            raise ConfigError(f"batch_wait_ms {self.batch_wait_ms:g} would be ignored: with max_batch 1 every round "
                              "is full at once, nothing is waited for; leave it out or raise max_batch")  # fmt: skip
