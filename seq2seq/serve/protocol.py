"""The JSON of `seq2seq serve` (docs/serving.md): request bodies in, reply objects out; no HTTP, no model.

- `POST /translate`: `parse_body` (the sentences and decode options), `reply_options` (the model and
  what the reply should carry beyond the translations), `hypotheses_reply` (the n-best hypotheses
  with their scores, alignment and attention: opt-in, so the default reply stays `{"translations": [...]}`);
- `POST /translator/translate`, OpenNMT-py's REST route (its onmt/bin/server.py): `opennmt_request`
  and `opennmt_reply`, in its format so that its clients work unchanged.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from .batcher import RequestError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..translation.alignment import WordAlignment

REPLY_OPTIONS = ("scores", "alignments", "attention")  # booleans: what a reply carries beyond the translations
WEIGHT_DECIMALS = 3  # attention weights in replies: enough for a heat map, a third of the bytes of float32 repr
SHOWN_CHARS = 40  # a value a client sent is echoed in an error message up to this many characters, then "…"
MAX_INT_DIGITS = 4300  # Python's own limit for int("...") (sys.get_int_max_str_digits): refused with our message
MESSAGE_CHARS = 1000  # an error message is cut to this many characters (each value in it is clipped already)
LONG_RUN = re.compile(
    rf"'([^'\n]{{{SHOWN_CHARS + 1},}})'|\b(\d{{{SHOWN_CHARS + 1},}})"
)  # a long quoted value, a long number


def clip(text: str, chars: int = SHOWN_CHARS) -> str:
    """`text` up to `chars` characters, then "…"."""
    return text if len(text) <= chars else text[:chars] + "…"


def _as_json(value: Any) -> str:
    """`value` as JSON text, non-ASCII characters as they are but a lone surrogate escaped (`\\ud800`:
    valid JSON, and text that UTF-8 can carry, so that a reply echoing it can be sent)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")


def shown(value: Any) -> str:
    """A value a client sent, for an error message: as JSON (a string's characters escaped, no Python
    repr: `true`, not `True`), clipped to SHOWN_CHARS."""
    return clip(_as_json(value))


def quoted(text: str) -> str:
    """A name a client sent (a key, a model), for an error message: in single quotes, its characters
    escaped as in JSON (no newline gets into the one-line message), clipped to SHOWN_CHARS."""
    return f"'{clip(_as_json(text)[1:-1])}'"


def clip_message(message: str) -> str:
    """One line of a refusal with every quoted value and every number over SHOWN_CHARS characters
    clipped (messages built below the serve layer, e.g. DecodeConfig's, echo what they were given)."""
    message = message.splitlines()[0] if message else message

    def one(match: re.Match[str]) -> str:
        quoted, digits = match.groups()
        return f"'{clip(quoted)}'" if quoted is not None else clip(digits)

    return clip(LONG_RUN.sub(one, message), MESSAGE_CHARS)


def refusal(err: Exception) -> str:
    """A refused option's one line: a value of the wrong type or not one of a field's choices (config_dict
    sets `field`, `wanted` and `value` on the error) shown as JSON (`true`, `null`, `"5"`, not Python's
    `True`, `None`, `'5'`); any other message with its values clipped (`clip_message`)."""
    field, wanted = getattr(err, "field", None), getattr(err, "wanted", "")
    if field is None:
        return clip_message(str(err))
    kind = wanted if isinstance(wanted, str) else f"one of {', '.join(map(shown, wanted))}"
    return clip_message(f"{field} must be {kind}, got {shown(getattr(err, 'value', None))}")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _describe(value: Any) -> str:
    bad = next((v for v in value if not isinstance(v, str)), None) if isinstance(value, list) else None
    if bad is not None:
        return f"an array holding {_json_type(bad)} ({shown(bad)})"
    return f"{_json_type(value)} ({shown(value)})"


class _Refused(ValueError):
    """JSON this server does not take, with the message to answer (not json's "line 1 column 5")."""


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:  # int() would refuse it with Python's advice, sys.set_int_max_str_digits()
        raise _Refused(f"body holds an integer of {digits} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) < len(pairs):  # {"beam_size": 1, "beam_size": 8}: which one did the client mean?
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise _Refused(f"body has the key {quoted(twice)} twice")
    return obj


def load_json(body: bytes) -> Any:
    """The body as JSON; not UTF-8 (UTF-16 and UTF-32 too; a UTF-8 byte order mark is skipped), malformed
    (NaN and Infinity too, nested too deeply), a key twice in one object, an integer of more than
    MAX_INT_DIGITS digits: RequestError 400."""
    if b"\x00" in body:  # JSON in UTF-8 holds none (a NUL in a string is written \u0000): UTF-16 or UTF-32
        raise RequestError(400, "body is not valid JSON: it holds NUL bytes (UTF-16 or UTF-32?): send UTF-8")
    try:
        text = body.decode("utf-8-sig")  # strict: json.loads(bytes) would guess UTF-16 or UTF-32
    except UnicodeDecodeError as err:  # the bytes of a lone surrogate (ED A0 80) too
        where = f"byte {err.start}: 0x{body[err.start]:02x}"
        raise RequestError(400, f"body is not valid JSON: not UTF-8 ({where})") from None
    try:
        return json.loads(text, parse_constant=_no_constant, parse_int=_int, object_pairs_hook=_object)
    except _Refused as err:
        raise RequestError(400, str(err)) from None
    except ValueError as err:  # JSONDecodeError, NaN/Infinity
        raise RequestError(400, f"body is not valid JSON: {err}") from None
    except RecursionError:
        raise RequestError(400, "body is not valid JSON: nested too deeply") from None


def parse_body(body: bytes) -> tuple[list[str], dict[str, Any]]:
    """The sentences and the other keys (decode and reply options) of a /translate body; malformed
    or mistyped: RequestError 400."""
    request = load_json(body)
    if not isinstance(request, dict):
        raise RequestError(400, f'body must be a JSON object {{"sentences": [...]}}, got {_json_type(request)}')
    options = dict(request)
    if "sentences" not in options:
        raise RequestError(400, 'missing "sentences": an array of strings to translate')
    sentences = options.pop("sentences")
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise RequestError(400, f'"sentences" must be an array of strings, got {_describe(sentences)}')
    for key, value in options.items():  # 1e400 parses as inf
        if isinstance(value, float) and not math.isfinite(value):
            raise RequestError(400, f"{clip(key)} must be a finite number, got {json.dumps(value)}")
    return sentences, options


def reply_options(options: dict[str, Any]) -> tuple[str | None, dict[str, bool]]:
    """Take `"model"` (a name; left out: None, the default model) and the booleans of REPLY_OPTIONS out
    of `options` (what is left are decode options); a wrong type (null too) is a RequestError 400."""
    if "model" in options and not isinstance(options["model"], str):  # null too: leave "model" out for the default
        got = _describe(options["model"])
        raise RequestError(400, f'"model" must be a string naming a model (GET /models), got {got}')
    model = options.pop("model", None)
    wanted = {}
    for key in REPLY_OPTIONS:
        value = options.pop(key, False)
        if not isinstance(value, bool):
            raise RequestError(400, f'"{key}" must be true or false, got {_describe(value)}')
        wanted[key] = value
    return model, wanted


def _weights(matrix: Any) -> list[list[float]]:
    return [[round(float(w), WEIGHT_DECIMALS) for w in row] for row in matrix]


def attention_reply(alignment: WordAlignment) -> dict[str, Any]:
    """The piece-level attention of one hypothesis, with the pieces' words (docs/serving.md)."""
    return {
        "src_pieces": list(alignment.src_pieces),
        "tgt_pieces": list(alignment.tgt_pieces),
        "weights": _weights(alignment.attention),
        "src_words": list(alignment.src_words),
        "tgt_words": list(alignment.tgt_words),
        "src_word_of_piece": list(alignment.src_word_of_piece),
        "tgt_word_of_piece": list(alignment.tgt_word_of_piece),
    }


def hypotheses_reply(found: Sequence[Any], wanted: dict[str, bool]) -> list[dict[str, Any]]:
    """One sentence's hypotheses, best first: text, score, log_prob; `alignment` ("0-0 2-1") when
    alignments or attention are wanted, `attention` when it is. `found`: (text, hypothesis) pairs,
    or `Aligned` triples when alignments were computed."""
    out = []
    for item in found:
        text, hyp = item[0], item[1]
        entry: dict[str, Any] = {"text": text, "score": round(hyp.score, 6), "log_prob": round(hyp.log_prob, 6)}
        if wanted.get("alignments") or wanted.get("attention"):
            entry["alignment"] = str(item[2])
        if wanted.get("attention"):
            entry["attention"] = attention_reply(item[2])
        out.append(entry)
    return out


# --- OpenNMT-py's route ------------------------------------------------------------------------

OPENNMT_KEYS = ("src", "id")


def opennmt_request(body: bytes) -> tuple[list[str], str | None]:
    """The sources and the model id of an OpenNMT-py request `[{"src": "...", "id": 100}, ...]`: its
    server uses the first item's id for all (here, the ids given must agree); None: no id given."""
    request = load_json(body)
    if not isinstance(request, list) or not all(isinstance(item, dict) for item in request):
        raise RequestError(
            400, f'body must be a JSON array [{{"src": "...", "id": ...}}, ...], got {_describe(request)}'
        )
    sentences, ids = [], set()
    for n, item in enumerate(request):
        unknown = sorted(set(item) - set(OPENNMT_KEYS))
        if unknown:
            raise RequestError(400, f'[{n}] has {quoted(unknown[0])}: this route takes "src" and "id" only')
        if not isinstance(item.get("src"), str):
            raise RequestError(400, f'[{n}]["src"] must be a string, got {_describe(item.get("src"))}')
        sentences.append(item["src"])
        model = item.get("id")
        if model is not None and (isinstance(model, bool) or not isinstance(model, (str, int))):
            raise RequestError(400, f'[{n}]["id"] must name a model (a string or an integer), got {_describe(model)}')
        if model is not None:
            ids.add(str(model))
    if len(ids) > 1:
        named = ", ".join(quoted(i) for i in sorted(ids)[:5])
        raise RequestError(400, f"the items name different models (ids {named}): send one request each")
    return sentences, ids.pop() if ids else None


def opennmt_reply(sentences: Sequence[str], found: Sequence[Sequence[Any]], n_best: int) -> list[list[dict]]:
    """OpenNMT-py's reply: one list per rank (n_best of them), each holding, for every source in order,
    `{"src", "tgt", "n_best", "pred_score"}`; the source's leading and trailing whitespace kept around
    its translation, as OpenNMT-py does. A source with fewer hypotheses (empty) gets "" scored 0."""
    out: list[list[dict]] = [[] for _ in range(n_best)]
    for src, hyps in zip(sentences, found):
        head = src[: len(src) - len(src.lstrip())]  # not re.search(r"\s*$"): quadratic on a run of spaces
        tail = src[len(src.rstrip()) :]
        for rank in range(n_best):
            text, score = (hyps[rank][0], hyps[rank][1].score) if rank < len(hyps) else ("", 0.0)
            tgt = f"{head}{text}{tail}" if src.strip() else text
            out[rank].append({"src": src, "tgt": tgt, "n_best": n_best, "pred_score": score})
    return out


def opennmt_models(paths: dict[str, str], decode: dict[str, Any]) -> list[dict[str, Any]]:
    """GET /translator/models in OpenNMT-py's form: model_id (an int where the name is digits), models
    (the model file), opt (the default decode settings), loaded, timeout (-1: never unloaded)."""
    return [{"model_id": int(name) if name.isdigit() else name, "models": [path], "loaded": True,
             "timeout": -1, "opt": decode} for name, path in paths.items()]  # fmt: skip
