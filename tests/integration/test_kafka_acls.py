"""Kafka ACLs per principal (issue 22, item 5), on a real broker with its authorizer on: with the grants
of ``stream/acls.py`` applied, the gateway may write requests but no decision, triage may write verdicts
and the allowlist but no decision, and the worker — running as its own principal with only its grants —
reads the gateway's events and publishes the decision the gateway enforces."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from gateway.client import ThrottleTable
from sim import personas as P
from stream.connection import KafkaSecurity
from stream.signing import parse_keys
from stream.topics import ALERTS, ALLOWLIST, DLQ, FEEDBACK, REQUESTS, THROTTLE
from tests.conftest import KAFKA_SH, REPO, free_port, free_port_block
from tests.integration.conftest import WorkerProcess

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
APP_ID = "dg-acl"
PASSWORDS = {"gateway": "gw-" + "g" * 12, "worker": "wk-" + "w" * 12, "triage": "tr-" + "t" * 12}


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """(admin bootstrap, SASL_SSL bootstrap, CA file) of a broker whose SASL principals have only the
    grants ``stream.cli acls apply`` gave them."""
    port, run = free_port_block(3), tmp_path_factory.mktemp("acl-kafka")
    users = " ".join(f"{name}:{password}" for name, password in PASSWORDS.items())
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_RUN_DIR": str(run), "KAFKA_SECURE": "1",
           "KAFKA_ACLS": "1", "KAFKA_SASL_USERS": users}  # fmt: skip
    up = subprocess.run([str(KAFKA_SH), "up"], env=env, capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stderr
    try:
        admin = f"127.0.0.1:{port}"
        applied = subprocess.run([sys.executable, "-m", "stream.cli", "acls", "apply", "--broker", admin,
                                  "--app-id", APP_ID], cwd=REPO, capture_output=True, text=True)  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        yield admin, f"127.0.0.1:{port + 2}", run / "tls" / "ca.pem"
    finally:
        subprocess.run([str(KAFKA_SH), "down"], env=env, capture_output=True, timeout=120)


def credentials(role: str, ca: Path) -> dict[str, str]:
    return {"DISTILLGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "DISTILLGUARD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "DISTILLGUARD_KAFKA_SASL_USERNAME": role, "DISTILLGUARD_KAFKA_SASL_PASSWORD": PASSWORDS[role],
            "DISTILLGUARD_KAFKA_SSL_CAFILE": str(ca)}  # fmt: skip


def client(role: str, ca: Path) -> dict[str, Any]:
    return KafkaSecurity.from_env(credentials(role, ca)).kafka_python()


def write(bootstrap: str, role: str, ca: Path, topic: str) -> bool:
    """Whether ``role`` may write one record to ``topic`` (False: the broker refused it)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_block_ms=10_000, **client(role, ca))
    try:
        producer.send(topic, key=b"probe", value=b"{}").get(timeout=20)
        return True
    except TopicAuthorizationFailedError:
        return False
    finally:
        producer.close()


@pytest.fixture(scope="module")
def running_worker(
    acl_broker: tuple[str, str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A worker running as the ``worker`` principal; it creates the topics at start-up."""
    _, bootstrap, ca = acl_broker
    tmp = tmp_path_factory.mktemp("acl-worker")
    worker = WorkerProcess(bootstrap=bootstrap, data_dir=tmp / "w", app_id=APP_ID, metrics_port=free_port(),
                           log_path=tmp / "worker.log", env=credentials("worker", ca))  # fmt: skip
    worker.start()
    try:
        worker.wait_ready(timeout=120)
        yield worker
    finally:
        worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert not worker.crashes() and "AuthorizationFailed" not in log, log[-5000:]


def test_the_worker_reads_the_gateways_events_and_publishes_the_decision_it_enforces(
    acl_broker: tuple[str, str, Path], running_worker: WorkerProcess
) -> None:
    _, bootstrap, ca = acl_broker
    harvester = P.cot_harvester("acl-harvester", random.Random(1), T0, hours=0.5)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **client("gateway", ca))
    for event in harvester:
        producer.send(REQUESTS.name, key=b"acl-harvester", value=orjson.dumps(event))
    producer.flush()
    producer.close()

    async def gateway_sees_the_decision() -> Any:
        table = ThrottleTable(bootstrap, parse_keys("dev:dev-secret-change-me"))
        await table.start()
        try:
            for _ in range(180):
                if (verdict := table.table.get("account:acl-harvester")) is not None:
                    return verdict
                await asyncio.sleep(0.5)
            return None
        finally:
            await table.stop()

    os.environ.update(credentials("gateway", ca))  # the gateway's table reads the decisions as the gateway
    try:
        verdict = asyncio.run(gateway_sees_the_decision())
    finally:
        for name in credentials("gateway", ca):
            os.environ.pop(name, None)
    assert verdict is not None and verdict.action in ("challenge", "limit", "block"), running_worker.log()


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        ("gateway", [REQUESTS.name], [THROTTLE.name, ALLOWLIST.name, FEEDBACK.name, ALERTS.name, DLQ.name,
                                      f"{APP_ID}-cluster-partials", f"{APP_ID}-cluster-links",
                                      f"{APP_ID}-cluster-verdicts"]),
        ("triage", [FEEDBACK.name, ALLOWLIST.name], [THROTTLE.name, REQUESTS.name, ALERTS.name,
                                                     f"{APP_ID}-cluster-partials", f"{APP_ID}-cluster-verdicts"]),
        ("worker", [THROTTLE.name, ALERTS.name, DLQ.name, f"{APP_ID}-cluster-partials", f"{APP_ID}-cluster-links"],
         [REQUESTS.name, ALLOWLIST.name, FEEDBACK.name]),
    ],
)  # fmt: skip
def test_each_principal_writes_only_the_topics_its_role_owns(
    acl_broker: tuple[str, str, Path],
    running_worker: WorkerProcess,
    role: str,
    allowed: list[str],
    refused: list[str],
) -> None:
    _, bootstrap, ca = acl_broker
    assert [t for t in allowed if not write(bootstrap, role, ca, t)] == []
    assert [t for t in refused if write(bootstrap, role, ca, t)] == []


def test_a_principal_with_no_grant_is_refused_everything(acl_broker: tuple[str, str, Path]) -> None:
    admin, bootstrap, ca = acl_broker
    # The set-up user of the SASL listener (kafka.sh's default) has no grant at all.
    security = KafkaSecurity.from_env({**credentials("gateway", ca), "DISTILLGUARD_KAFKA_SASL_USERNAME": "distillguard",
                                       "DISTILLGUARD_KAFKA_SASL_PASSWORD": "dev-password"})  # fmt: skip
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=10_000, **security.kafka_python())
    try:
        with pytest.raises(KafkaError):
            producer.send(REQUESTS.name, value=b"{}").get(timeout=20)
    finally:
        producer.close()
