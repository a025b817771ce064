"""Workers joining and leaving while traffic flows: a third worker joins two, then one leaves, mid-stream.
Nothing is lost (the group commits every record), every harvester is decided, no decision is published
under two ids, and the cluster stage — wherever it ends up — still throttles the pool as one cluster."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from sim import personas as P
from stream.topics import group_lag, partition_lags, wait_for_topics
from tests.conftest import free_port
from tests.integration.conftest import WorkerProcess, eventually, produce, read_until

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0


def traffic(run: str) -> tuple[list[tuple[bytes, bytes]], list[str], list[str]]:
    rng = random.Random(5)
    harvesters = [f"rb-harvester-{run}-{i}" for i in range(6)]
    pool = [f"rb-pool-{run}-{i}" for i in range(30)]
    streams = [P.cot_harvester(a, rng, T0 + 60 * i, hours=0.4, gap=3.0) for i, a in enumerate(harvesters)]
    streams += [P.low_and_slow(a, rng, T0 + rng.uniform(0, 600), days=0.25, per_day=120,
                               payment_fingerprint=f"rb-card-{run}", ip=f"100.70.{i}.9")
                for i, a in enumerate(pool)]  # fmt: skip
    streams += [P.chat_user(f"rb-person-{run}-{i}", rng, T0, days=0.25, per_day=40) for i in range(40)]
    records = [(e["account_id"].encode(), orjson.dumps(e)) for e in P.merged(streams)]
    return records, harvesters, pool


def test_workers_joining_and_leaving_mid_stream_lose_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    app_id, run = f"dg-rb-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:6]

    def worker(i: int) -> WorkerProcess:
        return WorkerProcess(bootstrap=kafka_bootstrap, data_dir=tmp_path / f"w{i}", app_id=app_id,
                             metrics_port=free_port(), log_path=tmp_path / f"w{i}.log")  # fmt: skip

    workers = [worker(0), worker(1)]
    records, harvesters, pool = traffic(run)
    try:
        for w in workers:
            w.start()
            w.wait_ready()
        wait_for_topics(kafka_bootstrap, {"llm.requests", f"{app_id}-cluster-partials"})
        # Traffic in ten consecutive slices of event time over ~20 s, while the group changes under it.
        size = len(records) // 10 + 1

        def send() -> None:
            for start in range(0, len(records), size):
                produce(kafka_bootstrap, "llm.requests", records[start : start + size])
                time.sleep(2)

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(4)
        workers.append(worker(2))
        workers[-1].start()  # a third joins: rebalance
        workers[-1].wait_ready()
        time.sleep(4)
        workers[0].stop()  # one leaves: rebalance again
        sender.join()

        # every record processed
        caught_up = eventually(lambda: group_lag(kafka_bootstrap, app_id) == 0, 180)
        assert caught_up, (partition_lags(kafka_bootstrap, app_id), [w.log() for w in workers])

        keys = {f"account:{a}".encode() for a in harvesters + pool}

        def decided(rs: list[Any]) -> dict[str, list[dict[str, Any]]]:
            out: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in rs:
                if r.key in keys and r.value is not None:
                    d = orjson.loads(r.value)
                    out[d["subject"]["id"]].append(d)
            return out

        def enough(rs: list[Any]) -> bool:
            got = decided(rs)
            in_cluster = [a for a in pool if any(d.get("cluster_id") for d in got.get(a, []))]
            return all(a in got for a in harvesters) and len(in_cluster) >= 0.9 * len(pool)

        got = decided(read_until(kafka_bootstrap, "distillguard.throttle", enough, timeout=120))
        assert all(a in got for a in harvesters), sorted(got)
        in_cluster = [a for a in pool if any(d.get("cluster_id") for d in got.get(a, []))]
        assert len(in_cluster) >= 0.9 * len(pool), (len(in_cluster), [w.log() for w in workers])
        ids: dict[tuple[str, str, float], set[str]] = defaultdict(set)
        for ds in got.values():
            for d in ds:
                ids[(d["subject"]["id"], d["action"], d["issued_at"])].add(d["decision_id"])
        assert all(len(v) == 1 for v in ids.values())
    finally:
        for w in workers:
            w.stop()
    for w in workers:
        assert not w.crashes(), w.log()
