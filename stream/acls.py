"""Who may do what on Kafka: one table of grants per principal (issue 22, item 5).

The worker signs what it publishes and checks the signature of every control record, but a topic anyone
can write is still a place to flood or forge: the gateway may write ``llm.requests`` only, triage may write
verdicts and the allowlist, and only workers write decisions, alerts, dead letters and the cluster stage's
topics. ``deploy/k8s/render.py`` renders this table as Strimzi ``KafkaUser`` resources; ``python -m
stream.cli acls apply`` writes it to any broker with an authorizer (the integration test does that).
Topics the worker declares it may also *create* (it creates what is missing at start-up), never write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stream.topics import ALERTS, ALL_TOPICS, ALLOWLIST, DLQ, FEEDBACK, REQUESTS, THROTTLE

__all__ = ["Grant", "ROLES", "apply_acls", "grants", "kafka_acls"]

#: The principals of a deployment, each with its own credentials.
ROLES = ("gateway", "worker", "triage")


@dataclass(frozen=True)
class Grant:
    """``role`` may do ``operations`` on the ``resource`` (topic or group) ``name`` (or every name starting
    with it, when ``prefixed``)."""

    role: str
    resource: str
    name: str
    operations: tuple[str, ...]
    prefixed: bool = False


READ, WRITE = ("Read", "Describe"), ("Write", "Describe")


def grants(app_id: str) -> list[Grant]:
    """Every grant of a deployment whose workers run as Faust app ``app_id``.

    >>> [(g.name, g.operations) for g in grants("distillguard") if g.role == "gateway"]
    [('llm.requests', ('Write', 'Describe')), ('distillguard.throttle', ('Read', 'Describe'))]
    >>> any(g.role != "worker" and "Write" in g.operations and g.name == "distillguard.throttle"
    ...     for g in grants("distillguard"))
    False
    """
    return [
        # The gateway publishes one event per request and enforces the decisions it reads (no group).
        Grant("gateway", "topic", REQUESTS.name, WRITE),
        Grant("gateway", "topic", THROTTLE.name, READ),
        # Triage reads alerts and what is in force, and records verdicts and exemptions (signed).
        Grant("triage", "topic", ALERTS.name, READ),
        Grant("triage", "topic", THROTTLE.name, READ),
        Grant("triage", "topic", FEEDBACK.name, ("Read", "Write", "Describe")),
        Grant("triage", "topic", ALLOWLIST.name, ("Read", "Write", "Describe")),
        # The worker: its consumer group, the requests and control topics it reads, what it publishes,
        # and everything under its app id (Faust's changelogs, the cluster stage's two topics).
        Grant("worker", "group", app_id, ("Read", "Describe")),
        Grant("worker", "topic", REQUESTS.name, READ),
        Grant("worker", "topic", FEEDBACK.name, READ),
        Grant("worker", "topic", ALLOWLIST.name, READ),
        Grant("worker", "topic", THROTTLE.name, ("Read", "Write", "Describe")),
        Grant("worker", "topic", ALERTS.name, WRITE),
        Grant("worker", "topic", DLQ.name, WRITE),
        *(Grant("worker", "topic", spec.name, ("Create", "DescribeConfigs")) for spec in ALL_TOPICS),
        Grant("worker", "topic", f"{app_id}-", ("All",), prefixed=True),
        Grant("worker", "group", f"{app_id}-", ("All",), prefixed=True),
    ]


def kafka_acls(items: Iterable[Grant], principals: dict[str, str]) -> list[Any]:
    """kafka-python ``ACL`` bindings for ``items``, each role run as ``principals[role]`` ("User:name")."""
    from kafka.admin import ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePattern, ResourceType

    operation = {
        "All": ACLOperation.ALL, "Read": ACLOperation.READ, "Write": ACLOperation.WRITE,
        "Create": ACLOperation.CREATE, "Describe": ACLOperation.DESCRIBE,
        "DescribeConfigs": ACLOperation.DESCRIBE_CONFIGS,
    }  # fmt: skip
    resource = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
    return [
        ACL(principals[g.role], "*", operation[op], ACLPermissionType.ALLOW,
            ResourcePattern(resource[g.resource], g.name,
                            ACLResourcePatternType.PREFIXED if g.prefixed else ACLResourcePatternType.LITERAL))
        for g in items for op in g.operations
    ]  # fmt: skip


def apply_acls(bootstrap: str, app_id: str, principals: dict[str, str]) -> int:
    """Create every grant's ACLs on the broker at ``bootstrap`` (as an admin principal); the number made.
    Creating an ACL that exists is a no-op in Kafka, so this can run on every deploy."""
    from kafka.admin import KafkaAdminClient

    from stream.connection import kafka_python_config

    acls = kafka_acls(grants(app_id), principals)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **kafka_python_config())
    try:
        result = admin.create_acls(acls)
    finally:
        admin.close()
    if result["failed"]:
        raise RuntimeError(f"{len(result['failed'])} ACLs refused, first: {result['failed'][0]}")
    return len(result["succeeded"])
