"""Kubernetes manifests, validated offline: core kinds against the Kubernetes OpenAPI schemas
(kubernetes-validate bundles them), custom resources against the files they are rendered from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stream.topics import ALL_TOPICS

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES = "1.33"


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


CORE = [(name, doc) for name, doc in documents() if "." not in doc["apiVersion"].split("/")[0]
        or doc["apiVersion"].startswith(("apps/", "policy/"))]  # fmt: skip


@pytest.mark.parametrize(("name", "doc"), CORE, ids=[f"{n}:{d['kind']}" for n, d in CORE])
def test_core_resources_match_the_kubernetes_schema(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_rendered_manifests_are_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(K8S / "render.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_every_topic_has_a_strimzi_kafkatopic_with_its_config() -> None:
    topics = {d["spec"]["topicName"]: d for n, d in documents() if d["kind"] == "KafkaTopic"}
    assert set(topics) == {t.name for t in ALL_TOPICS}
    for spec in ALL_TOPICS:
        doc = topics[spec.name]
        assert doc["apiVersion"] == "kafka.strimzi.io/v1beta2" and doc["metadata"]["labels"]["strimzi.io/cluster"]
        assert spec.config.items() <= doc["spec"]["config"].items()
        assert doc["spec"]["replicas"] >= 3 and doc["spec"]["config"]["min.insync.replicas"] == "2"


def test_prometheus_rule_and_dashboard_carry_the_tested_files() -> None:
    (rule,) = [d for _, d in documents() if d["kind"] == "PrometheusRule"]
    source = yaml.safe_load((K8S.parent / "prometheus" / "rules.yml").read_text())
    assert rule["spec"]["groups"] == source["groups"]  # the rules promtool tests in tests/deploy
    (dashboard,) = [
        d for _, d in documents() if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"].get("labels", {})
    ]
    assert json.loads(dashboard["data"]["distillguard.json"]) == json.loads(
        (K8S.parent / "grafana" / "dashboards" / "distillguard.json").read_text()
    )


def test_the_worker_is_probed_on_its_health_check_and_scraped_by_the_service_monitor() -> None:
    docs = dict((d["kind"], d) for _, d in documents() if d["metadata"]["name"].startswith("distillguard-worker"))
    pod = docs["StatefulSet"]["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    assert worker["livenessProbe"]["httpGet"]["path"] == "/healthz" == worker["readinessProbe"]["httpGet"]["path"]
    env = {e["name"]: e for e in worker["env"]}
    assert env["DISTILLGUARD_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    config = next(
        d for _, d in documents() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "distillguard-worker"
    )
    assert config["data"]["DISTILLGUARD_METRICS_HOST"] == "0.0.0.0"
    assert config["data"]["DISTILLGUARD_DATA_DIR"] in {m["mountPath"] for m in worker["volumeMounts"]}
    monitor = docs["ServiceMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"] == docs["Service"]["metadata"]["labels"]
    assert monitor["spec"]["endpoints"][0]["port"] == docs["Service"]["spec"]["ports"][0]["name"]


def test_each_role_is_a_kafka_user_holding_exactly_its_grants_and_the_worker_runs_as_its_own() -> None:
    from stream.acls import ROLES, grants

    users = {d["metadata"]["name"]: d for _, d in documents() if d["kind"] == "KafkaUser"}
    assert set(users) == {f"distillguard-{role}" for role in ROLES}
    writers = set()
    for role in ROLES:
        acls = users[f"distillguard-{role}"]["spec"]["authorization"]["acls"]
        held = {(a["resource"]["type"], a["resource"]["name"], a["resource"]["patternType"], op)
                for a in acls for op in a["operations"]}  # fmt: skip
        assert held == {(g.resource, g.name, "prefix" if g.prefixed else "literal", op)
                        for g in grants("distillguard") if g.role == role for op in g.operations}  # fmt: skip
        writers |= {role for (_, name, _, op) in held if name == "distillguard.throttle" and op in ("Write", "All")}
    assert writers == {"worker"}  # only workers publish decisions
    config = next(
        d for _, d in documents() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "distillguard-worker"
    )
    assert config["data"]["DISTILLGUARD_KAFKA_SASL_USERNAME"] == "distillguard-worker"
    assert config["data"]["DISTILLGUARD_APP_ID"] == "distillguard"  # the app id the worker's grants name
