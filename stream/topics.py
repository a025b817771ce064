"""Every Kafka topic distillguard reads or writes, with its partitions and configs, in one table."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "TopicSpec",
    "REQUESTS",
    "THROTTLE",
    "ALERTS",
    "FEEDBACK",
    "DLQ",
    "CLUSTER_LINKS",
    "CLUSTER_PARTIALS",
    "CLUSTER_VERDICTS",
    "ALL_TOPICS",
    "APP_TOPICS",
    "CHECKPOINTS",
    "existing_partitions",
    "group_lag",
    "partition_lags",
    "wait_for_topics",
]


@dataclass(frozen=True)
class TopicSpec:
    """A topic the app creates at start-up if it is missing (``partitions=None``: the app default)."""

    name: str
    description: str
    partitions: int | None = None
    config: dict[str, str] = field(default_factory=dict)


_DAY_MS = 86_400_000

REQUESTS = TopicSpec(
    "llm.requests",
    "one event per model request, key = account id (schemas/request-event.schema.json)",
    config={"retention.ms": str(7 * _DAY_MS)},
)
THROTTLE = TopicSpec(
    "distillguard.throttle",
    "decisions the gateway enforces, key = account:<id>; a null value lifts the decision",
    config={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
)
ALERTS = TopicSpec(
    "distillguard.alerts",
    "one alert per enforcing decision, with the evidence, for people on call",
    partitions=1,
    config={"retention.ms": str(30 * _DAY_MS)},
)
FEEDBACK = TopicSpec(
    "distillguard.feedback",
    "triage verdicts (confirmed / false positive) the supervised model learns from",
    partitions=1,
    config={"retention.ms": str(365 * _DAY_MS)},
)
# The DLQ keeps the original bytes (they may hold prompt text), so its retention is short.
DLQ = TopicSpec(
    "llm.requests.dlq",
    "events that broke the contract: original bytes, reason and source in headers",
    partitions=1,
    config={"retention.ms": str(3 * _DAY_MS)},
)

ALLOWLIST = TopicSpec(
    "distillguard.allowlist",
    "subjects operators exempt from automatic decisions, key = account:<id> or org:<id>; null removes",
    partitions=1,
    config={"cleanup.policy": "compact"},
)

# The hops of cluster detection (detectors/cluster_stage.py), internal to one app: their names get the
# app id as a prefix, like Faust's changelogs. Partials (coalesced per batch: ≤ 1 a second per worker at
# up to batch_size events/s) are split by link target over the link shards, one per partition of
# cluster-partials (DISTILLGUARD_STAGE_SHARDS when the app creates it); every shard sends the links it
# formed to cluster-links, whose one partition is where the merging stage sees every account.
CLUSTER_PARTIALS = TopicSpec(
    "cluster-partials",
    "per link shard: the link targets it owns and member summaries, per source partition with a sequence",
    partitions=None,  # the stage's shards: WorkerSettings.stage_shards
    config={"retention.ms": str(_DAY_MS)},
)
CLUSTER_LINKS = TopicSpec(
    "cluster-links",
    "per link shard (key s<shard>): the links its targets formed and member summaries, with a sequence",
    partitions=1,
    config={"retention.ms": str(_DAY_MS)},
)
# Verdicts go back keyed by account, partitioned like llm.requests: the worker owning the account decides.
CLUSTER_VERDICTS = TopicSpec(
    "cluster-verdicts",
    "a cluster's verdict on one member, key = account id, for the worker that owns the account's state",
    config={"retention.ms": str(_DAY_MS)},
)

# Checkpoints (today the models) where every worker can read them (stream/checkpoints.py): the latest of
# each is all that matters, so compacted.
CHECKPOINTS = TopicSpec(
    "checkpoints",
    "signed checkpoints (the models): <name> manifests and <name>/<generation>/<i> parts",
    partitions=1,
    config={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
)

ALL_TOPICS = (REQUESTS, THROTTLE, ALERTS, FEEDBACK, DLQ, ALLOWLIST)
APP_TOPICS = (CLUSTER_PARTIALS, CLUSTER_LINKS, CLUSTER_VERDICTS, CHECKPOINTS)  # named "<app id>-<name>"


def existing_partitions(bootstrap: str, topic: str, timeout_ms: int = 30_000) -> int | None:
    """Partition count of ``topic`` if it already exists on the cluster, else ``None``.

    The worker's state table must have exactly as many partitions as ``llm.requests``; when the
    gateway side created that topic first, its count wins over the worker's setting.
    """
    from kafka.admin import KafkaAdminClient

    from stream.connection import kafka_python_config

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms, **kafka_python_config())
    try:
        if topic not in admin.list_topics():
            return None
        (described,) = admin.describe_topics([topic])
        return len(described["partitions"])
    finally:
        admin.close()


def wait_for_topics(bootstrap: str, names: set[str], timeout: float = 60.0) -> None:
    """Block until every topic in ``names`` exists (the worker creates them at start-up)."""
    import time

    from kafka.admin import KafkaAdminClient

    from stream.connection import kafka_python_config

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **kafka_python_config())
    try:
        deadline = time.monotonic() + timeout
        while missing := names - set(admin.list_topics()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {sorted(missing)} did not appear within {timeout}s")
            time.sleep(0.3)
    finally:
        admin.close()


def group_lag(bootstrap: str, group: str, topic: str = REQUESTS.name) -> int:
    """Records of ``topic`` not yet committed by consumer group ``group``, over every partition (read
    without joining the group: benchmarks and tests use it to know when a worker has caught up)."""
    return sum(partition_lags(bootstrap, group, topic).values())


def partition_lags(bootstrap: str, group: str, topic: str = REQUESTS.name) -> dict[int, int]:
    """:func:`group_lag` by partition, for saying which partition a stalled group is behind on."""
    from kafka import KafkaConsumer, TopicPartition

    from stream.connection import kafka_python_config

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             **kafka_python_config())  # fmt: skip
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(parts)
        return {tp.partition: ends[tp] - (consumer.committed(tp) or 0) for tp in parts}
    finally:
        consumer.close()
