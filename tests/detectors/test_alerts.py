"""Alerts carry what triage needs, show the template frame and never the content, and do not repeat."""

from __future__ import annotations

from detectors.alerts import alert_record, should_alert
from sim.hard_cases import build, run

SCENARIO = build(31)
DECISIONS = run(SCENARIO)


def test_every_enforcing_escalation_alerts_with_the_evidence_for_triage() -> None:
    alerted = [d for ds in DECISIONS.values() for d in ds if should_alert(d)]
    assert {d.subject_id for d in alerted} >= {"harvester", "rotator", "drifter"}
    for d in alerted:
        alert = alert_record(d, "enforce")
        assert alert["alert_id"] == alert["decision"]["evidence_id"] == d.decision_id
        assert alert["severity"] in ("high", "critical") and 0 < alert["risk_score"] <= 1
        assert alert["dedup_key"] == f"account:{d.subject_id}"
        window = alert["evidence_window"]
        assert window["requests_last_hour"] > 0 and 0 <= window["cot_rate"] <= 1
        assert {"feature", "value", "typical"} <= set(alert["top_features"][0])
        assert alert["template_samples"] and alert["suppressed_until"] == d.expires_at


def test_renewals_of_the_same_action_do_not_alert_again() -> None:
    harvester = DECISIONS["harvester"]
    renewals = [d for d in harvester if d.renewal]
    assert renewals and not any(should_alert(d) for d in renewals)
    assert sum(should_alert(d) for d in harvester) <= 2  # limit, then block: one alert per escalation


def test_template_samples_show_the_frame_but_no_content_words() -> None:
    from detectors.features import load_phrasebook

    frame = load_phrasebook().frame_words
    for d in DECISIONS["harvester"]:
        sample = d.evidence["template_sample"]
        assert any(w in sample.split() for w in ("expert", "reasoning", "step"))  # the frame is visible
        shown = [w for w in sample.split() if w != "·"]
        assert all(w.encode() in frame for w in shown), shown  # nothing outside the frame vocabulary
        assert "·" in sample  # the task content is masked
