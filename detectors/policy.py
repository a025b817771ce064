"""From a subject's score to a throttle decision: the action ladder, caps, TTLs and hysteresis."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from detectors.config import PolicyConfig
from detectors.registry import REASON_CODES
from detectors.types import ACTIONS, Decision

__all__ = [
    "ActionInForce",
    "REASON_CODES",
    "decide",
    "decision_id",
    "escalated",
    "in_force",
    "level_for_score",
    "needs_decision",
    "reason_codes",
    "record_mode",
    "tick_level",
]


class ActionInForce(Protocol):
    """Whatever remembers the action in force on a subject: an account's state, or the cluster stage's
    view of a member."""

    action_level: int
    action_expires: float


class RungInForce(ActionInForce, Protocol):
    """An action in force that also remembers since when it has held its rung (escalation)."""

    rung_since: float


def level_for_score(score: float, requests: float, account_type: str, cfg: PolicyConfig) -> int:
    """Index into :data:`ACTIONS`: the score picks the rung; too little evidence stops at challenge;
    the account type may cap it.

    >>> from detectors.config import load_scoring
    >>> cfg = load_scoring().policy.with_thresholds({"challenge": 0.5, "limit": 0.75, "block": 0.92})
    >>> [ACTIONS[level_for_score(s, 100, "standard", cfg)] for s in (0.1, cfg.challenge, cfg.limit, cfg.block)]
    ['observe', 'challenge', 'limit', 'block']
    >>> ACTIONS[level_for_score(0.99, 5, "standard", cfg)], ACTIONS[level_for_score(0.99, 500, "enterprise", cfg)]
    ('challenge', 'challenge')
    """
    level = 3 if score >= cfg.block else 2 if score >= cfg.limit else 1 if score >= cfg.challenge else 0
    return _capped(level, requests, account_type, cfg)


def tick_level(
    state: RungInForce, score: float, requests: float, account_type: str, now: float,
    recent_requests: Callable[[float], int], cfg: PolicyConfig,
) -> int:  # fmt: skip
    """The rung a scoring tick warrants: the score's (:func:`level_for_score`), one higher when the subject
    persists at the rung in force (:func:`escalated`). ``recent_requests(seconds)`` counts the subject's
    requests in the last ``seconds``; it is asked only when escalation is possible.

    >>> from detectors.config import load_scoring
    >>> cfg = load_scoring().policy.with_thresholds({"challenge": 0.5, "limit": 0.75, "block": 0.92})
    >>> from detectors.account_state import AccountState
    >>> s = AccountState.new(load_scoring().window, created_ts=0.0)
    >>> s.action_level, s.action_expires, s.rung_since = 1, 5000.0, 0.0
    >>> [ACTIONS[tick_level(s, 0.6, 100, "standard", t, lambda _: 60, cfg)] for t in (10.0, cfg.escalate_after_seconds)]
    ['challenge', 'limit']
    """
    level = level_for_score(score, requests, account_type, cfg)
    held = in_force(state, now)
    if level and (level == held - 1 or (level == held and now - state.rung_since >= cfg.escalate_after_seconds)):
        level = escalated(state, level, now, recent_requests(cfg.escalate_after_seconds), requests, account_type, cfg)
    return level


def inherited(level: int, rung: int, requests: float, account_type: str, cfg: PolicyConfig) -> int:
    """A fleet member's rung: at least ``rung``, the highest in force on its cluster, when its cluster's score
    warrants any action at all (``level`` > 0) — so an account born into an enforced fleet starts where the
    fleet is instead of at challenge — within what the evidence and its account type allow.

    >>> from detectors.config import load_scoring
    >>> cfg = load_scoring().policy
    >>> cases = ((1, "standard"), (0, "standard"), (1, "enterprise"))
    >>> [ACTIONS[inherited(level, 3, 500, kind, cfg)] for level, kind in cases]
    ['block', 'observe', 'challenge']
    """
    return max(level, _capped(rung, requests, account_type, cfg)) if level else level


def _capped(level: int, requests: float, account_type: str, cfg: PolicyConfig) -> int:
    """``level`` within what the evidence, the account type and the switched-off rungs allow."""
    if level >= 2 and requests < cfg.min_requests_to_enforce:
        level = 1
    level = min(level, cfg.max_action.get(account_type, 3))
    while level > 0 and cfg.action_mode.get(ACTIONS[level]) == "off":  # a switched-off rung steps down
        level -= 1
    return level


def escalated(
    state: RungInForce, level: int, now: float, recent_requests: int, requests: float, account_type: str,
    cfg: PolicyConfig,
) -> int:  # fmt: skip
    """One rung above the action in force when the subject ignores it: it has held the rung for
    ``escalate_after_seconds``, its score still warrants that rung (``level``), and it sent at least
    ``escalate_min_requests`` in that span (``recent_requests``). A challenge ignored while harvesting is a
    delay, not a decision; a subject whose traffic stops, or whose score falls, is not escalated. A rung
    reached so is *held* (renewed) while the score warrants the rung below it and the subject keeps sending:
    otherwise it would lapse at its expiry and be climbed again, a block that flaps every hour.

    >>> from detectors.config import load_scoring
    >>> cfg = load_scoring().policy
    >>> from detectors.account_state import AccountState
    >>> s = AccountState.new(load_scoring().window, created_ts=0.0)
    >>> s.action_level, s.action_expires, s.rung_since = 1, 5000.0, 0.0
    >>> later = cfg.escalate_after_seconds
    >>> [ACTIONS[escalated(s, 1, t, n, 100, "standard", cfg)] for t, n in ((later, 60), (later - 1, 60), (later, 3))]
    ['limit', 'challenge', 'challenge']
    >>> [ACTIONS[escalated(s, lvl, later, 60, 100, kind, cfg)] for lvl, kind in ((0, "standard"), (1, "enterprise"))]
    ['observe', 'challenge']
    >>> s.action_level = 2  # a limit reached by escalation, the score still at challenge's rung
    >>> [ACTIONS[escalated(s, 1, 60.0, n, 100, "standard", cfg)] for n in (60, 3)]
    ['limit', 'challenge']
    """
    held = in_force(state, now)
    if not level or not held - 1 <= level <= held or recent_requests < cfg.escalate_min_requests:
        return level
    if level == held - 1:
        return held
    if now - state.rung_since < cfg.escalate_after_seconds:
        return level
    return max(level, _capped(held + 1, requests, account_type, cfg))


def record_mode(action: str, global_mode: str, cfg: PolicyConfig) -> str:
    """``shadow`` when the whole detector or this action is in shadow mode, else ``enforce``.

    >>> from detectors.config import load_scoring
    >>> cfg = load_scoring().policy
    >>> record_mode("block", "enforce", cfg), record_mode("block", "shadow", cfg)
    ('enforce', 'shadow')
    """
    return "shadow" if global_mode == "shadow" or cfg.action_mode.get(action) == "shadow" else "enforce"


def reason_codes(parts: Mapping[str, float], codes: Mapping[str, str] = REASON_CODES, top: int = 3) -> tuple[str, ...]:
    """Codes (from ``codes``) of the ``top`` inputs that pushed the score up most.

    >>> reason_codes({"volume": 0.5, "cot_x_volume": 2.0, "focus": 0.1, "drift": -1})
    ('COT_AT_SCALE', 'HIGH_VOLUME', 'NARROW_FOCUS')
    """
    ranked = sorted((p for p in parts.items() if p[1] > 0), key=lambda p: p[1], reverse=True)
    return tuple(codes[name] for name, _ in ranked[:top])


def decision_id(subject_key: str, action: str, trigger_event_id: str) -> str:
    """Deterministic id: the same events replayed after a crash give the same id, never a new one.

    >>> decision_id("account:a", "limit", "e1") == decision_id("account:a", "limit", "e1")
    True
    """
    digest = hashlib.blake2b(f"{subject_key}|{action}|{trigger_event_id}".encode(), digest_size=12)
    return digest.hexdigest()


def needs_decision(state: ActionInForce, level: int, now: float, cfg: PolicyConfig) -> bool:
    """Whether ``level`` warrants publishing: an escalation, or a renewal near expiry.

    >>> from detectors.config import load_scoring
    >>> cfg = load_scoring().policy
    >>> from detectors.account_state import AccountState
    >>> s = AccountState.new(load_scoring().window, created_ts=0.0)
    >>> s.action_level, s.action_expires = 2, 1000.0 + cfg.ttl_seconds
    >>> needs_decision(s, 2, 1000.0, cfg), needs_decision(s, 3, 1000.0, cfg), needs_decision(s, 1, 1000.0, cfg)
    (False, True, False)
    >>> needs_decision(s, 2, 1000.0 + cfg.ttl_seconds * (1 - cfg.renew_when_remaining) + 1, cfg)
    True
    """
    held = in_force(state, now)
    if level > held:
        return True
    remaining = state.action_expires - now
    return level > 0 and level == held and remaining < cfg.ttl_seconds * cfg.renew_when_remaining


def in_force(state: ActionInForce, now: float) -> int:
    """The rung in force at ``now``: the action held, or 0 once it has expired (reading never changes state).

    >>> from types import SimpleNamespace
    >>> held = SimpleNamespace(action_level=3, action_expires=100.0)
    >>> in_force(held, 99.0), in_force(held, 100.0), held.action_level
    (3, 0, 3)
    """
    return state.action_level if state.action_expires > now else 0


def decide(
    state: RungInForce,
    *,
    subject_id: str,
    level: int,
    score: float,
    now: float,
    trigger_event_id: str,
    cfg: PolicyConfig,
    reasons: tuple[str, ...],
    evidence: dict[str, Any],
    cluster_id: str | None = None,
) -> Decision | None:
    """A decision when ``level`` rises above the action in force (escalation), or when it holds at that
    level and the decision is in the last part of its TTL (renewal: a persistent offender has no gap).

    Never a step down while a decision is in force (no flapping); the action lapses at its expiry, so a
    subject that calms down starts from the bottom again.
    """
    if not needs_decision(state, level, now, cfg):
        return None
    renewal = level == in_force(state, now)
    action = ACTIONS[level]
    expires = now + cfg.ttl_seconds
    if not renewal:
        state.rung_since = now
    state.action_level = level
    state.action_expires = expires
    limit = None
    if action == "limit":
        limit = {
            "requests_per_minute": cfg.limit_requests_per_minute,
            "tokens_per_minute": cfg.limit_tokens_per_minute,
        }
    return Decision(
        decision_id=decision_id(f"account:{subject_id}", action, trigger_event_id),
        subject_type="account",
        subject_id=subject_id,
        action=action,
        issued_at=now,
        expires_at=expires,
        score=score,
        reason=reasons,
        limit=limit,
        evidence=evidence,
        renewal=renewal,
        cluster_id=cluster_id,
    )
