"""Specification of the action ladder: escalate only, lapse at expiry, caps, ids that replay the same."""

from __future__ import annotations

from detectors.account_state import AccountState
from detectors.config import load_scoring
from detectors.policy import decide, decision_id, level_for_score, reason_codes
from detectors.types import Decision

CFG = load_scoring()
POLICY = CFG.policy
T0 = 1_800_000_000.0


def _decide(state: AccountState, level: int, now: float, event_id: str = "e1") -> Decision | None:
    return decide(
        state,
        subject_id="a",
        level=level,
        score=0.9,
        now=now,
        trigger_event_id=event_id,
        cfg=POLICY,
        reasons=("COT_AT_SCALE",),
        evidence={},
    )


def fresh() -> AccountState:
    return AccountState.new(CFG.window, created_ts=T0)


def test_policy_escalates_and_does_not_repeat_the_same_level() -> None:
    state = fresh()
    assert _decide(state, 0, T0) is None  # observe is never published
    first = _decide(state, 1, T0)
    assert first is not None and first.action == "challenge"
    assert _decide(state, 1, T0 + 1) is None  # no flapping at the same level
    second = _decide(state, 2, T0 + 2)
    assert second is not None and second.action == "limit"
    assert second.limit == {
        "requests_per_minute": POLICY.limit_requests_per_minute,
        "tokens_per_minute": POLICY.limit_tokens_per_minute,
    }
    assert _decide(state, 1, T0 + 3) is None  # no step down while the limit is in force


def test_policy_decision_expires_after_its_ttl_and_can_be_issued_again() -> None:
    state = fresh()
    d = _decide(state, 3, T0)
    assert d is not None and d.expires_at == T0 + POLICY.ttl_seconds
    assert _decide(fresh(), 0, T0 + POLICY.ttl_seconds) is None
    state.action_expires = T0 + 1  # pretend it lapsed without renewal
    again = _decide(state, 3, T0 + 1, event_id="e2")
    assert again is not None and again.action == "block" and again.decision_id != d.decision_id


def test_policy_renews_a_decision_that_is_still_warranted_before_it_expires() -> None:
    state = fresh()
    first = _decide(state, 2, T0)
    assert first is not None
    assert _decide(state, 2, T0 + POLICY.ttl_seconds * 0.4) is None  # plenty of time left
    late = T0 + POLICY.ttl_seconds * (1 - POLICY.renew_when_remaining) + 1
    renewal = _decide(state, 2, late, event_id="e9")
    assert renewal is not None and renewal.action == "limit" and renewal.expires_at == late + POLICY.ttl_seconds
    assert _decide(state, 0, late + 10) is None  # calm: no renewal, it will lapse


def test_policy_needs_evidence_before_enforcing() -> None:
    assert level_for_score(0.99, POLICY.min_requests_to_enforce - 1, "standard", POLICY) == 1
    assert level_for_score(0.99, POLICY.min_requests_to_enforce, "standard", POLICY) == 3


def test_policy_caps_contracted_enterprise_accounts_at_challenge() -> None:
    assert level_for_score(0.99, 10_000, "enterprise", POLICY) == 1
    for abused_pathway in ("education", "research", "startup", "trial"):
        assert level_for_score(0.99, 10_000, abused_pathway, POLICY) == 3


def test_policy_reason_codes_follow_the_largest_contributions() -> None:
    assert reason_codes({"drift": 1.5, "volume": 0.2, "cot_x_volume": 3.0, "focus": -0.1}) == (
        "COT_AT_SCALE",
        "DRIFT_TO_EXTRACTION",
        "HIGH_VOLUME",
    )


def test_policy_decision_ids_depend_only_on_subject_action_and_trigger() -> None:
    assert decision_id("account:a", "limit", "e1") == decision_id("account:a", "limit", "e1")
    assert (
        len(
            {
                decision_id("account:a", "limit", "e1"),
                decision_id("account:b", "limit", "e1"),
                decision_id("account:a", "block", "e1"),
                decision_id("account:a", "limit", "e2"),
            }
        )
        == 4
    )


def test_policy_decision_record_carries_the_contract_fields() -> None:
    d = _decide(fresh(), 2, T0)
    assert d is not None
    record = d.to_record(mode="shadow")
    assert record["subject"] == {"type": "account", "id": "a"}
    assert record["mode"] == "shadow" and record["origin"] == "auto"
    assert {"decision_id", "action", "issued_at", "expires_at", "reason", "score", "limit"} <= set(record)
    assert d.key == "account:a"
