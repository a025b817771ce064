"""Sharded cluster detection on the real broker, with two worker processes sharing the partitions: a
hydra pool whose accounts land on both workers, and whose targets are linked by two link shards on two
workers, is still seen as one campaign by the merging stage — the accounts one process throttles as a
cluster — its members are throttled with the cluster's id, and people sending at the same time are not."""

from __future__ import annotations

import random
import signal
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.cluster_stage import masked_hub
from detectors.engine import Engine, MemoryStore
from sim import personas as P
from stream.metrics import scrape
from stream.topics import wait_for_topics
from tests.conftest import free_port
from tests.integration.conftest import WorkerProcess, eventually, produce, read_until

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0


def traffic(run: str) -> tuple[list[tuple[bytes, bytes]], list[str], list[str]]:
    """40 low-and-slow accounts on two cards (6 h, ~30 requests each) and 20 people, time-ordered."""
    rng = random.Random(3)
    pool, people = [f"hydra-{run}-{i}" for i in range(40)], [f"person-{run}-{i}" for i in range(20)]
    streams = [
        P.low_and_slow(a, rng, T0 + rng.uniform(0, 600), days=0.25, per_day=120,
                       payment_fingerprint=f"card-{run}-{i % 2}", ip=f"100.{rng.randrange(64, 128)}.{i}.9")
        for i, a in enumerate(pool)
    ]  # fmt: skip
    streams += [P.chat_user(a, rng, T0, days=0.25, per_day=40) for a in people]
    return [(e["account_id"].encode(), orjson.dumps(e)) for e in P.merged(streams)], pool, people


def test_a_pool_split_over_two_workers_is_throttled_as_one_cluster(kafka_bootstrap: str, tmp_path: Path) -> None:
    app_id, run = f"dg-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:6]
    workers = [
        WorkerProcess(bootstrap=kafka_bootstrap, data_dir=tmp_path / f"w{i}", app_id=app_id, metrics_port=free_port(),
                      log_path=tmp_path / f"w{i}.log")
        for i in range(2)
    ]  # fmt: skip
    try:
        for w in workers:
            w.start()
            w.wait_ready()
        wait_for_topics(kafka_bootstrap, {"llm.requests", f"{app_id}-cluster-partials", f"{app_id}-cluster-links",
                                          f"{app_id}-cluster-verdicts"})  # fmt: skip
        records, pool, people = traffic(run)
        produce(kafka_bootstrap, "llm.requests", records)

        def cluster_decisions(rs: list[Any]) -> dict[str, dict[str, Any]]:
            out = {}
            for r in rs:
                if r.value is not None and r.key.decode().split(":", 1)[1] in pool + people:
                    d = orjson.loads(r.value)
                    if d.get("cluster_id"):
                        out[d["subject"]["id"]] = d
            return out

        throttle = read_until(kafka_bootstrap, "distillguard.throttle",
                              lambda rs: len(cluster_decisions(rs)) >= 0.9 * len(pool), timeout=240)  # fmt: skip
        decided = cluster_decisions(throttle)
        assert len([a for a in pool if a in decided]) >= 0.9 * len(pool), [w.log() for w in workers]
        assert not [a for a in people if a in decided]
        assert any(d["action"] in ("limit", "block") for d in decided.values())
        cards = {masked_hub(f"payment_fingerprint:card-{run}-{i}") for i in (0, 1)}
        assert {d["evidence"]["cluster"]["shared_infrastructure"][0] for d in decided.values()} <= cards

        # One process over the same recorded stream (replay's in-process stage, one linker) throttles the
        # same accounts as clusters: the sharded stage found no cluster one linker does not.
        one = Engine(MemoryStore())
        alone = {d.subject_id for _, raw in records for d in one.process(orjson.loads(raw)) if d.cluster_id}
        assert len([a for a in pool if a in alone]) >= 0.9 * len(pool) and set(decided) <= alone

        # Both workers held part of the pool and one of the two link shards (partitions of cluster-partials);
        # both keep the merged link graph; one (the owner of cluster-links' partition) scores clusters.
        assert all(scrape(w.metrics_port, "distillguard_events_consumed_total") > 0 for w in workers)
        linked = [scrape(w.metrics_port, "distillguard_cluster_partials_total", outcome="merged") for w in workers]
        assert all(m > 0 for m in linked), linked
        merged = [scrape(w.metrics_port, "distillguard_cluster_links_total", outcome="merged") for w in workers]
        assert all(m > 0 for m in merged), merged
        members = [scrape(w.metrics_port, "distillguard_cluster_stage_members") for w in workers]
        assert sorted(m > 0 for m in members) == [False, True], members

        # The merging worker dies: the other takes the role over with the graph it kept, and scores the
        # pool's cluster again at its first tick — no new traffic, nothing rebuilt.
        owner = workers[members.index(max(members))]
        survivor = workers[1 - workers.index(owner)]
        owner.stop(signal.SIGKILL)
        took_over = lambda: scrape(survivor.metrics_port, "distillguard_cluster_stage_members") >= 0.9 * len(pool)  # noqa: E731
        assert eventually(took_over, 120), survivor.log()
    finally:
        for w in workers:
            w.stop()
    for w in workers:
        assert not w.crashes(), w.log()
