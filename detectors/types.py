"""Types shared across the detector core: the request event, actions and throttle decisions."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

__all__ = ["Action", "ACTIONS", "Decision", "RequestEvent", "StateStore"]

#: A decoded request event: a plain dict straight from orjson (see ``schemas/request-event.schema.json``).
#: A dict, not a dataclass, because building an object per event costs more than the detector itself.
RequestEvent = dict[str, Any]

Action = Literal["observe", "challenge", "limit", "block"]

#: The action ladder, mildest first; an action's index is its severity.
ACTIONS: tuple[Action, ...] = ("observe", "challenge", "limit", "block")


@dataclass(frozen=True)
class Decision:
    """One throttle decision about one subject, as published on ``distillguard.throttle``.

    ``issued_at`` and ``expires_at`` are event time (Unix seconds), never wall-clock time, so that
    replaying the same events gives the same decisions, ids included. The worker publishes a decision
    to live on the wall clock (:func:`enforceable`): detection runs on event time, enforcement on the
    gateways' clock.
    """

    decision_id: str
    subject_type: str
    subject_id: str
    action: Action
    issued_at: float
    expires_at: float
    score: float
    reason: tuple[str, ...]
    limit: dict[str, int] | None = None
    cluster_id: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    renewal: bool = False  # same action re-issued with a later expiry (alerts are not repeated for it)

    @property
    def key(self) -> str:
        """The compacted-topic key the gateway looks up, e.g. ``account:acct-1``."""
        return f"{self.subject_type}:{self.subject_id}"

    def to_record(self, *, mode: str = "enforce", origin: str = "auto") -> dict[str, Any]:
        """The JSON object written to the throttle topic and to replay's decisions file."""
        record: dict[str, Any] = {
            "schema_version": 1,
            "decision_id": self.decision_id,
            "subject": {"type": self.subject_type, "id": self.subject_id},
            "action": self.action,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "reason": list(self.reason),
            "score": round(self.score, 4),
            "mode": mode,
            "origin": origin,
            "evidence_id": self.decision_id,  # the alert on distillguard.alerts with the full explanation
            "evidence": self.evidence,
        }
        if self.limit is not None:
            record["limit"] = self.limit
        if self.cluster_id is not None:
            record["cluster_id"] = self.cluster_id
        return record


class StateStore(Protocol):
    """Where the engine keeps packed per-subject state: a dict in replay, a Faust table in the worker."""

    def get(self, key: str) -> bytes | None:
        """Packed state for ``key``, or ``None`` if it has none."""

    def put(self, key: str, value: bytes) -> None:
        """Store ``value`` for ``key``."""

    def __len__(self) -> int:
        """How many states are stored."""

    def evict(self, before: float, keep: int) -> list[str]:
        """Forget states idle since ``before`` and, beyond ``keep`` states, those with least evidence
        (:func:`detectors.account_state.to_evict`); returns the keys forgotten."""


def enforceable(decision: Decision, now: float, ttl_seconds: float) -> Decision:
    """The decision as gateways must enforce it at wall-clock ``now``: its expiry is at least ``now`` +
    its TTL. Live, event time trails the wall clock by moments and nothing changes; a worker catching up
    on a backlog (a restart, a backfill) would otherwise publish decisions already expired, lifted on
    arrival. Its id, issue time and everything else stay as the engine decided them.

    >>> d = Decision("d1", "account", "a", "block", issued_at=1000.0, expires_at=4600.0, score=0.99, reason=())
    >>> enforceable(d, now=4000.0, ttl_seconds=3600).expires_at, enforceable(d, now=1000.5, ttl_seconds=3600) is d
    (7600.0, True)
    """
    if decision.expires_at >= now + ttl_seconds - 1.0:  # live: within a second of a full TTL from now
        return decision
    return replace(decision, expires_at=now + ttl_seconds)
