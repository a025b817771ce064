"""Faults on the real broker, each ending with an assertion that nothing was lost.

A worker SIGKILLed mid-stream and restarted: every event is processed (the group's committed offsets
reach the end of ``llm.requests``), account state is recovered (the harvester keeps its evidence), no
decision is published twice with different ids, and the enforced decision is still in force.
"""

from __future__ import annotations

import random
import signal
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from sim import personas as P
from stream.topics import group_lag
from tests.conftest import make_event
from tests.integration.conftest import eventually, new_worker, produce, read_until

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
ORDER = ("observe", "challenge", "limit", "block")


def test_a_worker_killed_mid_stream_loses_nothing(own_broker: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    kafka_bootstrap, _ = own_broker  # a topic holding only this test's stream, so "mid-stream" is ours
    worker = new_worker(kafka_bootstrap, tmp_path)
    run = uuid.uuid4().hex[:6]
    harvester, people = f"kill-harvester-{run}", [f"kill-person-{run}-{i}" for i in range(600)]
    rng = random.Random(11)
    streams = [P.cot_harvester(harvester, rng, T0, hours=1.0, gap=3.0)]
    streams += [[make_event(j, account=p, ts=T0 + i + j * 37.0) for j in range(60)] for i, p in enumerate(people)]
    records = [(e["account_id"].encode(), orjson.dumps(e)) for e in P.merged(streams)]
    for e in streams[0]:
        e["event_id"] = f"{harvester}-{e['event_id']}"

    try:
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        admin.create_topics([NewTopic("llm.requests", num_partitions=4, replication_factor=1)])
        admin.close()
        produce(kafka_bootstrap, "llm.requests", records)  # the whole stream waits before the worker starts
        worker.start()
        worker.wait_ready()

        def ours(rs: list[Any]) -> list[dict[str, Any]]:
            keys = {f"account:{a}".encode() for a in [harvester, *people]}
            return [orjson.loads(r.value) for r in rs if r.key in keys and r.value is not None]

        # Kill it once it has worked through a fifth of the stream (its commits say so), mid-stream.
        total = len(records)
        deadline = time.monotonic() + 120
        while (waiting := group_lag(kafka_bootstrap, worker.app_id)) > 0.8 * total and time.monotonic() < deadline:
            time.sleep(0.2)
        worker.stop(signal.SIGKILL)
        assert 0 < waiting <= 0.8 * total, f"not killed mid-stream: {waiting} of {total} waiting"

        worker.start()
        worker.wait_ready()
        # every event processed (at-least-once); on a failure, how the lag moved tells a stall from a crawl
        lags: list[tuple[int, int]] = []
        ready = time.monotonic()

        def caught_up() -> bool:
            lags.append((round(time.monotonic() - ready), group_lag(kafka_bootstrap, worker.app_id)))
            return lags[-1][1] == 0

        assert eventually(caught_up, 120), f"(seconds, lag): {lags[::10]}\n{worker.log()}"

        decisions = ours(read_until(kafka_bootstrap, "distillguard.throttle", lambda rs: False, timeout=5))
        ids: dict[tuple[str, str, float], set[str]] = defaultdict(set)
        for d in decisions:
            ids[(d["subject"]["id"], d["action"], d["issued_at"])].add(d["decision_id"])
        assert all(len(v) == 1 for v in ids.values()), {k: v for k, v in ids.items() if len(v) > 1}

        mine = sorted((d for d in decisions if d["subject"]["id"] == harvester), key=lambda d: d["issued_at"])
        assert max(ORDER.index(d["action"]) for d in mine) >= ORDER.index("limit")  # evidence survived the kill
        # Never a step down while a decision is in force (after its TTL an action lapses by design):
        # the action in force survived the kill.
        for earlier, later in zip(mine, mine[1:], strict=False):
            if later["issued_at"] < earlier["expires_at"]:
                assert ORDER.index(later["action"]) >= ORDER.index(earlier["action"]), (earlier, later)
        assert not [d for d in decisions if d["subject"]["id"] in people]

        # The enforced decision is still in force in the worker's changelogged table.
        key = f"account:{harvester}".encode()
        changelog = read_until(kafka_bootstrap, f"{worker.app_id}-active-decisions-changelog", lambda rs: False,
                               timeout=5)  # fmt: skip
        latest = [r.value for r in changelog if r.key == key]
        assert latest and latest[-1] is not None
    finally:
        worker.stop()
    assert not worker.crashes(), worker.log()
