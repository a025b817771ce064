"""The broker layouts in deploy/kafka start for real; the three-node one tolerates a lost node."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from tests.integration.conftest import ThreeNodes

pytestmark = pytest.mark.integration


def test_three_node_cluster_keeps_accepting_writes_with_one_node_down(three_nodes: ThreeNodes) -> None:
    bootstrap = three_nodes.bootstrap(1, 2)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("replicated", 3, 3)])
    (described,) = admin.describe_topics(["replicated"])
    assert all(len(p["replica_nodes"]) == 3 for p in described["partitions"])
    admin.close()

    assert three_nodes.kafka("stop-node", "3").returncode == 0
    assert "node 3: stopped" in three_nodes.kafka("cluster-status").stdout
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=10)
    for i in range(30):  # min.insync.replicas=2: two live nodes still take acks=all writes
        producer.send("replicated", key=str(i).encode(), value=b"x").get(timeout=30)
    producer.close()
    three_nodes.kafka("cluster-down")
    assert "running" not in three_nodes.kafka("cluster-status").stdout
