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

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from detectors import _contract
from detectors.types import RequestEvent

__all__ = ["InvalidEvent", "REASONS", "MAX_EVENT_BYTES", "decode_event", "validate_event"]

#: Largest event accepted: 256 KiB. Prompts in events may be truncated by contract, so a bigger value is
#: a gateway bug. It stays well under Kafka's default message.max.bytes (~1 MB) so that an oversized
#: event can still travel to the DLQ with its original bytes.
MAX_EVENT_BYTES = 262_144

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
    "ip": _STR,
    "asn": _COUNT,
    "country": _STR,
    "user_agent": _STR,
    "tls_fingerprint": _STR,
    "payment_fingerprint": _STR,
    "device_fingerprint": _STR,
    "endpoint": _STR,
    "status": _Field("int", (int,), "an integer"),
    "latency_ms": _Field("latency", (int, float), "a finite number >= 0", lambda v: 0 <= v < math.inf),
    "max_tokens": _COUNT,
    "temperature": _NUMBER,
    "stream": _BOOL,
    "n_tools": _COUNT,
    "thinking": _BOOL,
    "n_messages": _COUNT,
    "conversation_id": _STR,
    "system": _STR,
    "prompt": _STR,
}


def _refuse(name: str, value: Any, spec: _Field) -> NoReturn:
    """The error for a value its spec refused: the wrong type, else a bad value."""
    reason = "wrong_type" if type(value) not in spec.types else "bad_value"
    raise InvalidEvent(reason, f"field {name!r} must be {spec.wants}, got {_show(value)}")


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:40] + "…"


# The specs as (types, predicate, spec) for the per-event loop, which reads no dataclass attributes.
_REQUIRED_CHECKS = tuple((name, spec.types, spec.ok, spec) for name, spec in _REQUIRED.items())
_OPTIONAL_CHECKS = {name: (spec.types, spec.ok, spec) for name, spec in _OPTIONAL.items()}
_MISSING = object()
# The same specs for the C accept (_contract.valid): required names and their kinds, optional kinds.
_FAST = (
    tuple(_REQUIRED),
    tuple(_contract.KINDS[spec.kind] for spec in _REQUIRED.values()),
    {name: _contract.KINDS[spec.kind] for name, spec in _OPTIONAL.items()},
    ACCOUNT_TYPES,
)


def validate_event(obj: Any) -> RequestEvent:
    """Check a decoded JSON value against the contract and return it; unknown fields are ignored.

    An optional field set to ``null`` counts as absent, since gateways often serialize missing values so.
    """
    if type(obj) is not dict:
        raise InvalidEvent("not_object", f"expected a JSON object, got {type(obj).__name__}")
    if _contract.valid(obj, *_FAST):
        return obj
    return _checked(obj)


def _checked(obj: dict[str, Any]) -> RequestEvent:
    """The contract in Python: raises for the first refused field, else returns ``obj``. Runs when the C
    accept was not sure (an invalid event, or a value C leaves to Python such as a huge integer)."""
    for name, types, ok, spec in _REQUIRED_CHECKS:
        value = obj.get(name, _MISSING)
        if value is _MISSING:
            raise InvalidEvent("missing_field", f"required field {name!r} is missing")
        if type(value) not in types or (ok is not None and not ok(value)):
            _refuse(name, value, spec)
    for name, value in obj.items():
        optional = _OPTIONAL_CHECKS.get(name)
        if optional is not None and value is not None:
            types, ok, spec = optional
            if type(value) not in types or (ok is not None and not ok(value)):
                _refuse(name, value, spec)
    return obj


def decode_event(raw: bytes) -> RequestEvent:
    """Decode one ``llm.requests`` value (raw bytes, orjson) and validate it."""
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent("too_large", f"event is {len(raw)} bytes, limit is {MAX_EVENT_BYTES}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("not_json", str(exc)[:200]) from None
    return validate_event(obj)
