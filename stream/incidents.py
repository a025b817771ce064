"""Alerts grouped into incidents: one per campaign, not one per account (issue 24).

An analyst's unit of work is the campaign. Alerts about the same cluster form one incident, and so do the
account alerts of that cluster's members; an account alert outside any cluster is an incident of its own.
The grouping follows Alertmanager's habits: ``group_by`` the cluster (else the account), and an incident
whose last alert is older than ``resolve_after`` is over — a new alert on the same key opens a new one.
Pure functions over alert records (``detectors/alerts.py``), shared by the web page and the CLI.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from detectors.types import ACTIONS

__all__ = ["Incident", "RESOLVE_AFTER", "group"]

RESOLVE_AFTER = 24 * 3600.0  # an incident silent this long is over (Alertmanager's resolve_timeout, for campaigns)


@dataclass
class Incident:
    """One campaign's alerts, with what an analyst reads first."""

    incident_id: str
    key: str  # "cluster:<id>" or "account:<id>"
    alerts: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    first_seen: float = 0.0
    last_seen: float = 0.0

    @property
    def kind(self) -> str:
        return self.key.split(":", 1)[0]

    @property
    def members(self) -> list[str]:
        """Subject ids in the order they first raised an alert."""
        return list(dict.fromkeys(a["subject"]["id"] for a in self.alerts))

    def joined(self) -> dict[str, float]:
        """When each member raised its first alert."""
        out: dict[str, float] = {}
        for a in self.alerts:
            out.setdefault(a["subject"]["id"], float(a.get("raised_at", 0.0)))
        return out

    @property
    def highest(self) -> str:
        """The highest rung any alert of the incident reached."""
        return max((a["decision"]["action"] for a in self.alerts), key=_rung, default="observe")

    @property
    def actions(self) -> Counter[str]:
        return Counter(a["decision"]["action"] for a in self.alerts)

    @property
    def shared_infrastructure(self) -> list[str]:
        """Masked shared fingerprints named by its cluster alerts (never the raw values)."""
        seen: dict[str, None] = {}
        for a in self.alerts:
            for item in a.get("cluster", {}).get("shared_infrastructure") or []:
                seen[str(item)] = None
        return list(seen)

    def latest(self) -> dict[str, dict[str, Any]]:
        """Each member's most recent alert."""
        return {a["subject"]["id"]: a for a in self.alerts}

    @property
    def status(self) -> str:
        """open while any member's latest alert has no verdict."""
        return "open" if any(a.get("status", "open") == "open" for a in self.latest().values()) else "closed"


def _rung(action: str) -> int:
    return ACTIONS.index(action) if action in ACTIONS else 0


def _key(alert: dict[str, Any]) -> str:
    cluster = (alert.get("cluster") or {}).get("id")
    return f"cluster:{cluster}" if cluster else f"account:{alert['subject']['id']}"


def group(alerts: list[dict[str, Any]], resolve_after: float = RESOLVE_AFTER) -> list[Incident]:
    """Incidents from alerts (any order), most recently active first.

    >>> def alert(i, subject, at, cluster=None, action="limit"):
    ...     return {"alert_id": f"a{i}", "subject": {"id": subject}, "raised_at": at, "cluster": {"id": cluster},
    ...             "decision": {"action": action}}
    >>> found = group([alert(1, "m1", 10, "c1"), alert(2, "m2", 20, "c1", "block"), alert(3, "m1", 30),
    ...                alert(4, "solo", 40), alert(5, "solo", 40 + RESOLVE_AFTER + 1)])
    >>> [(i.key, i.members, i.highest) for i in found]
    [('account:solo', ['solo'], 'limit'), ('account:solo', ['solo'], 'limit'), ('cluster:c1', ['m1', 'm2'], 'block')]

    An account alerted alone and then found in a cluster was that campaign all along:

    >>> [(i.key, i.members) for i in group([alert(1, "early", 5), alert(2, "early", 10, "c2")])]
    [('cluster:c2', ['early'])]
    """
    open_by_key: dict[str, Incident] = {}
    member_of: dict[str, Incident] = {}  # account -> the cluster incident it is a member of
    out: list[Incident] = []
    for alert in sorted(alerts, key=lambda a: (float(a.get("raised_at", 0.0)), str(a.get("alert_id")))):
        at = float(alert.get("raised_at", 0.0))
        key = _key(alert)
        subject = alert["subject"]["id"]
        incident = open_by_key.get(key)
        if key.startswith("account:") and subject in member_of:
            incident = member_of[subject]  # an account alert of a known cluster member joins its campaign
        if incident is None or at - incident.last_seen > resolve_after:
            digest = hashlib.blake2b(f"{key}|{alert.get('alert_id')}".encode(), digest_size=6).hexdigest()
            incident = Incident(incident_id=digest, key=key, first_seen=at)
            open_by_key[key] = incident
            out.append(incident)
        incident.alerts.append(alert)
        incident.last_seen = max(incident.last_seen, at)
        if incident.kind == "cluster" and subject not in member_of:
            member_of[subject] = incident
            alone = open_by_key.pop(f"account:{subject}", None)
            if alone is not None and at - alone.last_seen <= resolve_after:  # it was this campaign all along
                incident.alerts[:0] = alone.alerts
                incident.first_seen = min(incident.first_seen, alone.first_seen)
                out.remove(alone)
    return sorted(out, key=lambda i: (i.last_seen, i.first_seen), reverse=True)
