"""From a subject's level of suspicion to a throttle decision: the action ladder, TTLs and hysteresis."""

from __future__ import annotations

import hashlib

from detectors.account_state import AccountState
from detectors.config import RateRule
from detectors.types import ACTIONS, Decision

__all__ = ["decision_id", "level_for_rate", "decide"]


def level_for_rate(rpm: float, rule: RateRule) -> int:
    """Index into :data:`ACTIONS` for a sliding requests-per-minute figure.

    >>> from detectors.config import load_rate_rule
    >>> rule = load_rate_rule()
    >>> [ACTIONS[level_for_rate(r, rule)] for r in (1, rule.challenge_rpm, rule.limit_rpm, rule.block_rpm)]
    ['observe', 'challenge', 'limit', 'block']
    """
    if rpm >= rule.block_rpm:
        return 3
    if rpm >= rule.limit_rpm:
        return 2
    if rpm >= rule.challenge_rpm:
        return 1
    return 0


def decision_id(subject_key: str, action: str, trigger_event_id: str) -> str:
    """Deterministic id: the same events replayed after a crash give the same id, never a new one.

    >>> decision_id("account:a", "limit", "e1") == decision_id("account:a", "limit", "e1")
    True
    """
    digest = hashlib.blake2b(f"{subject_key}|{action}|{trigger_event_id}".encode(), digest_size=12)
    return digest.hexdigest()


def decide(
    state: AccountState,
    *,
    subject_id: str,
    level: int,
    score: float,
    now: float,
    trigger_event_id: str,
    rule: RateRule,
    evidence: dict[str, float],
) -> Decision | None:
    """Escalate only: a decision is issued when ``level`` rises above the action in force.

    The action in force lapses at its expiry, so a subject that calms down starts from the bottom
    again; one that stays at the same level keeps its decision until then (no flapping).
    """
    if state.action_expires <= now:
        state.action_level = 0
    if level <= state.action_level:
        return None
    action = ACTIONS[level]
    expires = now + rule.ttl_seconds
    state.action_level = level
    state.action_expires = expires
    key = f"account:{subject_id}"
    limit = None
    if action == "limit":
        limit = {
            "requests_per_minute": rule.limit_requests_per_minute,
            "tokens_per_minute": rule.limit_tokens_per_minute,
        }
    return Decision(
        decision_id=decision_id(key, action, trigger_event_id),
        subject_type="account",
        subject_id=subject_id,
        action=action,
        issued_at=now,
        expires_at=expires,
        score=score,
        reason=(rule.reason_code,),
        limit=limit,
        evidence=evidence,
    )
