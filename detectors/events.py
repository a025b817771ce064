"""Decode and validate one request event: raw bytes in, a plain dict out, or an ``InvalidEvent`` saying why.

The contract lives in ``schemas/request-event.schema.json``; ``tests/detectors/test_events.py`` checks
that this decoder and that schema accept and reject the same documents.

>>> raw = b'{"event_id":"e1","ts":1.0,"account_id":"a","model":"m","input_tokens":1,"output_tokens":2}'
>>> decode_event(raw)["account_id"]
'a'
>>> decode_event(b'{"event_id":"e1"}')
Traceback (most recent call last):
...
detectors.events.InvalidEvent: missing_field: required field 'ts' is missing
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from detectors.accelerators import accelerator
from detectors.types import RequestEvent

_contract = accelerator("_contract")  # the checks below are the reference; the C says "valid as is" sooner

__all__ = [
    "InvalidEvent",
    "MAX_DLQ_BYTES",
    "MAX_EVENT_BYTES",
    "MAX_SALVAGE_BYTES",
    "OPTIONAL_FIELDS",
    "REASONS",
    "clamp_event_time",
    "decode_event",
    "dlq_value",
    "validate_event",
]

#: Largest event accepted as it stands: 256 KiB. Prompts in events may be truncated by contract, so a
#: bigger value is a gateway bug (or a client getting a huge prompt past a gateway).
MAX_EVENT_BYTES = 262_144
#: Events up to this size are still scored when repairs are asked for: their text fields are cut to
#: :data:`MAX_TEXT_CHARS` (a 300 KB system prompt must not keep a request out of detection). Beyond it,
#: the DLQ. It is the gateway's body limit too (``gateway/server.py``), under Kafka's ~1 MB default.
MAX_SALVAGE_BYTES = 1_000_000 - 64 * 1024
MAX_TEXT_CHARS = 32_768
#: A DLQ record's value is at most this big (redacted, or the original's first bytes when kept): far
#: under every producer's max request size, so dead-lettering can never fail on size.
MAX_DLQ_BYTES = 16_384
_TEXT_FIELDS = ("system", "prompt")

#: Stable reason codes, used as DLQ headers and metric labels (bounded set).
REASONS = ("too_large", "not_json", "not_object", "missing_field", "wrong_type", "bad_value")

ACCOUNT_TYPES = frozenset({"standard", "enterprise", "education", "research", "startup", "trial"})
_MAX_TS = 1e11  # year 5138 in seconds; a millisecond timestamp (~1.8e12) lands above it
_MAX_ID_CHARS = 256  # ids longer than this are not ids; they would bloat keys and state


class InvalidEvent(ValueError):
    """An event that breaks the contract; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


Predicate = Callable[[Any], bool]


@dataclass(frozen=True)
class _Field:
    """What one field must be: its JSON types (exact Python types, so ``True`` is not an int) and value.
    ``kind`` names the same check in ``_contract.c``, which accepts valid events without Python."""

    kind: str
    types: tuple[type, ...]
    wants: str
    ok: Predicate | None = None


_STR = _Field("str", (str,), "a string")
# Identity-like strings become linker keys and sketch inputs: bounded, so a flood of 100 KB "fingerprints"
# cannot grow the linker's memory (issue 22, item 10). Longer ones are dropped (repaired) like any bad field.
_SHORT = _Field("short", (str,), "a string of at most 256 characters", lambda v: len(v) <= _MAX_ID_CHARS)
_ID = _Field("id", (str,), "a non-empty string of at most 256 characters", lambda v: 0 < len(v) <= _MAX_ID_CHARS)
_COUNT = _Field("count", (int,), "an integer >= 0", lambda v: v >= 0)
_NUMBER = _Field("number", (int, float), "a finite number", math.isfinite)
_BOOL = _Field("bool", (bool,), "a boolean")

_REQUIRED: dict[str, _Field] = {
    "event_id": _ID,
    "ts": _Field(
        "ts",
        (int, float),
        "Unix seconds in (0, 1e11): milliseconds are a common gateway bug",
        lambda v: 0 < v < _MAX_TS,
    ),
    "account_id": _ID,
    "model": _ID,
    "input_tokens": _COUNT,
    "output_tokens": _COUNT,
}

_OPTIONAL: dict[str, _Field] = {
    "org_id": _ID,
    "api_key_id": _ID,
    "account_type": _Field("account_type", (str,), f"one of {sorted(ACCOUNT_TYPES)}", ACCOUNT_TYPES.__contains__),
    "account_created_ts": _NUMBER,
    "ip": _SHORT,
    "asn": _COUNT,
    "country": _SHORT,
    "user_agent": _SHORT,
    "tls_fingerprint": _SHORT,
    "payment_fingerprint": _SHORT,
    "device_fingerprint": _SHORT,
    "endpoint": _SHORT,
    "status": _Field("int", (int,), "an integer"),
    "latency_ms": _Field("latency", (int, float), "a finite number >= 0", lambda v: 0 <= v < math.inf),
    "max_tokens": _COUNT,
    "temperature": _NUMBER,
    "stream": _BOOL,
    "n_tools": _COUNT,
    "thinking": _BOOL,
    "n_messages": _COUNT,
    "conversation_id": _SHORT,
    "system": _STR,
    "prompt": _STR,
}


#: Optional field names: a bounded set, so they can label a metric.
OPTIONAL_FIELDS = tuple(_OPTIONAL)


def _refuse(name: str, value: Any, spec: _Field) -> NoReturn:
    """The error for a value its spec refused: the wrong type, else a bad value."""
    reason = "wrong_type" if type(value) not in spec.types else "bad_value"
    raise InvalidEvent(reason, f"field {name!r} must be {spec.wants}, got {_show(value)}")


def _show(value: Any) -> str:
    """A refused value for an error message, never the text it holds (errors reach logs and the DLQ).

    >>> _show("my secret prompt"), _show(-2), _show([1, 2])
    ('a string of 16 characters', '-2', 'a list')
    """
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    if value is None or isinstance(value, bool | int | float):
        shown = repr(value)
        return shown if len(shown) <= 40 else shown[:40] + "…"
    return f"a {type(value).__name__}"


# The specs as (types, predicate, spec) for the per-event loop, which reads no dataclass attributes.
_REQUIRED_CHECKS = tuple((name, spec.types, spec.ok, spec) for name, spec in _REQUIRED.items())
_OPTIONAL_CHECKS = {name: (spec.types, spec.ok, spec) for name, spec in _OPTIONAL.items()}
_MISSING = object()
# The same specs for the C accept (_contract.valid): required names and their kinds, optional kinds, and
# the limits declared above. A kind is the index of its check in _contract.c's enum, which exports them.
_KINDS = {kind: i for i, kind in enumerate(("str", "id", "count", "number", "bool", "ts", "account_type", "int",
                                           "latency", "short"))}  # fmt: skip
if _contract is not None and _contract.KINDS != _KINDS:
    raise ImportError("detectors/_contract.c and events.py disagree on the checks: rebuild with `make setup`")
_FAST = (
    tuple(_REQUIRED),
    tuple(_KINDS[spec.kind] for spec in _REQUIRED.values()),
    {name: _KINDS[spec.kind] for name, spec in _OPTIONAL.items()},
    ACCOUNT_TYPES,
    _MAX_ID_CHARS,
    _MAX_TS,
)


def validate_event(obj: Any, dropped: list[str] | None = None) -> RequestEvent:
    """Check a decoded JSON value against the contract and return it; unknown fields are ignored.

    An optional field set to ``null`` counts as absent, since gateways often serialize missing values so.
    With ``dropped``, an optional field that breaks the contract is removed and its name appended instead
    of refusing the event: a client who sends ``"n_tools": -1`` must not keep its request out of detection.

    >>> repaired: list[str] = []
    >>> e = {"event_id": "e", "ts": 1.0, "account_id": "a", "model": "m", "input_tokens": 1, "output_tokens": 2}
    >>> sorted(validate_event({**e, "n_tools": -1, "account_type": "vip"}, repaired)), repaired
    (['account_id', 'event_id', 'input_tokens', 'model', 'output_tokens', 'ts'], ['n_tools', 'account_type'])
    """
    if type(obj) is not dict:
        raise InvalidEvent("not_object", f"expected a JSON object, got {type(obj).__name__}")
    if _contract is not None and _contract.valid(obj, *_FAST):
        return obj
    return _checked(obj, dropped)


def _checked(obj: dict[str, Any], dropped: list[str] | None = None) -> RequestEvent:
    """The contract in Python: raises for the first refused field, else returns ``obj``. Runs when the C
    accept was not sure (an invalid event, or a value C leaves to Python such as a huge integer)."""
    for name, types, ok, spec in _REQUIRED_CHECKS:
        value = obj.get(name, _MISSING)
        if value is _MISSING:
            raise InvalidEvent("missing_field", f"required field {name!r} is missing")
        if type(value) not in types or (ok is not None and not ok(value)):
            _refuse(name, value, spec)
    bad = []
    for name, value in obj.items():
        optional = _OPTIONAL_CHECKS.get(name)
        if optional is not None and value is not None:
            types, ok, spec = optional
            if type(value) not in types or (ok is not None and not ok(value)):
                if dropped is None:
                    _refuse(name, value, spec)
                bad.append(name)
    for name in bad:
        del obj[name]
    if dropped is not None:
        dropped += bad
    return obj


def decode_event(raw: bytes, dropped: list[str] | None = None) -> RequestEvent:
    """Decode one ``llm.requests`` value (raw bytes, orjson) and validate it.

    With ``dropped`` (the worker and replay pass one), what can be repaired is: bad optional fields are
    removed, and an event over :data:`MAX_EVENT_BYTES` but within :data:`MAX_SALVAGE_BYTES` is decoded
    with its text fields cut to :data:`MAX_TEXT_CHARS` — each repaired field's name is appended.
    """
    if len(raw) > (MAX_EVENT_BYTES if dropped is None else MAX_SALVAGE_BYTES):
        limit = MAX_EVENT_BYTES if dropped is None else MAX_SALVAGE_BYTES
        raise InvalidEvent("too_large", f"event is {len(raw)} bytes, limit is {limit}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("not_json", str(exc)[:200]) from None
    if dropped is not None and len(raw) > MAX_EVENT_BYTES and type(obj) is dict:
        for name in _TEXT_FIELDS:
            text = obj.get(name)
            if isinstance(text, str) and len(text) > MAX_TEXT_CHARS:
                obj[name] = text[:MAX_TEXT_CHARS]
                dropped.append(name)
    return validate_event(obj, dropped)


def clamp_event_time(event: RequestEvent, latest_allowed: float) -> bool:
    """Pull an event stamped after ``latest_allowed`` (the worker's wall clock plus the allowed skew) back
    to it; True when it did. The event is still scored, at the latest believable time.

    >>> e = {"ts": 9e10}
    >>> clamp_event_time(e, 1_800_000_300.0), e["ts"]
    (True, 1800000300.0)
    >>> clamp_event_time({"ts": 1_800_000_100.0}, 1_800_000_300.0)
    False
    """
    if event["ts"] > latest_allowed:
        event["ts"] = latest_allowed
        return True
    return False


def dlq_value(raw: bytes, keep_text: bool = False) -> bytes:
    """What a dead-lettered event's record carries: at most :data:`MAX_DLQ_BYTES`, and no prompt text.

    By default a JSON object keeps its fields with ``system`` and ``prompt`` replaced by their length
    and a SHA-256 prefix, and every other string cut to 64 characters; anything else (not JSON, not an
    object) keeps nothing: the record's headers say its size and hash. ``keep_text`` (an operator's
    explicit opt-in) keeps the original's first bytes instead.

    >>> dlq_value(b'{"prompt": "my secret", "ts": "soon"}')
    b'{"prompt":{"redacted_chars":9,"sha256":"b9d1d013f600ec1b"},"ts":"soon"}'
    >>> dlq_value(b"not json at all"), len(dlq_value(b"x" * 10**6, keep_text=True))
    (b'', 16384)
    """
    if keep_text:
        return raw[:MAX_DLQ_BYTES]
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return b""
    if type(obj) is not dict:
        return b""
    out = {k: _redacted(k, v) for k, v in obj.items() if isinstance(k, str)}
    value = orjson.dumps(out)
    if len(value) > MAX_DLQ_BYTES:  # many or nested fields: keep the contract's own, which are small
        known = {k: v for k, v in out.items() if k in _REQUIRED or k in _OPTIONAL}
        value = orjson.dumps({k: v for k, v in known.items() if not isinstance(v, dict | list)})
    return value[:MAX_DLQ_BYTES]


def _redacted(name: str, value: Any) -> Any:
    if name in _TEXT_FIELDS and isinstance(value, str):
        digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:16]
        return {"redacted_chars": len(value), "sha256": digest}
    if isinstance(value, str):
        return value[:64]
    if isinstance(value, dict | list):
        return f"<{type(value).__name__}>"
    return value
