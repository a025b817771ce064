"""Alert rules: valid for promtool, unit-tested with promtool, each with labels, annotations and a runbook."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.promtool import tool

RULES_DIR = REPO / "deploy" / "prometheus"
RULES = yaml.safe_load((RULES_DIR / "rules.yml").read_text())
ALERTS: list[dict[str, Any]] = [r for g in RULES["groups"] for r in g["rules"] if "alert" in r]


def promtool(*args: str, cwd: Path = RULES_DIR) -> str:
    done = subprocess.run([tool("promtool"), *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_rules_pass_promtool_check_rules() -> None:
    assert "SUCCESS" in promtool("check", "rules", "rules.yml")


def test_rules_pass_their_promtool_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", "rules.test.yml")


def test_every_alert_the_issue_asks_for_exists() -> None:
    names = {a["alert"] for a in ALERTS}
    assert names == {
        "DistillguardWorkerDown", "DistillguardNotProcessing", "DistillguardConsumerLagRising", "DistillguardDLQRate",
        "DistillguardDecisionSurge", "DistillguardBlockStorm", "DistillguardGatewayRejectingSignatures",
        "DistillguardModelStale", "DistillguardWorkerStalled",
    }  # fmt: skip


def test_every_alert_has_a_unit_test() -> None:
    tests = (RULES_DIR / "rules.test.yml").read_text()
    assert all(f"alertname: {a['alert']}" in tests for a in ALERTS)


@pytest.mark.parametrize("alert", ALERTS, ids=[a["alert"] for a in ALERTS])
def test_alert_has_severity_annotations_and_a_runbook_in_the_repo(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in ("critical", "warning")
    annotations = alert["annotations"]
    assert {"summary", "description", "runbook_url"} <= set(annotations)
    runbook = REPO / "docs" / "runbooks" / f"{alert['alert']}.md"
    assert annotations["runbook_url"].endswith(f"docs/runbooks/{alert['alert']}.md") and runbook.exists()
    assert "## What to do" in runbook.read_text()


def test_rules_only_use_metrics_the_code_exports() -> None:
    from prometheus_client import CollectorRegistry

    from detectors.config import load_scoring
    from stream.metrics import WorkerMetrics

    registry = CollectorRegistry()
    WorkerMetrics.create(load_scoring().policy, registry)
    families = list(registry.collect())
    exported = {s.name for family in families for s in family.samples} | {family.name for family in families}
    exported |= {"distillguard_gateway_rejected_signatures_total", "up"}  # gateway (tested there) and Prometheus
    used = {m for a in ALERTS for m in re.findall(r"\b(distillguard_[a-z_]+|up)\b", a["expr"])}
    assert used <= exported, used - exported
