"""The docker-compose stack, checked offline (no Docker engine here): valid against the Compose
specification's schema, the six services wired to each other, every mounted file present."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import REPO

COMPOSE = REPO / "deploy" / "compose" / "docker-compose.yml"
SCHEMA = Path.home() / ".cache" / "distillguard" / "compose_spec.json"


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_the_stack_is_valid_against_the_compose_specification(stack: dict[str, Any]) -> None:
    assert SCHEMA.exists(), f"{SCHEMA} missing: run `make setup` (deploy/compose/fetch_schema.py)"
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(stack, schema)
    broken = {**stack, "services": {"worker": {"image": "x", "ports": "not-a-list"}}}
    with pytest.raises(jsonschema.ValidationError):  # the check is real: a bad file is refused
        jsonschema.validate(broken, schema)


def test_it_runs_kafka_worker_gateway_prometheus_alertmanager_and_grafana(stack: dict[str, Any]) -> None:
    services = stack["services"]
    assert set(services) == {"kafka", "worker", "gateway", "prometheus", "alertmanager", "grafana"}
    worker, gateway = services["worker"], services["gateway"]
    assert worker["environment"]["DISTILLGUARD_BROKER"] == "kafka://kafka:9092"
    assert worker["environment"]["DISTILLGUARD_METRICS_HOST"] == "0.0.0.0"  # scraped from outside
    assert gateway["command"][gateway["command"].index("--broker") + 1] == "kafka:9092"
    key_id, secret = (
        worker["environment"]["DISTILLGUARD_SIGNING_KEY_ID"],
        worker["environment"]["DISTILLGUARD_SIGNING_SECRET"],
    )
    assert f"{key_id}:{secret}" in gateway["environment"]["DISTILLGUARD_VERIFY_KEYS"].split(",")


def test_every_mounted_file_exists_and_the_image_builds_from_the_repo(stack: dict[str, Any]) -> None:
    here = COMPOSE.parent
    for name, service in stack["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (here / source).exists(), f"{name} mounts {source}, which does not exist"
        if "build" in service:
            build = service["build"]
            assert (here / build["context"] / build["dockerfile"]).exists()
    prometheus = yaml.safe_load((here / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {"worker:9310", "gateway:8080"}


def test_the_dockerfile_copies_every_package_the_console_scripts_import() -> None:
    dockerfile = (COMPOSE.parent / "Dockerfile").read_text()
    for package in ("detectors", "stream", "sim", "gateway"):
        assert f"COPY {package} {package}" in dockerfile
