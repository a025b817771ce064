"""The broker layouts in deploy/kafka start for real; the three-node one tolerates a lost node."""

from __future__ import annotations

import os
import random
import socket
import subprocess
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from tests.conftest import KAFKA_SH

pytestmark = pytest.mark.integration


def _free_block() -> int:
    """A base port such that base, base+1, base+10, base+11, base+20, base+21 are all free."""
    for _ in range(100):
        base = random.randrange(20_000, 40_000, 100)
        try:
            for offset in (0, 1, 10, 11, 20, 21):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
    raise RuntimeError("no free block of ports on loopback")


def test_three_node_cluster_keeps_accepting_writes_with_one_node_down(tmp_path: Path) -> None:
    base = _free_block()
    env = {**os.environ, "KAFKA_PORT": str(base), "KAFKA_RUN_DIR": str(tmp_path / "k3"), "KAFKA_HEAP": "384m"}

    def kafka(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(KAFKA_SH), *args], env=env, capture_output=True, text=True, timeout=300)

    up = kafka("cluster-up")
    try:
        assert up.returncode == 0, up.stderr
        bootstrap = f"127.0.0.1:{base},127.0.0.1:{base + 10}"
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic("replicated", 3, 3)])
        (described,) = admin.describe_topics(["replicated"])
        assert all(len(p["replica_nodes"]) == 3 for p in described["partitions"])
        admin.close()

        assert kafka("stop-node", "3").returncode == 0
        assert "node 3: stopped" in kafka("cluster-status").stdout
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=10)
        for i in range(30):  # min.insync.replicas=2: two live nodes still take acks=all writes
            producer.send("replicated", key=str(i).encode(), value=b"x").get(timeout=30)
        producer.close()
    finally:
        kafka("cluster-down")
    assert "running" not in kafka("cluster-status").stdout
