"""The Faust app: one agent reads raw request bytes in batches, runs the engine, publishes decisions.

Detection logic is not here: it is :class:`detectors.engine.Engine`. This module only moves bytes
between Kafka and the engine, keeps the engine's state in a changelogged table, and counts things.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
import orjson

from detectors.config import load_scoring
from detectors.engine import Engine
from detectors.events import InvalidEvent, decode_event
from detectors.types import Decision
from stream.metrics import WorkerMetrics
from stream.settings import WorkerSettings
from stream.topics import ALERTS, ALL_TOPICS, DLQ, REQUESTS, THROTTLE, TopicSpec

__all__ = ["TableStore", "create_app", "dlq_headers"]

log = logging.getLogger("distillguard.worker")


class TableStore:
    """The engine's state store on a Faust table (bytes keys and values, changelogged).

    The engine calls ``put`` only from :meth:`Engine.flush`, once per touched account per batch, and
    always with a fresh value: Faust does not persist values changed in place.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: str) -> bytes | None:
        value = self.table.get(key.encode())
        return value if isinstance(value, bytes) else None

    def put(self, key: str, value: bytes, ts: float) -> None:
        self.table[key.encode()] = value

    def __len__(self) -> int:
        return len(self.table)


def dlq_headers(reason: str, detail: str, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """Headers of a DLQ record, named like Kafka Connect's ``__connect.errors.*`` context headers."""
    return [
        ("dlq.reason", reason.encode()),
        ("dlq.error", detail.encode()[:500]),
        ("dlq.source.topic", topic.encode()),
        ("dlq.source.partition", str(partition).encode()),
        ("dlq.source.offset", str(offset).encode()),
    ]


def alert_record(decision: Decision, mode: str) -> dict[str, Any]:
    """The alert for an enforcing decision (issue 7 widens it with the full explanation)."""
    return {
        "alert_id": decision.decision_id,
        "dedup_key": decision.key,
        "decision": decision.to_record(mode=mode),
        "severity": "high" if decision.action == "block" else "medium",
    }


def create_app(settings: WorkerSettings, metrics: WorkerMetrics | None = None) -> faust.App:
    """Build the Faust app; nothing connects until a worker starts it."""
    metrics = metrics or WorkerMetrics.create()
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        store="memory://",
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
    )

    def topic(spec: TopicSpec) -> Any:
        return app.topic(
            spec.name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=spec.partitions or settings.partitions,
            replicas=settings.replication,
            config=spec.config,
            internal=True,
        )

    topics = {spec.name: topic(spec) for spec in ALL_TOPICS}
    requests, throttle, alerts, dlq = (topics[s.name] for s in (REQUESTS, THROTTLE, ALERTS, DLQ))
    states = app.Table(
        "account-state",
        key_type=bytes,
        value_type=bytes,  # bytes types mean the raw codec: we pack state ourselves
        partitions=settings.partitions,
        use_partitioner=True,  # changelog partition = the key's partition, as on llm.requests
    )
    store = TableStore(states)
    engine = Engine(store, load_scoring(settings.rules))

    async def publish(decision: Decision) -> None:
        record = decision.to_record(mode=settings.mode)
        fut = await throttle.send(key=decision.key.encode(), value=orjson.dumps(record))
        await fut  # delivered before the source offset can be committed
        if decision.action in ("limit", "block"):
            await alerts.send(
                key=decision.key.encode(), value=orjson.dumps(alert_record(decision, settings.mode))
            )
        metrics.decisions.labels(action=decision.action).inc()

    async def dead_letter(event: Any, reason: str, detail: str) -> None:
        msg = event.message
        headers = dlq_headers(reason, detail, msg.topic, msg.partition, msg.offset)
        fut = await dlq.send(key=event.key, value=event.value, headers=headers)
        await fut
        metrics.dlq_records.labels(reason=reason).inc()

    @app.agent(requests, name="detect")
    async def detect(stream: Any) -> None:
        for t in topics.values():
            await t.maybe_declare()
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_seconds):
            for event in batch:
                metrics.events_consumed.inc()
                raw = event.value
                try:
                    decoded = decode_event(raw if isinstance(raw, bytes) else b"")
                except InvalidEvent as exc:
                    await dead_letter(event, exc.reason, exc.detail)
                    continue
                try:
                    decisions = engine.process(decoded)
                except Exception as exc:  # a detector bug must not stop the stream
                    log.exception("detector failed on event_id=%s", decoded.get("event_id"))
                    await dead_letter(event, "detector_error", f"{type(exc).__name__}: {exc}"[:500])
                    continue
                for decision in decisions:
                    await publish(decision)
            engine.flush()  # state reaches the changelog before this batch's offsets are acked
            metrics.tracked_accounts.set(len(store))

    return app
