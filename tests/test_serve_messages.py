"""What `seq2seq serve` says when it refuses a body (docs/serving.md, "Errors"): a key given twice is
named, not silently the last; `"model": null` is not the default model; and a value the client sent
is echoed as JSON (no Python repr: `true`, not `True`), clipped to 40 characters and "…", never in
full (a 5,000-character option, a 4,300-digit number) nor with Python's advice about int digits.

An in-process server over the tiny trained model (conftest `run_dir`), a real HTTP client.
"""

from __future__ import annotations

import http.client
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from seq2seq.config import ConfigError, DecodeConfig
from seq2seq.serve.server import TranslationServer
from seq2seq.translation.torch_engine import Translator

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def server(run_dir: Path):
    tiny = Translator.from_checkpoint(run_dir / "best.pt")
    with TranslationServer({"tiny": tiny, "100": tiny}, DecodeConfig(beam_size=1)) as running:
        yield running


def _post(server: TranslationServer, body: bytes | str, path: str = "/translate") -> tuple[int, Any]:
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


# --- 6: a key twice, a null model ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('{"sentences": ["red cat"], "beam_size": 1, "beam_size": 8}', "beam_size"),
        ('{"sentences": ["a"], "sentences": ["b"]}', "sentences"),
        ('{"sentences": ["a"], "model": "tiny", "model": "100"}', "model"),
    ],
)
def test_a_key_given_twice_is_400_naming_it(server: TranslationServer, body: str, key: str) -> None:
    assert _post(server, body) == (400, {"error": f"body has the key '{key}' twice"})


def test_stopping_with_greedy_search_is_400_as_on_the_command_line(server: TranslationServer, run_dir: Path) -> None:
    """The server's default is greedy: a request's `stopping` would be ignored, unless it asks for a beam."""
    status, reply = _post(server, '{"sentences": ["red cat"], "stopping": "beam"}')
    assert status == 400 and reply["error"].startswith("stopping applies to beam search; with beam_size 1")
    assert _post(server, '{"sentences": ["red cat"], "stopping": "beam", "beam_size": 2}')[0] == 200
    tiny = Translator.from_checkpoint(run_dir / "best.pt")  # the Python API: the same check
    with pytest.raises(ConfigError, match="stopping applies to beam search"):
        tiny.translate("red cat", beam_size=1, stopping="beam")
    assert isinstance(tiny.translate("red cat", stopping="beam"), str)  # beam 5, its default: accepted


def test_a_null_model_is_400_not_the_default_model(server: TranslationServer) -> None:
    status, reply = _post(server, '{"sentences": ["red cat"], "model": null}')
    assert status == 400 and reply["error"].startswith('"model" must be a string naming a model (GET /models)')
    assert _post(server, '{"sentences": ["red cat"]}')[0] == 200  # left out: the default model


# --- 7: values echoed as JSON, clipped -------------------------------------------------------------


@pytest.mark.parametrize(
    ("item_id", "words"),
    [
        ("true", '[0]["id"] must name a model (a string or an integer), got a boolean (true)'),
        ('{"a": 1}', '[0]["id"] must name a model (a string or an integer), got an object ({"a": 1})'),
        ("1.5", '[0]["id"] must name a model (a string or an integer), got a number (1.5)'),
        ('"a\\nb"', "No such model 'a\\nb': this server serves tiny, 100"),
        (
            "7",
            "No such model '7': this server serves tiny, 100 (name a model by the id your clients send: "
            "--model 7=PATH)",
        ),  # fmt: skip
    ],
)
def test_opennmt_ids_are_shown_as_json_not_python(server: TranslationServer, item_id: str, words: str) -> None:
    status, reply = _post(server, f'[{{"src": "red cat", "id": {item_id}}}]', "/translator/translate")
    assert status == 400 and reply["status"] == "error" and reply["error"].startswith(words)
    assert "True" not in reply["error"] and "{'a'" not in reply["error"]


LONG = "x" * 5000  # a value of 5,000 characters: echoed as its first 40 and "…"
CLIPPED = "x" * 40 + "…"


@pytest.mark.parametrize(
    ("body", "path", "shown"),
    [
        (f'[{{"src": "a", "id": "{LONG}"}}]', "/translator/translate", f"No such model '{CLIPPED}'"),
        (f'{{"sentences": ["a"], "model": "{LONG}"}}', "/translate", f"no model '{CLIPPED}'"),
        (f'{{"sentences": ["a"], "stopping": "{LONG}"}}', "/translate", f'got "{CLIPPED[1:]}'),  # JSON, clipped
        (f'{{"sentences": ["a"], "{LONG}": 1}}', "/translate", f"'{CLIPPED}'"),
        (f'{{"sentences": ["a"], "{LONG}": 1, "{LONG}": 2}}', "/translate", f"body has the key '{CLIPPED}' twice"),
    ],
)
def test_a_long_value_is_echoed_clipped(server: TranslationServer, body: str, path: str, shown: str) -> None:
    status, reply = _post(server, body, path)
    assert status == 400 and shown in reply["error"] and len(reply["error"]) < 400


@pytest.mark.parametrize("digits", [4300, 5001])
def test_a_huge_number_is_neither_echoed_nor_met_with_pythons_advice(server: TranslationServer, digits: int) -> None:
    status, reply = _post(server, f'{{"sentences": ["a"], "max_len_b": 1{"0" * (digits - 1)}}}')
    assert status == 400 and len(reply["error"]) < 200, reply["error"][:300]
    assert "set_int_max_str_digits" not in reply["error"] and "0" * 41 not in reply["error"]
    if digits > 4300:
        assert reply["error"] == f"body holds an integer of {digits} digits (at most 4300)"


def test_opennmt_reply_keeps_the_sources_outer_whitespace_in_linear_time() -> None:
    """The reply's head and tail came from re.search(r"\\s*$"): quadratic in a run of spaces (256 sources of
    1,999 spaces and a letter, 0.5 MB under the body limit, held the handler thread for seconds)."""
    import time

    from seq2seq.search import Hypothesis
    from seq2seq.serve.protocol import opennmt_reply

    hyp = Hypothesis([5], -1.0, -1.0, None)
    reply = opennmt_reply([" \t a b \n", "a", "   "], [[("A B", hyp)], [("A", hyp)], []], 1)
    assert [r["tgt"] for r in reply[0]] == [" \t A B \n", "A", ""]
    start = time.perf_counter()
    opennmt_reply([" " * 1999 + "x"] * 256, [[("X", hyp)]] * 256, 1)
    assert time.perf_counter() - start < 0.5


# --- lone surrogates and bodies not in UTF-8 (a review of 2026-12-06) ------------------------------


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        (b'{"sentences": [], "model": "\\ud800"}', "/translate", "no model '\\ud800' on this server"),
        (b'{"sentences": ["a"], "scores": "\\ud800"}', "/translate", 'got a string ("\\ud800")'),
        (b'[{"src": "a", "id": "\\ud800"}]', "/translator/translate", "No such model '\\ud800'"),
        (b'[{"src": "a", "\\ud800": 1}]', "/translator/translate", "[0] has '\\ud800'"),
        (b'{"sentences": ["a"], "\\ud800": 1e400}', "/translate", "must be a finite number"),  # any echo is sent
    ],
)
def test_a_lone_surrogate_echoed_is_escaped_and_answered(server: TranslationServer, body: bytes, path: str,
                                                         words: str) -> None:  # fmt: skip
    """The message held the surrogate itself: the reply could not be encoded and the connection dropped."""
    status, reply = _post(server, body, path)
    assert status == 400 and words in reply["error"], reply


@pytest.mark.parametrize(
    "body",
    [
        b'{"sentences": ["\xed\xa0\x80"]}',  # a lone surrogate's bytes: not UTF-8
        '{"sentences": ["red cat"]}'.encode("utf-16"),  # with its byte order mark
        '{"sentences": ["red cat"]}'.encode("utf-16-le"),
        '{"sentences": ["red cat"]}'.encode("utf-32"),
    ],
    ids=["surrogate bytes", "utf-16", "utf-16-le", "utf-32"],
)
def test_a_body_not_in_utf_8_is_400(server: TranslationServer, body: bytes) -> None:
    """json.loads(bytes) guessed UTF-16 and UTF-32 and translated them; the docs say invalid UTF-8 is a 400."""
    status, reply = _post(server, body)
    assert status == 400 and reply["error"].startswith("body is not valid JSON: ") and "UTF-8" in reply["error"], reply


def test_a_utf_8_byte_order_mark_is_skipped(server: TranslationServer) -> None:
    assert _post(server, b'\xef\xbb\xbf{"sentences": []}') == (200, {"translations": []})


# --- what a request would have ignored ----------------------------------------------------------------


def test_length_penalty_with_greedy_search_and_no_scores_is_400_as_on_the_command_line(
    server: TranslationServer,
) -> None:
    """With beam_size 1 a length_penalty changes only the scores: a reply of texts alone ignored it (200)."""
    status, reply = _post(server, '{"sentences": ["red cat"], "beam_size": 1, "length_penalty": 3}')
    assert status == 400 and reply["error"] == (
        "length_penalty with beam_size 1 (greedy search) changes only the hypotheses' scores, and this reply "
        'shows none (ask for "scores": true): leave it out'
    )
    assert _post(server, '{"sentences": ["red cat"], "length_penalty": 3}')[0] == 400  # the server's greedy default
    for shown in ('"scores": true', '"alignments": true', '"beam_size": 2'):  # scores shown, or a beam it ranks
        assert _post(server, f'{{"sentences": ["red cat"], "length_penalty": 3, {shown}}}')[0] == 200, shown


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ('"beam_size": true', "DecodeConfig.beam_size must be int, got true"),
        ('"beam_size": null', "DecodeConfig.beam_size must be int, got null"),
        ('"beam_size": "5"', 'DecodeConfig.beam_size must be int, got "5"'),
        ('"max_len_b": 1e8', "DecodeConfig.max_len_b must be int, got 100000000.0"),
        ('"length_penalty": "x\\ny"', 'DecodeConfig.length_penalty must be float, got "x\\ny"'),
        ('"stopping": null', 'DecodeConfig.stopping must be one of "bound", "beam", got null'),
        ('"precision": ["x"]', 'DecodeConfig.precision must be one of "auto", "fp32", "bf16", "fp16", got ["x"]'),
    ],
)
def test_a_value_of_the_wrong_type_is_shown_as_json(server: TranslationServer, option: str, words: str) -> None:
    """The messages were Python's: "got bool True", "got NoneType None", "got str '5'", "one of ('bound', 'beam')"."""
    assert _post(server, f'{{"sentences": ["a"], {option}}}') == (400, {"error": words})
