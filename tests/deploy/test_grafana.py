"""The Grafana dashboard: stable uids, a datasource variable, and PromQL that promtool parses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO
from tests.promtool import tool

GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD: dict[str, Any] = json.loads((GRAFANA / "dashboards" / "distillguard.json").read_text())
TARGETS = [t for p in DASHBOARD["panels"] for t in p["targets"]]


def test_dashboard_has_a_stable_uid_and_unique_panel_ids() -> None:
    assert DASHBOARD["uid"] == "distillguard-overview"
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)) and all(p["title"] for p in DASHBOARD["panels"])


def test_every_panel_and_query_uses_the_datasource_variable() -> None:
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]


def test_every_promql_expression_parses(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": t["expr"]} for i, t in enumerate(TARGETS)
    ]}]}  # fmt: skip
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(TARGETS)} rules found" in done.stdout


def test_provisioning_files_point_at_the_dashboard_folder_and_prometheus() -> None:
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "distillguard.yaml").read_text())
    assert providers["apiVersion"] == 1 and providers["providers"][0]["type"] == "file"
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert sources["datasources"][0]["type"] == "prometheus"


def test_the_share_above_each_rung_reads_the_bucket_at_that_rungs_fitted_threshold() -> None:
    """The thresholds are fitted (detectors/rules/fusion.toml): a refit must move these panels with it."""
    from prometheus_client.utils import floatToGoString

    from detectors.config import load_scoring
    from stream.metrics import score_buckets

    policy = load_scoring().policy
    rungs = {"≥ challenge": policy.challenge, "≥ limit": policy.limit, "≥ block": policy.block}
    found = {}
    for target in TARGETS:
        if target.get("legendFormat") in rungs:
            found[target["legendFormat"]] = target["expr"].split('le="')[1].split('"')[0]
    assert found == {name: floatToGoString(value) for name, value in rungs.items()}
    assert all(value in score_buckets(policy) for value in rungs.values())
