"""In the three-node KRaft layout, the leader of a partition the worker reads is SIGKILLed while the
worker and a gateway's throttle table run: both recover by themselves and catch up — the events sent
after the kill are all processed, their harvester is decided, and the gateway sees the decision."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.partitioner.default import murmur2

from gateway.client import ThrottleTable
from stream.settings import WorkerSettings
from stream.topics import group_lag, wait_for_topics
from tests.integration.conftest import ThreeNodes, eventually, harvest, new_worker, read_until

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
PARTITIONS = 4


def send(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=20, retry_backoff_ms=500)
    for key, value in records:
        producer.send("llm.requests", key=key, value=value)
    producer.flush(timeout=120)
    producer.close()


def leader_of(bootstrap: str, key: bytes) -> int:
    """The node leading the partition of ``llm.requests`` that ``key`` is produced to."""
    partition = (murmur2(key) & 0x7FFFFFFF) % PARTITIONS  # the Java client's (and kafka-python's) choice
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    (topic,) = admin.describe_topics(["llm.requests"])
    admin.close()
    return next(int(p["leader_id"]) for p in topic["partitions"] if p["partition_index"] == partition)


@pytest.fixture
def gateway_table(three_nodes: ThreeNodes) -> Iterator[ThrottleTable]:
    """A gateway's throttle table, following the throttle topic on its own event loop and thread."""
    defaults = WorkerSettings()
    table = ThrottleTable(three_nodes.bootstrap(), {defaults.signing_key_id: defaults.signing_secret.encode()})
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(table.start(), loop).result(timeout=30)
    try:
        yield table
    finally:
        asyncio.run_coroutine_threadsafe(table.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def test_worker_and_gateway_recover_when_a_partition_leader_is_killed(
    three_nodes: ThreeNodes, gateway_table: ThrottleTable, tmp_path: Path
) -> None:
    everyone = three_nodes.bootstrap()
    admin = KafkaAdminClient(bootstrap_servers=everyone)
    admin.create_topics([NewTopic("llm.requests", num_partitions=PARTITIONS, replication_factor=3)])
    admin.close()
    worker = new_worker(everyone, tmp_path, "--replication", "3")
    run = uuid.uuid4().hex[:6]
    before, after = f"before-{run}", f"after-{run}"

    def decided(account: str) -> Any:
        return lambda rs: any(r.key == f"account:{account}".encode() and r.value for r in rs)

    try:
        worker.start()
        worker.wait_ready()
        wait_for_topics(everyone, {"llm.requests", "distillguard.throttle"})
        send(everyone, harvest(before, T0, 200))
        throttle = read_until(everyone, "distillguard.throttle", decided(before), timeout=120)
        assert decided(before)(throttle), worker.log()
        assert eventually(lambda: gateway_table.check(before) is not None, 30)

        victim = leader_of(everyone, after.encode())
        three_nodes.kill(victim)
        survivors = three_nodes.bootstrap(*(n for n in (1, 2, 3) if n != victim))
        send(survivors, harvest(after, T0 + 7200, 200))  # to a partition whose leader is gone

        throttle = read_until(survivors, "distillguard.throttle", decided(after), timeout=180)
        assert decided(after)(throttle), worker.log()
        assert eventually(lambda: gateway_table.check(after) is not None, 60), "the gateway missed the decision"
        assert eventually(lambda: group_lag(survivors, worker.app_id) == 0, 120), worker.log()  # nothing behind
        assert worker.proc is not None and worker.proc.poll() is None, worker.log()
        assert leader_of(survivors, after.encode()) != victim  # a surviving replica took over
    finally:
        worker.stop()
    assert not worker.crashes(), worker.log()
