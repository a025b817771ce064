"""The Faust app: one agent reads raw request bytes in batches, runs the engine, publishes decisions.

Detection logic is not here: it is :class:`detectors.engine.Engine`. This module only moves bytes
between Kafka and the engine, keeps the engine's state in a changelogged table, and counts things.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import time
from typing import Any

import faust
import orjson
from aiohttp import web

from detectors.account_state import to_evict
from detectors.cluster_stage import encoded_parts, partial_key, split_partial
from detectors.config import load_scoring
from detectors.engine import Engine
from detectors.pipeline import handle
from detectors.types import ACTIONS
from stream.checkpoints import CheckpointTopic
from stream.cluster_agents import install_cluster_stage
from stream.compacted import CompactedReader
from stream.connection import KafkaSecurity
from stream.faust_patches import (
    check_internals,
    commit_past_duplicate_acks,
    committed_offset,
    drop_records_fetched_before_a_seek,
    queue_whole_batches,
    skipped_once_stopped,
    warm_partitioner,
)
from stream.health import Health
from stream.metrics import WorkerMetrics
from stream.publish import Publisher, active_entry
from stream.settings import WorkerSettings, bootstrap_servers
from stream.signing import ControlGate, verify
from stream.topics import (
    ALL_TOPICS,
    ALLOWLIST,
    APP_TOPICS,
    CHECKPOINTS,
    CLUSTER_PARTIALS,
    FEEDBACK,
    REQUESTS,
    TopicSpec,
)
from stream.triage import Triage
from stream.triage_web import triage_app

__all__ = [
    "TableStore",
    "app_options",
    "create_app",
    "parse_verdict",
]

log = logging.getLogger("distillguard.worker")

#: Events (~0.1 s of work) after which a batch waits for the delivery of the decisions made so far, so
#: they reach the throttle topic while the rest of the batch is processed, not only at its end (the
#: producer only sends while the agent waits). One round trip per chunk with decisions in it.
_DELIVER_EVERY = 256  # active-decisions table value: expiry (event time) and action level


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

    def put(self, key: str, value: bytes) -> None:
        self.table[key.encode()] = value

    def __len__(self) -> int:
        return len(self.table)

    def evict(self, before: float, keep: int) -> list[str]:
        """Delete idle and least-evidence accounts (:func:`to_evict`), a tombstone each in the changelog."""
        evicted = to_evict(list(self.table.items()), before, keep)
        for key in evicted:
            del self.table[key]
        return [key.decode(errors="replace") for key in evicted]


def app_options(settings: WorkerSettings) -> dict[str, Any]:
    """Faust settings of a worker (shared with ``bench.faust_ceiling``, so its ceiling is this worker's)."""
    return {
        "broker": settings.broker,
        "store": "memory://",
        "datadir": settings.data_dir,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "web_enabled": False,
        "consumer_group_instance_id": settings.instance_id or None,
        # Table changelog writes come in bursts of one per dirty account per batch: batch them on the wire.
        "stream_buffer_maxsize": settings.batch_size * 2,
        "producer_max_batch_size": 1 << 20,
        "producer_linger": 0.005,
        "consumer_max_fetch_size": settings.fetch_bytes_per_partition,
        "broker_credentials": KafkaSecurity.from_env().faust(),
    }


def create_app(
    settings: WorkerSettings, metrics: WorkerMetrics | None = None, health: Health | None = None
) -> faust.App:
    """Build the Faust app; nothing connects until a worker starts it."""
    check_internals()  # a renamed internal fails here, not silently under load
    commit_past_duplicate_acks()
    drop_records_fetched_before_a_seek()
    health = health or Health()
    cfg = load_scoring(settings.rules)
    metrics = metrics or WorkerMetrics.create(cfg.policy)
    app = faust.App(settings.app_id, **app_options(settings))
    check_internals(app.consumer)  # the consumer's own attributes, before it connects

    def topic(spec: TopicSpec, name: str | None = None) -> Any:
        default = settings.stage_shards if spec is CLUSTER_PARTIALS else settings.partitions
        return app.topic(
            name or spec.name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=spec.partitions or default,
            replicas=settings.replication,
            config=spec.config,
            internal=True,
        )

    topics = {spec.name: topic(spec) for spec in ALL_TOPICS}
    topics |= {spec.name: topic(spec, f"{settings.app_id}-{spec.name}") for spec in APP_TOPICS}
    requests = topics[REQUESTS.name]  # the decision, alert and DLQ topics are the Publisher's
    partials = topics[CLUSTER_PARTIALS.name]  # the cluster stage's other topics: stream/cluster_agents.py
    states = app.Table(
        "account-state",
        key_type=bytes,
        value_type=bytes,  # bytes types mean the raw codec: we pack state ourselves
        partitions=settings.partitions,
        use_partitioner=True,  # changelog partition = the key's partition, as on llm.requests
    )
    store = TableStore(states)
    engine = Engine(store, cfg, local_clusters=False)  # the cluster stage: the "link" and "cluster" agents

    def observe_scores(scores: dict[str, float]) -> None:
        for detector, value in scores.items():
            metrics.scores.labels(detector=detector).observe(value)

    engine.on_score = observe_scores
    latest_ts = 0.0  # newest event time seen: the clock idle eviction is measured against

    active = app.Table(
        "active-decisions",  # account key -> expiry of the decision in force, for lifting it on time
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        use_partitioner=True,
    )
    publisher = Publisher(app, settings, cfg, metrics, topics, active)
    keys = settings.trusted_keys()

    gate = ControlGate(keys, lambda topic: metrics.control_rejected.labels(topic=topic).inc())

    kill_after_state = failpoint_batch(settings.failpoint, "kill-after-state")

    @app.agent(requests, name="detect")
    async def detect(stream: Any) -> None:
        nonlocal latest_ts
        batches = 0
        for t in topics.values():
            await t.maybe_declare()
        # Every worker follows the whole allowlist and every checkpoint, so it has the latest wherever the
        # work moves. Started here, not as app tasks: Faust starts those only once the group has joined and
        # the tables are restored, which after a crash waits out the dead member's session (a minute).
        await allowlist_reader.start()
        await checkpoints.reader.start()
        try:  # decide nothing before the operators' exemptions are read (at most a minute's wait)
            await asyncio.wait_for(allowlist_reader.caught_up.wait(), timeout=60)
        except TimeoutError:
            log.warning("deciding before the allowlist was read in full: %s not caught up in 60 s", ALLOWLIST.name)
        await restore_checkpoints("models")
        await warm_partitioner(app, (states, active))
        queue_whole_batches(app, settings.batch_size)
        log.info("detect: allowlist read (%d entries), checkpoint looked up; consuming %s", len(engine.allowlist),
                 REQUESTS.name)  # fmt: skip
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_seconds):
            started = time.perf_counter()
            # Deliveries are collected, not awaited one by one: decisions and DLQ records before the batch's
            # state is written, its partials after, all before its offsets can be committed.
            pending: list[Any] = []
            metrics.events_consumed.inc(len(batch))
            undelivered: Any = None  # the newest decision of this chunk of the batch
            for i, event in enumerate(batch, 1):
                if undelivered is not None and i % _DELIVER_EVERY == 0:
                    await undelivered  # this chunk's decisions reach the topic now, not at the batch's end
                    undelivered = None
                raw = event.value
                handled = handle(raw if isinstance(raw, bytes) else b"", engine, partition=event.message.partition,
                                 offset=event.message.offset,
                                 latest_allowed_ts=time.time() + settings.max_future_seconds)  # fmt: skip
                for name in handled.repaired:  # repaired, and scored: a bad optional field keeps nothing out
                    metrics.fields_dropped.labels(field=name).inc()
                if handled.clamped:
                    metrics.future_events.inc()  # a far-future ts must not move every event-time clock
                if (refused := handled.refused) is not None:
                    if handled.error is not None:  # a detector bug: its traceback, then the stream goes on
                        log.error("detector failed on %s[%d]@%d", event.message.topic, event.message.partition,
                                  event.message.offset, exc_info=handled.error)  # fmt: skip
                    await publisher.dead_letter(event, refused.reason, refused.detail, pending)
                    continue
                for decision in handled.decisions:
                    undelivered = await publisher.decision(decision, pending)
                latest_ts = max(latest_ts, handled.ts)
            # Decisions and dead letters are delivered before the state that records them is written: a
            # crash in between replays the batch onto the old state, which decides again (same ids).
            await asyncio.gather(*pending)
            pending = []
            # The changelog's partition is chosen synchronously from the producer's metadata, which a leader
            # failover can clear (seen in CI: TypeError inside aiokafka, the agent crashed): reload it first.
            # No await between this and the writes, so nothing can clear it in between.
            await warm_partitioner(app, (states, active))
            engine.flush()  # state (with each account's source offset) reaches the changelog before the acks
            if engine.replayed:
                metrics.events_replayed.inc(engine.replayed)
                engine.replayed = 0
            for message in engine.drain_partials(latest_ts):  # so do the batch's cluster partials, to the
                pkey = partial_key(message["partition"])  # link shards owning their targets, in parts that
                for shard, piece in split_partial(message, settings.stage_shards):  # the broker never refuses
                    for part in encoded_parts(piece):
                        headers = settings.control_headers(pkey, part)
                        pending.append(await partials.send(key=pkey, value=part, partition=shard, headers=headers))
            await asyncio.gather(*pending)
            batches += 1
            if batches == kill_after_state:
                await app.producer.flush()  # the state is in the changelog; the offsets are not committed
                os.kill(os.getpid(), signal.SIGKILL)
            metrics.processing_seconds.observe((time.perf_counter() - started) / len(batch))
            health.progressed()
            metrics.last_event_timestamp.set(time.time())

    install_cluster_stage(app, settings, engine, metrics, topics, publisher, gate, (states, active))

    # -- checkpoints: on a compacted topic every worker follows (stream/checkpoints.py) ----------------

    async def send_checkpoint_record(key: bytes, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        await (await topics[CHECKPOINTS.name].send(key=key, value=value, headers=headers))

    checkpoints = CheckpointTopic(bootstrap_servers(settings.broker), f"{settings.app_id}-{CHECKPOINTS.name}",
                                  send_checkpoint_record, settings.control_headers, keys)  # fmt: skip

    async def restore_checkpoints(name: str) -> None:
        blob = await checkpoints.latest(name)
        if blob is None:
            return
        if engine.restore(blob):
            metrics.checkpoints.labels(name=name, outcome="restored").inc()
            log.info("restored the %s checkpoint of generation %s", name, checkpoints.book.generation(name))
        else:
            log.warning("the %s checkpoint is from another River version; starting fresh", name)

    async def write_checkpoint(name: str, blob: bytes) -> None:
        await checkpoints.write(name, blob)
        metrics.checkpoints.labels(name=name, outcome="written").inc()

    async def on_partitions_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        """Partitions are moving: cached states may go stale, so re-read them from the table."""
        engine.forget_cache()

    app.on_partitions_revoked.connect(on_partitions_revoked)  # type: ignore[arg-type]

    allowlist_issued: dict[str, float] = {}

    def on_allowlist(key: bytes | None, value: bytes | None, headers: Any) -> None:
        outcome = apply_allowlist(engine.allowlist, allowlist_issued, key, value, headers, keys)
        if outcome != "applied":
            metrics.control_rejected.labels(topic="allowlist").inc()
            log.warning("ignored an allowlist record: %s", outcome)

    # Every worker reads the whole allowlist (not a consumer group's share of it); the detect agent starts it.
    allowlist_reader = CompactedReader(bootstrap_servers(settings.broker), ALLOWLIST.name, on_allowlist)

    if settings.triage_port:

        @app.task  # type: ignore[untyped-decorator]
        async def serve_triage() -> None:
            """The triage page on 127.0.0.1:<triage_port> (put it behind your SSO proxy)."""
            page = triage_app(Triage(bootstrap_servers(settings.broker)), settings.triage_identity_header)
            runner = web.AppRunner(page)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", settings.triage_port).start()

    def on_feedback(key: bytes | None, value: bytes | None, headers: Any) -> None:
        """A triage verdict teaches the supervised model. Every worker reads the whole feedback log (not a
        consumer group's share), so every worker's model learns every verdict and they agree; the model
        is rebuilt from the log at start, not restored from the local checkpoint."""
        if not gate.record(key, value, headers, "feedback"):
            return
        verdict = parse_verdict(value)
        if verdict is None:
            metrics.feedback_verdicts.labels(verdict="invalid").inc()
            log.warning("ignored a feedback record that is not a verdict with features")
            return
        if not engine.learn_verdict(*verdict):
            metrics.feedback_verdicts.labels(verdict="invalid").inc()
            log.warning("ignored a feedback record whose features are not window features in [0, 1]")
            return
        metrics.model_updated_timestamp.labels(model="supervised").set(time.time())
        metrics.feedback_verdicts.labels(verdict="confirmed" if verdict[1] else "false_positive").inc()

    # resume: after a reconnect, go on from where it was (a verdict learnt twice would count twice).
    feedback_reader = CompactedReader(bootstrap_servers(settings.broker), FEEDBACK.name, on_feedback, resume=True)

    @app.task  # type: ignore[untyped-decorator]
    async def follow_feedback() -> None:
        """Every worker reads every verdict."""
        await feedback_reader.start()

    @app.timer(interval=settings.lift_seconds)  # type: ignore[untyped-decorator]
    @skipped_once_stopped
    async def lift_expired() -> None:
        """Publish a tombstone for every decision whose TTL has passed (wall clock ≈ event time live)."""
        await warm_partitioner(app, (states, active))
        now = time.time()
        in_force = {k: active_entry(v) for k, v in list(active.items())}
        for key, (expires, _, issued) in in_force.items():
            if expires <= now or engine.allowlist.get(key.decode(), 0.0) > now:  # allowlisted: lift now
                await publisher.send_throttle(key, None, issued)
                await warm_partitioner(app, (active,))
                del active[key]
                metrics.decisions_lifted.inc()
        for level, action in enumerate(ACTIONS[1:], start=1):
            count = sum(1 for k, (e, lvl, _) in in_force.items() if lvl == level and e > now and k in active)
            metrics.active_throttles.labels(action=action).set(count)
        lags = consumer_lag(app, REQUESTS.name)
        for partition, lag in lags.items():
            metrics.consumer_lag.labels(partition=str(partition)).set(lag)
        health.waiting = sum(lags.values())
        metrics.worker_stalled.set(0 if health.check()[0] else 1)

    @app.timer(interval=settings.housekeeping_seconds)  # type: ignore[untyped-decorator]
    @skipped_once_stopped
    async def housekeeping() -> None:
        """Evict idle accounts (by event time) and checkpoint the models."""
        await warm_partitioner(app, (states, active))
        if latest_ts:
            metrics.evicted_accounts.inc(engine.evict(latest_ts - cfg.window.idle_horizon_seconds))
        metrics.tracked_accounts.set(len(store))
        metrics.state_bytes.set(sum(len(v) for v in list(states.values())))
        await write_checkpoint("models", engine.checkpoint(models=True, stage=False))
        for model in ("anomaly", "checkpoint"):
            metrics.model_updated_timestamp.labels(model=model).set(time.time())

    return app


def consumer_lag(app: faust.App, topic: str) -> dict[int, int]:
    """End offset minus committed offset per assigned partition of ``topic`` (Faust's sensor has none)."""
    consumer: Any = app.consumer
    lag = {}
    for tp in consumer.assignment():
        if tp.topic == topic:
            committed = committed_offset(consumer, tp)
            lag[tp.partition] = max(0, int(consumer.highwater(tp) or 0) - committed)
    return lag


def failpoint_batch(failpoint: str, name: str) -> int:
    """The batch number a ``name:N`` failpoint fires at, or 0 (none set; crash tests only).

    >>> failpoint_batch("kill-after-state:3", "kill-after-state"), failpoint_batch("", "kill-after-state")
    (3, 0)
    """
    kind, _, batch = failpoint.partition(":")
    return int(batch) if kind == name and batch.isdigit() else 0


def apply_allowlist(
    allowlist: dict[str, float], issued: dict[str, float], key: bytes | None, value: bytes | None, headers: Any,
    keys: dict[str, bytes],
) -> str:  # fmt: skip
    """Fold one allowlist record in when a trusted key signed it and it is not older than the entry in
    force (a replayed old entry must not re-exempt anyone); the outcome: applied | unsigned | stale.

    >>> from stream.signing import signature_headers
    >>> keys, allow, seen = {"k": b"s"}, {}, {}
    >>> entry = b'{"reason": "partner"}'
    >>> apply_allowlist(allow, seen, b"account:a", entry, [], keys), allow
    ('unsigned', {})
    >>> apply_allowlist(allow, seen, b"account:a", entry, signature_headers(b"account:a", entry, "k", b"s", 5.0), keys)
    'applied'
    >>> apply_allowlist(allow, seen, b"account:a", None, signature_headers(b"account:a", None, "k", b"s", 9.0), keys)
    'applied'
    >>> apply_allowlist(allow, seen, b"account:a", entry, signature_headers(b"account:a", entry, "k", b"s", 5.0), keys)
    'stale'
    >>> allow
    {}
    """
    signed = None if key is None else verify(key, value, headers, keys)
    if key is None or signed is None:
        return "unsigned"
    subject = key.decode(errors="replace")
    if signed < issued.get(subject, float("-inf")):
        return "stale"
    issued[subject] = signed
    if value is None:
        allowlist.pop(subject, None)
    else:
        allowlist[subject] = allowlist_until(value)
    return "applied"


def allowlist_until(value: bytes) -> float:
    """Until when an allowlist entry holds: its ``until`` (a dismissal) or forever; an entry that is not
    an object with a ``reason`` exempts nobody.

    >>> allowlist_until(b'{"reason": "partner"}'), allowlist_until(b'{"reason": "fp", "until": 1800000000.0}')
    (inf, 1800000000.0)
    >>> allowlist_until(b"garbage"), allowlist_until(b'{"until": 1e308}'), allowlist_until(b'{"reason": 1}')
    (0.0, 0.0, 0.0)
    """
    try:
        entry = orjson.loads(value)
    except orjson.JSONDecodeError:
        return 0.0
    if not isinstance(entry, dict) or not isinstance(entry.get("reason"), str):
        return 0.0  # an entry that does not parse exempts nobody (it used to mean "for good")
    until = entry.get("until", math.inf)
    if type(until) not in (int, float) or not 0 < until <= math.inf:
        return 0.0
    return float(until)


def parse_verdict(raw: Any) -> tuple[dict[str, float], bool] | None:
    """(features, confirmed) from a ``distillguard.feedback`` record, or ``None`` if unusable.

    >>> parse_verdict(b'{"verdict": "confirmed", "features": {"cot_rate": 0.9}}')
    ({'cot_rate': 0.9}, True)
    >>> parse_verdict(b'{"verdict": "maybe"}') is None
    True
    """
    try:
        record = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return None
    if not isinstance(record, dict) or record.get("verdict") not in ("confirmed", "false_positive"):
        return None
    features = record.get("features")
    if not isinstance(features, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in features.values()
    ):
        return None
    return {str(k): float(v) for k, v in features.items()}, record["verdict"] == "confirmed"
