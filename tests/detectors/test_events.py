"""Specification of the request-event contract: what is accepted, what is rejected and why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from detectors import _contract, events
from detectors.events import MAX_EVENT_BYTES, REASONS, InvalidEvent, decode_event
from tests.conftest import REPO, make_event

SCHEMA = Draft202012Validator(json.loads((REPO / "schemas" / "request-event.schema.json").read_text()))

VALID: list[dict[str, Any]] = [
    make_event(1),
    make_event(2, ts=1_800_000_000),  # integer seconds
    make_event(3, input_tokens=0, output_tokens=0),
    make_event(
        4,
        account_type="education",
        asn=15169,
        stream=True,
        thinking=False,
        n_tools=3,
        temperature=0.7,
        latency_ms=812.5,
        status=200,
        prompt="héllo 你好",
        system="",
    ),
    make_event(5, ip=None, org_id=None),  # null optional fields count as absent
    make_event(6, unknown_field={"nested": [1, 2, 3]}),  # unknown fields are ignored
]

# (description, raw bytes, expected reason)
INVALID: list[tuple[str, bytes, str]] = [
    ("empty", b"", "not_json"),
    ("not json", b"{event_id: 1}", "not_json"),
    ("truncated", orjson.dumps(make_event(1))[:-3], "not_json"),
    ("invalid utf-8", b'{"event_id": "\xff\xfe"}', "not_json"),
    ("NaN literal", b'{"ts": NaN}', "not_json"),
    ("deep nesting", b"[" * 2000 + b"]" * 2000, "not_json"),
    ("too large", b'{"prompt": "' + b"a" * MAX_EVENT_BYTES + b'"}', "too_large"),
    ("array", b"[1, 2]", "not_object"),
    ("string", b'"hello"', "not_object"),
    ("null", b"null", "not_object"),
    ("number", b"42", "not_object"),
    ("empty object", b"{}", "missing_field"),
]


def _without(field: str) -> bytes:
    event = make_event(1)
    del event[field]
    return orjson.dumps(event)


def _with(**fields: Any) -> bytes:
    return orjson.dumps(make_event(1, **fields))


for _field in ("event_id", "ts", "account_id", "model", "input_tokens", "output_tokens"):
    INVALID.append((f"missing {_field}", _without(_field), "missing_field"))

INVALID += [
    ("ts as string", _with(ts="1800000000"), "wrong_type"),
    ("ts zero", _with(ts=0), "bad_value"),
    ("ts negative", _with(ts=-5.0), "bad_value"),
    ("ts in milliseconds", _with(ts=1_800_000_000_000), "bad_value"),
    ("ts beyond 64-bit integers", _with(ts=1).replace(b'"ts":1', b'"ts":1' + b"0" * 30), "bad_value"),
    ("ts boolean", _with(ts=True), "wrong_type"),
    ("account_id empty", _with(account_id=""), "bad_value"),
    ("account_id number", _with(account_id=42), "wrong_type"),
    ("account_id too long", _with(account_id="a" * 300), "bad_value"),
    ("account_id null", _with(account_id=None), "wrong_type"),
    ("event_id list", _with(event_id=["x"]), "wrong_type"),
    ("model object", _with(model={"name": "x"}), "wrong_type"),
    ("input_tokens negative", _with(input_tokens=-1), "bad_value"),
    ("output_tokens float", _with(output_tokens=1.5), "wrong_type"),
    ("output_tokens string", _with(output_tokens="900"), "wrong_type"),
    ("input_tokens boolean", _with(input_tokens=True), "wrong_type"),
    ("account_type unknown", _with(account_type="vip"), "bad_value"),
    ("asn negative", _with(asn=-1), "bad_value"),
    ("asn string", _with(asn="AS15169"), "wrong_type"),
    ("stream as string", _with(stream="true"), "wrong_type"),
    ("thinking as int", _with(thinking=1), "wrong_type"),
    ("n_tools negative", _with(n_tools=-2), "bad_value"),
    ("max_tokens fractional", _with(max_tokens=4096.5), "wrong_type"),
    ("latency negative", _with(latency_ms=-3), "bad_value"),
    ("prompt number", _with(prompt=12), "wrong_type"),
    ("status string", _with(status="200"), "wrong_type"),
]


@pytest.mark.parametrize("event", VALID, ids=lambda e: str(e["event_id"]))
def test_decoder_accepts_valid_events(event: dict[str, Any]) -> None:
    decoded = decode_event(orjson.dumps(event))
    assert decoded["account_id"] == event["account_id"]
    assert SCHEMA.is_valid(event)


@pytest.mark.parametrize(
    ("raw", "reason"), [(raw, reason) for _, raw, reason in INVALID], ids=[name for name, _, _ in INVALID]
)
def test_decoder_rejects_malformed_events_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_event(raw)
    assert info.value.reason == reason
    assert info.value.reason in REASONS
    assert info.value.detail  # the operator is told what was wrong


# Parse errors and the size limit are transport rules, not schema rules.
_SCHEMA_CASES = [(name, raw) for name, raw, reason in INVALID if reason not in ("not_json", "too_large")]


@pytest.mark.parametrize("raw", [raw for _, raw in _SCHEMA_CASES], ids=[name for name, _ in _SCHEMA_CASES])
def test_schema_rejects_what_the_decoder_rejects(raw: bytes) -> None:
    assert not SCHEMA.is_valid(orjson.loads(raw))


def test_error_detail_never_echoes_long_values() -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_event(_with(prompt=list(range(10_000))))
    assert len(str(info.value)) < 200


def test_schema_file_lists_every_field_the_decoder_knows() -> None:
    from detectors import events

    schema = json.loads(Path(REPO / "schemas" / "request-event.schema.json").read_text())
    assert set(schema["properties"]) == set(events._REQUIRED) | set(events._OPTIONAL)
    assert set(schema["required"]) == set(events._REQUIRED)


# Values at and around every check's edges, of every JSON type.
EDGE_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2**63 - 1, -(2**63), 2**64, 10**30, 0.0, -0.0, 0.5, -0.5, 1e11, 1e11 - 1,
    99_999_999_999.9, 1.8e12, float("inf"), float("-inf"), float("nan"), "", "x", "x" * 256, "x" * 257,
    "é" * 256, "standard", "enterprise", "Standard", [], {}, [1], {"a": 1},
]  # fmt: skip


def python_accepts(event: dict[str, Any]) -> bool:
    try:
        events._checked(event)
    except InvalidEvent:
        return False
    return True


@pytest.mark.parametrize("field", sorted(set(events._REQUIRED) | set(events._OPTIONAL)))
def test_the_c_accept_agrees_with_the_python_contract_on_every_field(field: str) -> None:
    for value in EDGE_VALUES:
        event = make_event(1, **{field: value})
        c_accepts = _contract.valid(event, *events._FAST)
        assert not c_accepts or python_accepts(event), (field, value)  # C never accepts what Python refuses
        small_int = not (isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63)
        if small_int:  # C leaves integers beyond 64 bits to Python; everything else it decides alike
            assert c_accepts == python_accepts(event), (field, value)
    missing = make_event(1)
    missing.pop(field, None)
    assert _contract.valid(missing, *events._FAST) == python_accepts(missing), field


# ---- repairs: what a client sends must not keep its request out of detection (issue 22, item 1) ----

_OPTIONAL_CASES = [
    (name, raw)
    for name, raw, reason in INVALID
    if reason in ("wrong_type", "bad_value") and any(f in name for f in events.OPTIONAL_FIELDS)
]


@pytest.mark.parametrize("raw", [raw for _, raw in _OPTIONAL_CASES], ids=[name for name, _ in _OPTIONAL_CASES])
def test_a_bad_optional_field_is_dropped_and_named_when_repairs_are_asked_for(raw: bytes) -> None:
    dropped: list[str] = []
    event = decode_event(raw, dropped)
    assert len(dropped) == 1 and dropped[0] not in event
    assert {k: v for k, v in orjson.loads(raw).items() if k != dropped[0]} == event
    with pytest.raises(InvalidEvent):
        decode_event(raw)  # without repairs, the contract still refuses it


def test_a_vip_account_type_is_dropped_not_trusted() -> None:
    dropped: list[str] = []
    assert "account_type" not in decode_event(_with(account_type="vip", n_tools=-1, temperature="hot"), dropped)
    assert sorted(dropped) == ["account_type", "n_tools", "temperature"]


@pytest.mark.parametrize("name", ["missing account_id", "ts in milliseconds", "account_id too long", "empty object"])
def test_a_bad_required_field_is_refused_even_with_repairs(name: str) -> None:
    raw = next(r for n, r, _ in INVALID if n == name)
    with pytest.raises(InvalidEvent):
        decode_event(raw, [])


def test_an_oversized_event_is_scored_with_its_text_cut_up_to_the_salvage_limit() -> None:
    huge = _with(system="s" * 300_000, prompt="think step by step " * 100)
    dropped: list[str] = []
    event = decode_event(huge, dropped)
    assert dropped == ["system"] and len(event["system"]) == events.MAX_TEXT_CHARS
    assert event["prompt"].startswith("think step by step")
    with pytest.raises(InvalidEvent) as info:
        decode_event(_with(system="s" * 2_000_000), [])
    assert info.value.reason == "too_large"


def test_error_details_never_carry_text_a_client_sent() -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_event(_with(account_id="secret-" * 50))
    assert "secret" not in str(info.value) and "350 characters" in str(info.value)


@pytest.mark.parametrize("raw", [raw for _, raw, _ in INVALID], ids=[name for name, _, _ in INVALID])
def test_a_dead_letter_is_bounded_and_holds_no_prompt_text(raw: bytes) -> None:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):  # the same refused event, carrying a prompt and a system prompt
        marked = orjson.dumps({**obj, "prompt": "SECRET plan " * 3000, "system": "SECRET sys"})
    else:
        marked = b"SECRET " + raw
    value = events.dlq_value(marked)
    assert len(value) <= events.MAX_DLQ_BYTES and b"SECRET" not in value
    if isinstance(obj, dict):
        assert orjson.loads(value)["prompt"]["redacted_chars"] == len("SECRET plan " * 3000)
    assert events.dlq_value(marked, keep_text=True) == marked[: events.MAX_DLQ_BYTES]  # only on an explicit opt-in
