"""One event through the detector: the sequence the worker and replay share (detectors/pipeline.py)."""

from __future__ import annotations

import random
from dataclasses import replace

import orjson
import pytest

from detectors.config import load_scoring
from detectors.engine import Engine, MemoryStore
from detectors.pipeline import DETECTOR_ERROR, handle, published
from sim import personas as P
from tests.conftest import make_event

T0 = 1_800_000_000.0


def raw(**fields: object) -> bytes:
    return orjson.dumps(make_event(1, **fields))


def test_an_event_the_contract_refuses_is_refused_with_its_reason_and_never_reaches_the_engine() -> None:
    engine = Engine(MemoryStore())
    assert handle(b"\xff not json", engine).refused.reason == "not_json"  # type: ignore[union-attr]
    assert handle(orjson.dumps({"ts": T0}), engine).refused.reason == "missing_field"  # type: ignore[union-attr]
    assert len(engine.states.store) == 0


def test_a_bad_optional_field_is_repaired_and_the_event_scored() -> None:
    engine = Engine(MemoryStore())
    handled = handle(raw(account="a", ts=T0, asn=-3), engine)
    assert handled.refused is None and handled.repaired == ["asn"] and handled.ts == T0
    engine.flush()
    assert len(engine.states.store) == 1


def test_an_event_from_the_future_is_scored_at_the_latest_believable_time() -> None:
    handled = handle(raw(account="a", ts=T0 + 86_400), Engine(MemoryStore()), latest_allowed_ts=T0 + 60)
    assert handled.clamped and handled.ts == T0 + 60


def test_a_detector_bug_refuses_that_event_and_the_stream_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(MemoryStore())

    def broken(*args: object) -> list[object]:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(engine, "process", broken)
    handled = handle(raw(account="a", ts=T0), engine)
    assert handled.refused is not None and handled.refused.reason == DETECTOR_ERROR
    assert "ZeroDivisionError" in handled.refused.detail and isinstance(handled.error, ZeroDivisionError)
    monkeypatch.undo()
    assert handle(raw(account="a", ts=T0 + 1), engine).refused is None


def test_a_decision_publishes_its_record_in_the_operators_mode_and_an_alert_unless_it_renews() -> None:
    engine = Engine(MemoryStore())
    harvest = P.cot_harvester("harvester", random.Random(1), T0, hours=2)
    decisions = [d for event in harvest for d in handle(orjson.dumps(event), engine).decisions]
    enforcing = next(d for d in decisions if d.action in ("limit", "block"))
    policy = load_scoring().policy
    record, alert = published(enforcing, "enforce", policy)
    assert record["mode"] == "enforce" and alert is not None
    assert published(replace(enforcing, renewal=True), "enforce", policy)[1] is None  # renewals do not page
    assert published(enforcing, "shadow", policy)[0]["mode"] == "shadow"
