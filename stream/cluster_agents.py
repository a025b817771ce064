"""The worker's cluster stage on Kafka: link shards, the merging stage, and verdicts back to accounts.

The logic is :mod:`detectors.cluster_stage`'s; this module moves its messages. Partials from the ``detect``
agents land on the partitions of ``<app>-cluster-partials``, one :class:`LinkShard` each (the ``link``
agent); the links a shard forms go to ``<app>-cluster-links``, which every worker follows into its copy of
the merged graph (``on_links``), and the group's owner of that topic's one partition ticks, scores and
sends verdicts to ``<app>-cluster-verdicts``, keyed like ``llm.requests``, so the worker owning an account
decides (``apply-cluster-verdicts``).
"""

from __future__ import annotations

import logging
from typing import Any

import faust
import orjson

from detectors.cluster_stage import ClusterVerdict, LinkShard, encoded_parts
from detectors.engine import Engine
from stream.compacted import CompactedReader
from stream.faust_patches import owns, skipped_once_stopped, warm_partitioner
from stream.metrics import WorkerMetrics
from stream.publish import Publisher
from stream.settings import WorkerSettings, bootstrap_servers
from stream.signing import ControlGate
from stream.topics import CLUSTER_LINKS, CLUSTER_PARTIALS, CLUSTER_VERDICTS

__all__ = ["install_cluster_stage"]

log = logging.getLogger("distillguard.worker")


def install_cluster_stage(app: faust.App, settings: WorkerSettings, engine: Engine, metrics: WorkerMetrics,
                          topics: dict[str, Any], publisher: Publisher, gate: ControlGate,
                          tables: tuple[Any, ...]) -> None:  # fmt: skip
    """Add the cluster stage's agents, reader and timer to ``app``; ``engine.cluster_stage`` is the merging
    stage, ``tables`` the tables an applied verdict writes (their partitioner is warmed first)."""
    partials, links = topics[CLUSTER_PARTIALS.name], topics[CLUSTER_LINKS.name]
    verdicts = topics[CLUSTER_VERDICTS.name]

    shards: dict[int, LinkShard] = {}  # partition of cluster-partials -> its link shard, on this worker

    @app.agent(partials, name="link")
    async def link(stream: Any) -> None:
        """The cluster stage's link shards, one per partition of cluster-partials: each folds the targets
        it owns from every account partition's partials (duplicates replayed after a rebalance are
        dropped by source sequence) and sends the links they formed on to the merging stage."""
        async for event in stream.events():
            if not gate.event(event, "cluster-partials"):
                continue
            k = event.message.partition
            shard = shards.get(k) or shards.setdefault(k, LinkShard(engine.clusters_cfg, k))
            try:
                merged = shard.merge(orjson.loads(event.value))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                log.warning("ignored an unreadable cluster partial: %s", type(exc).__name__)
                metrics.cluster_partials.labels(outcome="invalid").inc()
                continue
            metrics.cluster_partials.labels(outcome="merged" if merged else "duplicate").inc()
            if not merged:
                continue
            # sequenced by this partial's offset: what a successor rebuilds from replayed partials is dropped
            skey = f"s{k}".encode()
            for part in encoded_parts(shard.drain(seq=event.message.offset)):
                await (await links.send(key=skey, value=part, headers=settings.control_headers(skey, part)))

    def on_links(key: bytes | None, value: bytes | None, headers: Any) -> None:
        """Every worker merges every link shard's message (not a group's share), so the merged link graph is
        warm wherever the merging role moves: a worker taking it over after a crash has it, and a restart
        rebuilds it from the topic (a day's retention, four link half-lives)."""
        if not gate.record(key, value, headers, "cluster-links"):
            return
        try:
            merged = engine.cluster_stage.merge(orjson.loads(value or b""))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("ignored an unreadable link shard message: %s", type(exc).__name__)
            metrics.cluster_links.labels(outcome="invalid").inc()
            return
        metrics.cluster_links.labels(outcome="merged" if merged else "duplicate").inc()

    links_reader = CompactedReader(bootstrap_servers(settings.broker), links.get_topic_name(), on_links, resume=True)

    @app.task  # type: ignore[untyped-decorator]
    async def follow_links() -> None:
        await links_reader.start()

    def merging() -> bool:
        """Whether this worker holds the merging role: the group's owner of cluster-links' one partition
        scores clusters and sends verdicts; the others only keep their copy of the graph up to date. Not
        before this worker's copy has caught up with the topic (a restart reads a day of links first)."""
        return links_reader.caught_up.is_set() and owns(app, links.get_topic_name(), 0)

    @app.agent(links, name="cluster")
    async def cluster(stream: Any) -> None:
        """The merging stage's clock: records reach this agent on the role's owner only; the graph itself
        is merged by ``on_links`` on every worker. Scores clusters once a minute of event time."""
        stage = engine.cluster_stage
        async for _ in stream.events():
            if stage.due(stage.latest):
                await tick_clusters()

    async def tick_clusters() -> None:
        if not merging():
            return
        for verdict in engine.cluster_stage.tick(engine.cluster_stage.latest):
            vkey, value = verdict.account.encode(), orjson.dumps(verdict.to_record())
            fut = await verdicts.send(key=vkey, value=value, headers=settings.control_headers(vkey, value))
            await fut
        metrics.cluster_stage_members.set(len(engine.cluster_stage.members))

    @app.timer(interval=settings.cluster_idle_tick_seconds)  # type: ignore[untyped-decorator]
    @skipped_once_stopped
    async def tick_when_partials_pause() -> None:
        """Event time only moves when partials arrive: at the end of a burst, score what was merged
        since the last tick instead of waiting for traffic that may not come."""
        if engine.cluster_stage.pending:
            await tick_clusters()

    @app.agent(verdicts, name="apply-cluster-verdicts")
    async def apply_cluster_verdicts(stream: Any) -> None:
        """Cluster verdicts land on the worker that owns the account (same partitioning as llm.requests):
        one writer decides for each account, so a cluster decision never steps an account's down."""
        async for event in stream.events():
            if not gate.event(event, "cluster-verdicts"):
                continue
            try:
                verdict = ClusterVerdict.from_record(orjson.loads(event.value))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                log.warning("ignored an unreadable cluster verdict: %s", str(exc)[:200])
                continue
            decision = engine.apply_verdict(verdict)
            if decision is not None:
                await publisher.decision(decision)
            await warm_partitioner(app, tables)  # as in detect: metadata a failover cleared
            engine.flush()
