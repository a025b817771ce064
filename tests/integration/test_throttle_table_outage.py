"""The gateway's throttle table reconnects by itself after a broker outage and catches up."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from gateway.client import ThrottleTable
from stream.signing import signature_headers
from tests.conftest import KAFKA_SH, free_port_block

pytestmark = pytest.mark.integration

KEYS = {"k": b"s3cret"}


def decision(account: str, expires_at: float) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    key = f"account:{account}".encode()
    value = orjson.dumps({"schema_version": 1, "decision_id": account, "subject": {"type": "account", "id": account},
                          "action": "block", "issued_at": 1.0, "expires_at": expires_at, "reason": ["X"],
                          "score": 1.0, "mode": "enforce", "origin": "auto", "evidence_id": account})  # fmt: skip
    return key, value, signature_headers(key, value, "k", KEYS["k"], 1.0)


def send(bootstrap: str, account: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=20)
    key, value, headers = decision(account, 4e9)
    producer.send("distillguard.throttle", key=key, value=value, headers=headers).get(timeout=60)
    producer.close()


async def wait_for(predicate: object, timeout: float) -> bool:
    for _ in range(int(timeout * 10)):
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False


def test_throttle_table_survives_a_broker_restart(tmp_path: Path) -> None:
    port = free_port_block()
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_RUN_DIR": str(tmp_path / "kafka"), "KAFKA_HEAP": "384m"}

    def kafka(cmd: str) -> None:
        done = subprocess.run([str(KAFKA_SH), cmd], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr

    bootstrap = f"127.0.0.1:{port}"
    kafka("up")
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic("distillguard.throttle", 2, 1, topic_configs={"cleanup.policy": "compact"})])
        admin.close()
        send(bootstrap, "before-outage")

        async def scenario() -> dict[str, object]:
            table = ThrottleTable(bootstrap, KEYS)
            await table.start()
            seen: dict[str, object] = {}
            seen["first"] = await wait_for(lambda: table.check("before-outage") is not None, 60)
            await asyncio.to_thread(kafka, "down")
            seen["noticed_outage"] = await wait_for(lambda: not table.ready, 60)
            seen["kept_table_during_outage"] = table.check("before-outage") is not None
            await asyncio.to_thread(kafka, "up")
            await asyncio.to_thread(send, bootstrap, "after-outage")
            seen["caught_up"] = await wait_for(lambda: table.check("after-outage") is not None, 90)
            seen["ready_again"] = await wait_for(lambda: table.ready, 30)
            await table.stop()
            return seen

        seen = asyncio.run(scenario())
    finally:
        kafka("down")
    assert seen == {"first": True, "noticed_outage": True, "kept_table_during_outage": True,
                    "caught_up": True, "ready_again": True}  # fmt: skip
