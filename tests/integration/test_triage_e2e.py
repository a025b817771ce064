"""On-call triage for real: alerts on the broker, the worker's triage page in headless Chromium, a click
that dismisses an alert, and the verdict and allowlist entry it must leave on Kafka."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from detectors.alerts import alert_record, should_alert
from detectors.engine import Engine, MemoryStore
from sim.hard_cases import build, run
from sim.scenario import generate, load_scenario
from stream.topics import ALERTS, wait_for_topics
from tests.conftest import REPO
from tests.integration.browser import Browser
from tests.integration.conftest import WorkerProcess, read_until

pytestmark = pytest.mark.integration


def publish_alerts(bootstrap: str, suffix: str) -> list[dict[str, object]]:
    """Real alerts from the hard-case scenario, renamed so that this run's are its own."""
    decisions = [d for ds in run(build(41)).values() for d in ds if should_alert(d)][:3]
    alerts = []
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for d in decisions:
        alert = alert_record(d, "enforce")
        alert["alert_id"] = alert["decision"]["evidence_id"] = f"{d.decision_id}-{suffix}"
        alert["decision"]["decision_id"] = alert["alert_id"]
        alert["subject"]["id"] = f"{d.subject_id}-{suffix}"
        producer.send(ALERTS.name, key=f"account:{alert['subject']['id']}".encode(), value=orjson.dumps(alert))
        alerts.append(alert)
    producer.flush()
    producer.close()
    return alerts


def test_analyst_dismisses_an_alert_in_the_browser_and_it_is_recorded(worker: WorkerProcess, tmp_path: Path) -> None:
    worker.wait_ready()
    wait_for_topics(worker.bootstrap, {ALERTS.name, "distillguard.feedback", "distillguard.allowlist"})
    suffix = uuid.uuid4().hex[:6]
    alerts = publish_alerts(worker.bootstrap, suffix)
    target = alerts[0]

    async def session() -> tuple[str, str]:
        async with Browser(tmp_path / "chromium") as browser:
            await browser.goto(f"http://127.0.0.1:{worker.triage_port}/")  # no proxy identity: refused
            assert "sign in through the authenticating proxy" in str(await browser.evaluate("document.body.innerText"))
            await browser.sign_in("X-Forwarded-User", "alice")
            await browser.goto(f"http://127.0.0.1:{worker.triage_port}/")
            row = f"tr[data-alert='{target['alert_id']}']"
            await browser.wait_for(f'document.querySelector("{row}") !== null')
            assert await browser.evaluate(f'document.querySelector("{row} td.status-open") !== null')
            await browser.evaluate(f'document.querySelector("{row} button.dismiss").click()')
            await browser.wait_for(f"(document.querySelector(\"{row}\")?.innerText || '').includes('false_positive')")
            await browser.screenshot(tmp_path / "triage.png")
            text = await browser.evaluate(f'document.querySelector("{row}").innerText')
            detail = f"http://127.0.0.1:{worker.triage_port}/alerts/{target['alert_id']}"
            await browser.goto(detail)
            return str(text), str(await browser.evaluate("document.body.innerText"))

    row_text, detail_text = asyncio.run(session())
    assert "false_positive by alice" in row_text
    assert "Template frames (content masked)" in detail_text and "Top features against the cohort" in detail_text

    key = f"account:{target['subject']['id']}".encode()  # type: ignore[index]
    verdicts = read_until(worker.bootstrap, "distillguard.feedback", lambda rs: any(r.key == key for r in rs))
    verdict = next(orjson.loads(r.value) for r in verdicts if r.key == key)
    assert (verdict["verdict"], verdict["by"], verdict["alert_id"]) == ("false_positive", "alice", target["alert_id"])
    assert verdict["features"], "the verdict must carry the features the model learns from"
    allow = read_until(worker.bootstrap, "distillguard.allowlist", lambda rs: any(r.key == key for r in rs))
    entry = next(orjson.loads(r.value) for r in allow if r.key == key)
    assert entry["by"] == "alice" and entry["until"] >= target["decision"]["expires_at"]  # type: ignore[index]

    # The same audit log, through the CLI.
    log = subprocess.run([sys.executable, "-m", "stream.cli", "triage", "log", "--broker", worker.bootstrap],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert f"alice        dismiss   {target['alert_id']}" in log


def publish_campaign(bootstrap: str, suffix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The demo scenario's alerts of its largest cluster and a few account alerts, renamed for this run."""
    events, _ = generate(load_scenario(REPO / "sim" / "scenarios" / "demo.toml"))
    engine = Engine(MemoryStore())
    decisions = [d for e in events for d in engine.process(e) if should_alert(d)]
    biggest = Counter(d.cluster_id for d in decisions if d.cluster_id).most_common(1)[0][0]
    cluster = [d for d in decisions if d.cluster_id == biggest][:12]
    solo = [d for d in decisions if not d.cluster_id][:2]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    out = []
    for d in cluster + solo:
        alert = alert_record(d, "enforce")
        alert["alert_id"] = alert["decision"]["evidence_id"] = alert["decision"]["decision_id"] = (
            f"{d.decision_id}-{suffix}"
        )
        alert["subject"]["id"] = f"{d.subject_id}-{suffix}"
        if d.cluster_id:
            alert["cluster"]["id"] = f"{d.cluster_id}-{suffix}"
        producer.send(ALERTS.name, key=f"account:{alert['subject']['id']}".encode(), value=orjson.dumps(alert))
        out.append(alert)
    producer.flush()
    producer.close()
    return out[: len(cluster)], out[len(cluster) :]


def test_analyst_confirms_a_whole_campaign_from_its_incident_page(worker: WorkerProcess, tmp_path: Path) -> None:
    """Issue 24: one incident per campaign, its timeline, and one click that records a verdict per member."""
    worker.wait_ready()
    wait_for_topics(worker.bootstrap, {ALERTS.name, "distillguard.feedback"})
    suffix = uuid.uuid4().hex[:6]
    cluster, solo = publish_campaign(worker.bootstrap, suffix)
    members = sorted({a["subject"]["id"] for a in cluster})
    base = f"http://127.0.0.1:{worker.triage_port}"

    async def session() -> dict[str, str]:
        seen = {}
        async with Browser(tmp_path / "chromium") as browser:
            await browser.sign_in("X-Forwarded-User", "carol")
            await browser.goto(f"{base}/")
            link = "a[href^='/incidents/']"
            cluster_key = f"cluster:{cluster[0]['cluster']['id']}"
            anchor = f"[...document.querySelectorAll(\"{link}\")].find(a => a.innerText === '{cluster_key}')"
            await browser.wait_for(f"{anchor} !== undefined")
            href = await browser.evaluate(f"{anchor}.getAttribute('href')")
            for name, path in (("incident", str(href)), ("cluster alert", f"/alerts/{cluster[0]['alert_id']}"),
                               ("account alert", f"/alerts/{solo[0]['alert_id']}")):  # fmt: skip
                await browser.goto(base + path)
                await browser.wait_for("document.querySelector('h1') !== null")
                seen[name] = str(await browser.evaluate("document.body.innerText"))
                seen[name + " svg"] = str(
                    await browser.evaluate("document.querySelectorAll('svg.timeline polyline').length")
                )
            await browser.goto(base + str(href))
            await browser.screenshot(tmp_path / "incident.png")
            await browser.evaluate("document.querySelector('button.confirm').click()")
            await browser.wait_for("location.pathname === '/'")
        return seen

    seen = asyncio.run(session())
    assert f"{len(members)} members" in seen["incident"] and "Shared infrastructure" in seen["incident"]
    assert all(seen[f"{name} svg"] == "3" for name in ("incident", "cluster alert", "account alert"))
    assert "typical (cohort accounts under no decision)" in seen["account alert"]

    def verdicts(rs: list[Any]) -> list[dict[str, Any]]:
        return [v for r in rs if (v := orjson.loads(r.value)).get("by") == "carol" and v.get("incident_id")]

    found = verdicts(
        read_until(worker.bootstrap, "distillguard.feedback", lambda rs: len(verdicts(rs)) >= len(members))
    )
    assert sorted(v["subject"]["id"] for v in found) == members  # one verdict per member, once
    assert {v["verdict"] for v in found} == {"confirmed"} and len({v["incident_id"] for v in found}) == 1
