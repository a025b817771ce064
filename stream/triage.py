"""Triage: read alerts, record analysts' verdicts, lift and allowlist — shared by the CLI and the web page.

Every verdict is a record on ``distillguard.feedback`` (who, when, what, on which alert, with the
decision's feature vector so the supervised model can learn from it). That topic is the audit log:
it is kept for a year and survives any restart. A dismissal also writes an allowlist entry until the
decision would have expired — every worker lifts the decision within seconds and does not renew it —
or, with ``allowlist=True``, for good.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer

from stream.connection import kafka_python_config
from stream.incidents import Incident, group
from stream.topics import ALERTS, ALLOWLIST, FEEDBACK

__all__ = ["Triage", "VERDICTS", "allowlist_entry"]

_ALERT_KEYS = {"alert_id", "subject", "severity", "risk_score", "reasons", "decision", "top_features"}

#: Analyst actions and the verdict each records.
VERDICTS = {"confirm": "confirmed", "dismiss": "false_positive", "allowlist": "false_positive"}


def _read_all(bootstrap: str, topic: str, timeout_ms: int = 1500) -> list[Any]:
    """Every record of ``topic`` from the beginning (small topics: alerts, feedback)."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
        consumer_timeout_ms=timeout_ms, **kafka_python_config(),
    )  # fmt: skip
    try:
        return [r for r in consumer if r.value is not None]
    finally:
        consumer.close()


def allowlist_entry(reason: str, by: str, at: float, until: float | None = None) -> bytes:
    """An allowlist record's value: why, who, when, and until when (absent: for good).

    >>> allowlist_entry("partner", "alice", 1.0)
    b'{"reason":"partner","by":"alice","at":1.0}'
    """
    entry: dict[str, Any] = {"reason": reason, "by": by, "at": at}
    if until is not None:
        entry["until"] = until
    return orjson.dumps(entry)


@dataclass
class Triage:
    """Triage operations against one Kafka cluster (``host:port``). What it writes (verdicts, allowlist
    entries) is signed with the operator's key (``DISTILLGUARD_SIGNING_*``): workers ignore control
    records nobody trusted signed."""

    bootstrap: str

    def signed(self, key: bytes, value: bytes) -> list[tuple[str, bytes]]:
        from stream.settings import WorkerSettings

        return WorkerSettings().control_headers(key, value)

    def alerts(self, limit: int = 200) -> list[dict[str, Any]]:
        """Most recently published first, each with ``status`` (open | confirmed | false_positive) and
        ``verdict_by`` from the verdicts. Records that are not alerts of this format are skipped."""
        verdicts = {v["alert_id"]: v for v in self.log()}
        alerts = []
        for r in reversed(_read_all(self.bootstrap, ALERTS.name)):
            try:
                alert = orjson.loads(r.value)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(alert, dict) or not _ALERT_KEYS <= alert.keys():
                continue  # an older or foreign record on the topic
            verdict = verdicts.get(alert["alert_id"])
            alert["status"] = verdict["verdict"] if verdict else "open"
            alert["verdict_by"] = verdict["by"] if verdict else None
            alerts.append(alert)
            if len(alerts) >= limit:
                break
        return alerts

    def alert(self, alert_id: str) -> dict[str, Any]:
        for alert in self.alerts(limit=100_000):
            if alert["alert_id"] == alert_id:
                return alert
        raise KeyError(f"no alert {alert_id!r} on {ALERTS.name}")

    def log(self) -> list[dict[str, Any]]:
        """Every recorded triage action, oldest first (the audit log)."""
        records = []
        for r in _read_all(self.bootstrap, FEEDBACK.name):
            try:
                record = orjson.loads(r.value)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict) and "alert_id" in record:
                records.append(record)
        return records

    def incidents(self, limit: int = 100_000) -> list[Incident]:
        """The alerts grouped into incidents (:mod:`stream.incidents`), most recently active first."""
        return group(self.alerts(limit=limit))

    def incident(self, incident_id: str) -> Incident:
        for incident in self.incidents():
            if incident.incident_id == incident_id:
                return incident
        raise KeyError(f"no incident {incident_id!r}")

    def act(self, alert_id: str, action: str, *, by: str, note: str = "") -> dict[str, Any]:
        """Record ``action`` (confirm | dismiss | allowlist) on an alert; returns the verdict written."""
        return self._write([self.alert(alert_id)], action, by=by, note=note)[0]

    def act_incident(
        self, incident_id: str, action: str, *, by: str, note: str = "", members: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Record ``action`` on a whole incident: on each member's latest alert (or only ``members``'),
        one verdict per member, each carrying the incident id."""
        incident = self.incident(incident_id)
        latest = incident.latest()
        chosen = list(latest) if not members else [m for m in members if m in latest]
        if not chosen:
            raise ValueError("none of the chosen members is in this incident")
        return self._write([latest[m] for m in chosen], action, by=by, note=note, incident_id=incident_id)

    def _write(
        self, alerts: list[dict[str, Any]], action: str, *, by: str, note: str, incident_id: str | None = None
    ) -> list[dict[str, Any]]:
        """A verdict per alert on the feedback topic (and, for dismiss and allowlist, an allowlist entry),
        signed, in one producer session."""
        if action not in VERDICTS:
            raise ValueError(f"action must be one of {sorted(VERDICTS)}, got {action!r}")
        if not by:
            raise ValueError("say who you are (by=...): every triage action is recorded with its author")
        now = time.time()
        written = []
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", **kafka_python_config())
        try:
            for alert in alerts:
                decision = alert["decision"]
                verdict = {
                    "alert_id": alert["alert_id"],
                    "decision_id": decision["decision_id"],
                    "subject": alert["subject"],
                    "action": action,
                    "verdict": VERDICTS[action],
                    "features": decision.get("evidence", {}).get("features", {}),
                    "by": by,
                    "at": now,
                    "note": note,
                }
                if incident_id is not None:
                    verdict["incident_id"] = incident_id
                subject_key = f"{alert['subject']['type']}:{alert['subject']['id']}".encode()
                value = orjson.dumps(verdict)
                producer.send(FEEDBACK.name, key=subject_key, value=value, headers=self.signed(subject_key, value))
                if action in ("dismiss", "allowlist"):
                    until = max(float(decision["expires_at"]), now + 3600) if action == "dismiss" else None
                    why = f"{action} of {'incident ' + incident_id if incident_id else 'alert ' + alert['alert_id']}"
                    entry = allowlist_entry(f"{why}: {note}".strip(), by, now, until)
                    producer.send(ALLOWLIST.name, key=subject_key, value=entry, headers=self.signed(subject_key, entry))
                written.append(verdict)
            producer.flush()
        finally:
            producer.close()
        return written
