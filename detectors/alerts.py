"""Alerts for people: one per enforcing decision, with everything needed to triage it on the spot."""

from __future__ import annotations

from typing import Any

from detectors.types import Decision

__all__ = ["SEVERITY", "alert_record", "should_alert"]

#: Alert severity per action (challenge decisions do not page anyone).
SEVERITY = {"limit": "high", "block": "critical"}


def should_alert(decision: Decision) -> bool:
    """Enforcing decisions alert once: escalations do, renewals of the same action do not (suppression).

    >>> from detectors.types import Decision
    >>> d = Decision("id", "account", "a", "block", 0.0, 60.0, 0.97, ("COT_AT_SCALE",))
    >>> should_alert(d), should_alert(Decision(**{**d.__dict__, "renewal": True}))
    (True, False)
    """
    return decision.action in SEVERITY and not decision.renewal


def alert_record(decision: Decision, mode: str) -> dict[str, Any]:
    """The alert on ``distillguard.alerts``; its ``alert_id`` is the decision's ``evidence_id``."""
    evidence = decision.evidence
    return {
        "alert_id": decision.decision_id,
        "dedup_key": decision.key,  # one open alert per subject; later escalations update it
        "severity": SEVERITY.get(decision.action, "info"),
        "risk_score": round(decision.score, 4),
        "subject": {"type": decision.subject_type, "id": decision.subject_id},
        "cluster": {
            "id": decision.cluster_id,
            "members": evidence.get("cluster", {}).get("members", 0),
            "member_sample": evidence.get("cluster", {}).get("member_sample", []),
            "shared_infrastructure": evidence.get("cluster", {}).get("shared_infrastructure", []),
        },
        "raised_at": decision.issued_at,
        "suppressed_until": decision.expires_at,  # renewals until then raise no new alert
        "reasons": list(decision.reason),
        "evidence_window": evidence.get("window", {}),
        "top_features": evidence.get("explanation", []),
        "template_samples": [s for s in [evidence.get("template_sample")] if s],
        "decision": decision.to_record(mode=mode),
    }
