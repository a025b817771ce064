"""Hostile input, generated: whatever bytes arrive, the decoder answers with an event or an
``InvalidEvent`` naming a known reason — never another exception — and the feature extractor and the
engine take every event the decoder accepts."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.engine import Engine, MemoryStore
from detectors.events import MAX_EVENT_BYTES, REASONS, InvalidEvent, decode_event
from detectors.features import extract, load_phrasebook

BOOK = load_phrasebook()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Values a hostile or broken gateway might put in any field.
hostile = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=5000),
    st.lists(st.integers(), max_size=5), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)  # fmt: skip

FIELDS = ("event_id", "ts", "account_id", "model", "input_tokens", "output_tokens", "prompt", "system", "ip",
          "user_agent", "n_tools", "n_messages", "max_tokens", "account_type", "payment_fingerprint",
          "thinking")  # fmt: skip


def valid_base(i: int = 0) -> dict[str, Any]:
    return {"event_id": f"e{i}", "ts": 1_800_000_000.0 + i, "account_id": "acct", "model": "m",
            "input_tokens": 10, "output_tokens": 20}  # fmt: skip


def check(raw: bytes) -> dict[str, Any] | None:
    """Decode; any failure must be an InvalidEvent with a known reason."""
    try:
        event = decode_event(raw)
    except InvalidEvent as exc:
        assert exc.reason in REASONS
        return None
    assert isinstance(event, dict)
    return event


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_are_an_event_or_a_reason(raw: bytes) -> None:
    check(raw)


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), hostile, max_size=len(FIELDS)))
def test_hostile_field_values_are_refused_with_a_reason_or_accepted_within_the_contract(fields: dict[str, Any]) -> None:
    doc = {**valid_base(), **fields}
    try:
        raw = json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")
    except (ValueError, OverflowError):
        return
    event = check(raw)
    if event is not None:
        assert event["input_tokens"] >= 0 and event["output_tokens"] >= 0 and math.isfinite(event["ts"])
        extract(event, BOOK)  # and the extractor takes whatever the decoder accepted


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=20_000), st.text(max_size=2000))
def test_the_extractor_and_engine_take_any_prompt_text(prompt: str, system: str) -> None:
    raw = orjson.dumps({**valid_base(), "prompt": prompt, "system": system})
    event = check(raw)
    if event is None:  # only when the text made the event too large
        assert len(raw) > MAX_EVENT_BYTES
        return
    features = extract(event, BOOK)
    assert 0.0 <= features.cot <= 1.0
    Engine(MemoryStore()).process(event)


def test_the_classic_hostile_inputs_each_get_their_reason() -> None:
    cases = {
        b"\xff\xfe\xfa not utf-8": "not_json",
        b"[" * 5000 + b"]" * 5000: "not_json",  # deeper than any JSON parser should follow
        b'{"ts": NaN}': "not_json",
        orjson.dumps({**valid_base(), "output_tokens": -5}): "bad_value",
        orjson.dumps({**valid_base(), "ts": 1.8e12}): "bad_value",  # milliseconds
        orjson.dumps({**valid_base(), "prompt": "x" * 10_000_000}): "too_large",
        orjson.dumps({**valid_base(), "input_tokens": 1.5}): "wrong_type",
        orjson.dumps({**valid_base(), "account_id": ""}): "bad_value",
    }
    for raw, reason in cases.items():
        try:
            decode_event(raw)
        except InvalidEvent as exc:
            assert exc.reason == reason, (raw[:40], exc)
        else:
            raise AssertionError(f"accepted {raw[:40]!r}")


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=400), st.dictionaries(st.sampled_from(FIELDS), hostile, max_size=len(FIELDS))))
def test_the_worker_path_scores_or_dead_letters_every_hostile_value_within_bounds(doc: bytes | dict[str, Any]) -> None:
    """Issue 22: what the detect agent does with each record — decode with repairs, else a dead letter
    built by dlq_value — over 10,000 hostile cases: an event that passes the strict contract once repaired,
    or a known reason and a bounded record that never holds the text a client sent."""
    from detectors.events import MAX_DLQ_BYTES, dlq_value

    raw = doc if isinstance(doc, bytes) else json.dumps({**valid_base(), **doc}).encode("utf-8", "surrogatepass")
    dropped: list[str] = []
    try:
        event = decode_event(raw, dropped)
    except InvalidEvent as exc:
        assert exc.reason in REASONS
        value = dlq_value(raw)
        assert len(value) <= MAX_DLQ_BYTES
        kept = orjson.loads(value) if value else {}
        for name in ("prompt", "system"):  # a client's text survives only as its length and a hash
            sent = doc.get(name) if isinstance(doc, dict) else None
            if isinstance(sent, str) and isinstance(kept, dict) and name in kept:
                assert kept[name] == {"redacted_chars": len(sent), "sha256": kept[name]["sha256"]}, value[:80]
        return
    assert decode_event(orjson.dumps(event)) == event  # what is scored keeps the contract strictly
