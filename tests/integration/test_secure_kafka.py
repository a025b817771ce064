"""Production connectivity against a local broker with TLS (self-signed CA) and SASL: the worker, the
gateway's throttle table and the CLI connect with SCRAM-SHA-512 from DISTILLGUARD_KAFKA_* variables; PLAIN
works too; a wrong password is refused; and the password appears in no log or repr."""

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
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from gateway.client import ThrottleTable
from sim import personas as P
from stream.connection import KafkaSecurity
from stream.signing import parse_keys
from tests.conftest import KAFKA_SH, REPO, free_port, free_port_block
from tests.integration.conftest import WorkerProcess

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-" + "x" * 8
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """(plaintext bootstrap for set-up, SASL_SSL bootstrap, CA file) of a broker of our own."""
    port, run = free_port_block(3), tmp_path_factory.mktemp("secure-kafka")
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_RUN_DIR": str(run), "KAFKA_SECURE": "1",
           "KAFKA_SASL_PASSWORD": PASSWORD}  # fmt: skip
    up = subprocess.run([str(KAFKA_SH), "up"], env=env, capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stderr
    try:
        yield f"127.0.0.1:{port}", f"127.0.0.1:{port + 2}", run / "tls" / "ca.pem"
    finally:
        subprocess.run([str(KAFKA_SH), "down"], env=env, capture_output=True, timeout=120)


def security_env(ca: Path, mechanism: str = "SCRAM-SHA-512", password: str = PASSWORD) -> dict[str, str]:
    return {"DISTILLGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "DISTILLGUARD_KAFKA_SASL_MECHANISM": mechanism,
            "DISTILLGUARD_KAFKA_SASL_USERNAME": "distillguard", "DISTILLGUARD_KAFKA_SASL_PASSWORD": password,
            "DISTILLGUARD_KAFKA_SSL_CAFILE": str(ca)}  # fmt: skip


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_clients_connect_with_tls_and_sasl_and_a_wrong_password_is_refused(
    secure_broker: tuple[str, str, Path], mechanism: str
) -> None:
    _, bootstrap, ca = secure_broker
    good = KafkaSecurity.from_env(security_env(ca, mechanism))
    assert PASSWORD not in repr(good)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000, **good.kafka_python())
    assert isinstance(admin.list_topics(), list)  # a full round trip: TLS verified, SASL accepted
    admin.close()
    bad = KafkaSecurity.from_env(security_env(ca, mechanism, password="wrong"))
    with pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **bad.kafka_python())


def test_the_worker_gateway_table_and_cli_work_over_sasl_ssl(
    secure_broker: tuple[str, str, Path], tmp_path: Path
) -> None:
    _, bootstrap, ca = secure_broker
    env = security_env(ca)
    worker = WorkerProcess(bootstrap=bootstrap, data_dir=tmp_path / "w", app_id="dg-secure", metrics_port=free_port(),
                           log_path=tmp_path / "worker.log")  # fmt: skip
    os.environ.update(env)  # the worker subprocess and this process's clients read the same variables
    try:
        worker.start()
        worker.wait_ready(timeout=120)
        security = KafkaSecurity.from_env()
        harvester = P.cot_harvester("secure-harvester", random.Random(1), T0, hours=0.5)
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **security.kafka_python())
        for e in harvester:
            producer.send("llm.requests", key=b"secure-harvester", value=orjson.dumps(e))
        producer.flush()
        producer.close()

        async def gateway_sees_the_decision() -> Any:
            table = ThrottleTable(bootstrap, parse_keys("dev:dev-secret-change-me"))
            await table.start()
            try:
                for _ in range(120):
                    if (verdict := table.table.get("account:secure-harvester")) is not None:
                        return verdict
                    await asyncio.sleep(0.5)
                return None
            finally:
                await table.stop()

        verdict = asyncio.run(gateway_sees_the_decision())
        assert verdict is not None and verdict.action in ("challenge", "limit", "block"), worker.log()

        listed = subprocess.run([sys.executable, "-m", "stream.cli", "allowlist", "add", "--account", "partner-1",
                                 "--reason", "contract", "--broker", bootstrap, "--by", "test"],
                                cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True)  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        consumer = KafkaConsumer("distillguard.allowlist", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=5000, **security.kafka_python())  # fmt: skip
        assert any(r.key == b"account:partner-1" for r in consumer)
        consumer.close()
    finally:
        worker.stop()
        for name in env:
            os.environ.pop(name, None)
    log = worker.log_path.read_text(errors="replace")
    assert PASSWORD not in log and not worker.crashes()
