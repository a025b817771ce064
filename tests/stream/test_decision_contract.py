"""Every decision the detector publishes matches schemas/throttle-decision.schema.json."""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator

from detectors.policy import record_mode
from sim.hard_cases import build, run
from tests.conftest import REPO

SCHEMA = Draft202012Validator(json.loads((REPO / "schemas" / "throttle-decision.schema.json").read_text()))


def test_published_decisions_match_the_contract() -> None:
    decisions = [d for ds in run(build(21)).values() for d in ds]
    assert {d.action for d in decisions} >= {"challenge", "limit", "block"}
    for d in decisions:
        record = d.to_record(mode="enforce")
        errors = [e.message for e in SCHEMA.iter_errors(record)]
        assert not errors, (record["decision_id"], errors)
        assert record["evidence_id"] == record["decision_id"]


def test_schema_refuses_a_limit_without_limits_and_an_unknown_action() -> None:
    base = {"schema_version": 1, "decision_id": "d", "subject": {"type": "account", "id": "a"}, "issued_at": 1.0,
            "expires_at": 2.0, "reason": ["COT_AT_SCALE"], "score": 0.9, "mode": "enforce", "origin": "auto",
            "evidence_id": "d"}  # fmt: skip
    assert SCHEMA.is_valid({**base, "action": "block"})
    assert not SCHEMA.is_valid({**base, "action": "limit"})
    assert not SCHEMA.is_valid({**base, "action": "nuke"})


def test_shadow_mode_is_per_action_or_global() -> None:
    from detectors.config import load_scoring

    cfg = load_scoring().policy
    assert record_mode("limit", "shadow", cfg) == "shadow"
