"""The demo scenario's alerts, replayed in process, behind Triage's reading interface: what the triage
page's tests and its screenshot command serve without a broker."""

from __future__ import annotations

from typing import Any

from detectors.alerts import alert_record, should_alert
from detectors.engine import Engine, MemoryStore
from sim.scenario import generate, load_scenario
from stream.incidents import Incident, group
from tests.conftest import REPO

__all__ = ["DemoTriage"]


class DemoTriage:
    """Reads as :class:`stream.triage.Triage` does; actions are recorded, not sent."""

    def __init__(self) -> None:
        events, _ = generate(load_scenario(REPO / "sim" / "scenarios" / "demo.toml"))
        engine = Engine(MemoryStore())
        decisions = [d for e in events for d in engine.process(e) if should_alert(d)]
        self.records = [{**alert_record(d, "enforce"), "status": "open", "verdict_by": None} for d in decisions]
        self.incident_acts: list[tuple[str, str, str, list[str] | None]] = []

    def alerts(self, limit: int = 200) -> list[dict[str, Any]]:
        return list(reversed(self.records))  # every alert, whatever the limit: the demo has a few hundred

    def alert(self, alert_id: str) -> dict[str, Any]:
        return next(a for a in self.records if a["alert_id"] == alert_id)

    def incident(self, incident_id: str) -> Incident:
        return next(i for i in group(self.records) if i.incident_id == incident_id)

    def act_incident(
        self, incident_id: str, action: str, *, by: str, note: str = "", members: list[str] | None = None
    ) -> None:
        self.incident_acts.append((incident_id, action, by, members))
