"""Faults on the real broker, each ending with an assertion that nothing was lost.

A worker SIGKILLed mid-stream and restarted: every event is processed (the group's committed offsets
reach the end of ``llm.requests``), account state is recovered (the harvester keeps its evidence), no
decision is published twice with different ids, and the enforced decision is still in force.
"""

from __future__ import annotations

import random
import signal
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from detectors.account_state import AccountState
from detectors.config import load_scoring
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


def test_a_worker_killed_between_writing_state_and_committing_counts_every_event_once(
    own_broker: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """Issue 23, item 3: the worker writes the first batch's state to the changelog and dies (SIGKILL, a
    failpoint) before committing its offsets. The restarted worker reads those events again; each
    account's state holds the offset it last folded, so the replay is not folded twice: every account's
    request count equals the events sent, and every decision the stream warrants is published."""
    kafka_bootstrap, _ = own_broker
    run = uuid.uuid4().hex[:6]
    accounts = [f"exact-{run}-{i}" for i in range(300)]
    rng = random.Random(5)
    sent = {a: rng.randint(5, 40) for a in accounts}  # within 40 minutes: the ring counts them exactly
    events = [make_event(j, account=a, ts=T0 + j * 60.0 + i % 60)
              for i, a in enumerate(accounts) for j in range(sent[a])]  # fmt: skip
    harvester = f"exact-harvester-{run}"
    events += P.cot_harvester(harvester, rng, T0, hours=0.6, gap=3.0)
    sent[harvester] = sum(1 for e in events if e["account_id"] == harvester)
    events.sort(key=lambda e: e["ts"])
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic("llm.requests", num_partitions=4, replication_factor=1)])
    admin.close()
    produce(kafka_bootstrap, "llm.requests", [(e["account_id"].encode(), orjson.dumps(e)) for e in events])

    worker = new_worker(kafka_bootstrap, tmp_path)
    worker.env = {"DISTILLGUARD_FAILPOINT": "kill-after-state:1"}
    worker.start()
    assert worker.proc is not None and worker.proc.wait(timeout=180) == -signal.SIGKILL, worker.log()
    assert group_lag(kafka_bootstrap, worker.app_id) > 0  # killed before the batch's offsets were committed
    worker.env = None
    try:
        worker.start()
        worker.wait_ready()
        assert eventually(lambda: group_lag(kafka_bootstrap, worker.app_id) == 0, 120), worker.log()
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics").read().decode()
        replayed = sum(float(line.split()[-1]) for line in metrics.splitlines()
                       if line.startswith("distillguard_events_replayed_total"))  # fmt: skip
        assert replayed > 0, "the restart read nothing the first run had folded: the crash missed its point"

        cfg = load_scoring().window
        latest: dict[bytes, bytes | None] = {}
        for r in read_until(kafka_bootstrap, f"{worker.app_id}-account-state-changelog", lambda rs: False, timeout=5):
            latest[r.key] = r.value
        counted = {}
        for account in sent:
            state = AccountState.unpack(latest.get(account.encode()), cfg)
            assert state is not None, account
            counted[account] = state.window(state.last_ts, cfg).requests
        assert counted == sent
        decisions = read_until(kafka_bootstrap, "distillguard.throttle", lambda rs: False, timeout=5)
        assert any(r.key == f"account:{harvester}".encode() and r.value for r in decisions)
    finally:
        worker.stop()
    assert not worker.crashes(), worker.log()
