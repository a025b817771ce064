"""End to end on a real Kafka broker: events in, decisions and DLQ records out, state across restarts."""

from __future__ import annotations

import hashlib
import random
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from detectors.events import MAX_SALVAGE_BYTES, InvalidEvent, decode_event, dlq_value
from sim import personas as P
from stream.topics import ALL_TOPICS, wait_for_topics
from tests.conftest import make_event
from tests.detectors.test_events import INVALID
from tests.integration.conftest import WorkerProcess, new_worker, produce, read_until
from tests.promtool import check_metrics

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0


def unique(name: str) -> str:
    """Account names unique to this run: topics persist across tests and across runs on a reused broker."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def events(account: str, n: int, start: float, gap: float = 0.1, first: int = 0) -> list[tuple[bytes, bytes]]:
    """Plain, calm requests."""
    return [
        (account.encode(), orjson.dumps(make_event(first + i, account=account, ts=start + i * gap))) for i in range(n)
    ]


def harvester(account: str, n: int, start: float, first: int = 0) -> list[tuple[bytes, bytes]]:
    """A CoT-template harvester from the simulator's personas: one request every ~3 s."""
    stream = P.cot_harvester(account, random.Random(first), start, hours=n * 5 / 3600)[:n]
    for i, e in enumerate(stream):
        e["event_id"] = f"{account}-{first + i}"
    return [(account.encode(), orjson.dumps(e)) for e in stream]


def unrepairable(raw: bytes) -> str | None:
    """The DLQ reason of an event the worker cannot score even after dropping bad optional fields."""
    try:
        decode_event(raw, [])
    except InvalidEvent as exc:
        return exc.reason
    return None


def decisions_for(records: list[Any], account: str) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records if r.key == f"account:{account}".encode() and r.value is not None]


def test_worker_creates_its_topics_with_explicit_configs(worker: WorkerProcess) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    worker.wait_ready()
    wait_for_topics(worker.bootstrap, {t.name for t in ALL_TOPICS})
    admin = KafkaAdminClient(bootstrap_servers=worker.bootstrap)
    try:
        changelog = f"{worker.app_id}-account-state-changelog"
        names = [t.name for t in ALL_TOPICS] + [changelog]
        partitions = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}
        for spec in ALL_TOPICS:
            if spec.partitions is not None:
                assert partitions[spec.name] == spec.partitions, spec.name
        assert partitions[changelog] == partitions["llm.requests"]  # state co-partitioned with its input
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "distillguard.throttle")])
        assert configs["topic"]["distillguard.throttle"]["cleanup.policy"]["value"] == "compact"
    finally:
        admin.close()


def test_worker_publishes_a_throttle_decision_and_dead_letters_bad_input(worker: WorkerProcess) -> None:
    worker.wait_ready()
    wait_for_topics(worker.bootstrap, {"llm.requests"})
    hot_id, calm_id = unique("hot"), unique("calm")
    bad = [(unique("bad").encode(), raw) for _, raw, _ in INVALID if unrepairable(raw)]
    produce(worker.bootstrap, "llm.requests", harvester(hot_id, 300, T0) + bad + events(calm_id, 5, T0, gap=30))

    def enforced(records: list[Any]) -> bool:
        return any(d["action"] in ("limit", "block") for d in decisions_for(records, hot_id))

    throttle = read_until(worker.bootstrap, "distillguard.throttle", enforced)
    hot = decisions_for(throttle, hot_id)
    assert enforced(throttle), hot
    strongest = hot[-1]
    assert strongest["mode"] == "enforce" and strongest["reason"] and strongest["evidence"]["explanation"]
    assert decisions_for(throttle, calm_id) == []

    bad_keys = {key for key, _ in bad}
    dlq = read_until(
        worker.bootstrap, "llm.requests.dlq", lambda rs: len([r for r in rs if r.key in bad_keys]) >= len(bad)
    )
    by_key = {r.key: r for r in dlq if r.key in bad_keys}
    assert len(by_key) == len(bad), worker.log()
    for key, raw in bad:
        record = by_key[key]
        headers = dict(record.headers)
        assert record.value == dlq_value(raw)  # bounded and redacted: no prompt text at rest
        assert headers["dlq.original.sha256"] == hashlib.sha256(raw).hexdigest().encode()
        assert int(headers["dlq.original.bytes"]) == len(raw) and headers["dlq.value"] == b"redacted"
        assert headers["dlq.reason"].decode() == unrepairable(raw)
        assert headers["dlq.source.topic"] == b"llm.requests"
        assert int(headers["dlq.source.offset"]) >= 0 and int(headers["dlq.source.partition"]) >= 0

    # The metric counts every DLQ record this worker wrote; on a reused broker it also re-read older runs.
    exposition = urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics").read()
    assert check_metrics(exposition) == ""  # the live worker's metrics, as promtool sees them
    samples = [s for f in text_string_to_metric_families(exposition.decode()) for s in f.samples]
    counted = {s.labels["reason"]: s.value for s in samples if s.name == "distillguard_dlq_records_total"}
    for reason, n in Counter(unrepairable(raw) for _, raw in bad).items():
        assert counted[reason] >= n, (reason, counted)
    health = urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/healthz")
    assert health.status == 200 and orjson.loads(health.read()) == {"ok": True, "reason": "ok"}
    assert any(s.name == "distillguard_worker_stalled" and s.value == 0 for s in samples)
    decided = [s for s in samples if s.name == "distillguard_decisions_total" and s.value > 0]
    assert any(s.labels["action"] == strongest["action"] and s.labels["reason"] in strongest["reason"] for s in decided)


def test_worker_recovers_account_state_after_a_restart(worker: WorkerProcess) -> None:
    worker.wait_ready()
    wait_for_topics(worker.bootstrap, {"llm.requests"})
    steady = unique("steady")
    # 25 requests: suspicious, but under the 30 the policy needs before it limits anything.
    produce(worker.bootstrap, "llm.requests", harvester(steady, 25, T0))
    first = read_until(worker.bootstrap, "distillguard.throttle", lambda rs: len(decisions_for(rs, steady)) >= 1)
    assert [d["action"] for d in decisions_for(first, steady)] == ["challenge"]

    worker.stop()
    worker.start()
    worker.wait_ready()
    # 10 more: only a worker that still remembers the first 25 has the evidence to limit or block.
    produce(worker.bootstrap, "llm.requests", harvester(steady, 10, T0 + 80, first=25))
    after = read_until(worker.bootstrap, "distillguard.throttle", lambda rs: len(decisions_for(rs, steady)) >= 2)
    actions = [d["action"] for d in decisions_for(after, steady)]
    assert actions[0] == "challenge" and actions[1] in ("limit", "block"), worker.log()
    assert decisions_for(after, steady)[1]["evidence"]["requests"] >= 30


def allowlist(bootstrap: str, *args: str) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    subprocess.run([sys.executable, "-m", "stream.cli", "allowlist", *args, "--broker", bootstrap, "--by", "test"],
                   cwd=REPO, check=True, capture_output=True)  # fmt: skip


def test_allowlist_exempts_accounts_and_lifts_decisions_in_force_without_a_restart(worker: WorkerProcess) -> None:
    worker.wait_ready()
    wait_for_topics(worker.bootstrap, {"llm.requests", "distillguard.allowlist"})
    exempt, caught, forged = unique("eval-partner"), unique("harvester"), unique("forger")
    allowlist(worker.bootstrap, "add", "--account", exempt, "--reason", "contracted evaluation")
    # Anyone who can write the topic can write an entry; unsigned, it exempts nobody (issue 22, item 5).
    produce(worker.bootstrap, "distillguard.allowlist", [(f"account:{forged}".encode(), b'{"reason": "trust me"}')])
    time.sleep(3)  # the worker follows the allowlist topic live
    produce(worker.bootstrap, "llm.requests",
            harvester(exempt, 120, T0) + harvester(caught, 120, T0) + harvester(forged, 120, T0))  # fmt: skip

    def enforced_on(account: str) -> Callable[[list[Any]], bool]:
        return lambda records: any(r.value and orjson.loads(r.value)["action"] in ("limit", "block")
                                   for r in records if r.key == f"account:{account}".encode())  # fmt: skip

    enforced = enforced_on(caught)
    throttle = read_until(
        worker.bootstrap, "distillguard.throttle", lambda rs: enforced(rs) and enforced_on(forged)(rs)
    )
    assert enforced(throttle) and enforced_on(forged)(throttle), worker.log()
    assert decisions_for(throttle, exempt) == []

    # Allowlisting an account with a decision in force lifts it: a tombstone follows.
    allowlist(worker.bootstrap, "add", "--account", caught, "--reason", "false positive")
    key = f"account:{caught}".encode()
    lifted = read_until(worker.bootstrap, "distillguard.throttle",
                        lambda rs: any(r.key == key and r.value is None for r in rs), timeout=30)  # fmt: skip
    assert any(r.key == key and r.value is None for r in lifted)


def test_a_client_cannot_keep_its_requests_out_of_detection_with_bad_optional_fields(worker: WorkerProcess) -> None:
    """Issue 22, item 1: a harvester whose every event breaks the contract in an optional field, or carries a
    300 KB system prompt, is still scored and enforced; bad fields are counted, not dead-lettered."""
    worker.wait_ready()
    wait_for_topics(worker.bootstrap, {"llm.requests"})
    sly = unique("sly")
    hostile = [{"n_tools": -1}, {"temperature": "hot"}, {"account_type": "vip"}, {"system": "s" * 300_000}]
    records = []
    for i, (key, raw) in enumerate(harvester(sly, 300, T0 + 7200)):
        event = orjson.loads(raw)
        event.update(hostile[i % len(hostile)])
        records.append((key, orjson.dumps(event)))
    # One event past the salvage limit goes to the DLQ without stopping the agent (it used to crash it).
    giant = orjson.dumps(make_event(0, account=unique("giant"), system="g" * (MAX_SALVAGE_BYTES + 10)))
    produce(worker.bootstrap, "llm.requests", [(b"giant", giant)] + records)

    def enforced(rs: list[Any]) -> bool:
        return any(d["action"] in ("limit", "block") for d in decisions_for(rs, sly))

    assert enforced(read_until(worker.bootstrap, "distillguard.throttle", enforced)), worker.log()
    dlq = read_until(worker.bootstrap, "llm.requests.dlq", lambda rs: any(r.key == b"giant" for r in rs))
    giant_record = next(r for r in dlq if r.key == b"giant")
    assert dict(giant_record.headers)["dlq.reason"] == b"too_large" and len(giant_record.value) <= 16_384
    assert not any(r.key == sly.encode() for r in dlq)  # the repaired events were scored, not dead-lettered
    text = urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics").read().decode()
    dropped = {s.labels["field"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "distillguard_event_fields_dropped_total"}  # fmt: skip
    assert dropped["n_tools"] >= 75 and dropped["temperature"] >= 75 and dropped["account_type"] >= 75
    assert dropped["system"] >= 75


def test_a_worker_creates_a_missing_data_directory_with_its_parents(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Issue 24: started where no .run/ exists (a fresh clone, a container), it used to crash at once."""
    w = new_worker(kafka_bootstrap, tmp_path)
    w.data_dir = tmp_path / "fresh" / "clone" / ".run" / "worker"
    w.start()
    try:
        w.wait_ready()
        assert w.data_dir.is_dir()
        assert "connecting to kafka://" in w.log_path.read_text(errors="replace")
    finally:
        w.stop()


def test_an_event_from_the_far_future_is_scored_at_the_wall_clock_limit(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Issue 22, item 3: one event stamped in the year 4822 used to move every event-time clock (idle
    eviction, windows, cluster ticks) and persist in the checkpoint. It is scored at now + 300 s, counted."""
    w = new_worker(kafka_bootstrap, tmp_path, "--max-future-seconds", "300")
    w.start()
    try:
        w.wait_ready()
        traveller, now = unique("traveller"), time.time()
        records = []
        for i, (key, raw) in enumerate(harvester(traveller, 300, now - 900)):
            event = orjson.loads(raw)
            event["ts"] = 9e10 + i * 3.0
            records.append((key, orjson.dumps(event)))
        produce(w.bootstrap, "llm.requests", records)

        def decided(rs: list[Any]) -> bool:
            return bool(decisions_for(rs, traveller))

        found = decisions_for(read_until(w.bootstrap, "distillguard.throttle", decided), traveller)
        assert found, w.log()
        assert all(d["issued_at"] <= time.time() + 300 + 5 for d in found)  # never the year 4822
        text = urllib.request.urlopen(f"http://127.0.0.1:{w.metrics_port}/metrics").read().decode()
        future = sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                     if s.name == "distillguard_future_events_total")  # fmt: skip
        assert future >= 300
    finally:
        w.stop()


def test_a_worker_pointed_at_a_broker_that_does_not_answer_says_so_and_reports_it_on_healthz(tmp_path: Path) -> None:
    """Issue 24: it used to print nothing for 30 s or more; a wrong address is an operator's first mistake."""
    from tests.conftest import free_port

    dead = f"127.0.0.1:{free_port()}"  # nothing listens here
    w = new_worker(dead, tmp_path)
    w.start()
    try:
        deadline, said, health = time.monotonic() + 30, False, None
        while time.monotonic() < deadline and not (said and health):
            said = f"cannot reach {dead}" in w.log_path.read_text(errors="replace")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{w.metrics_port}/healthz", timeout=2)
            except urllib.error.HTTPError as exc:  # 503 while the broker does not answer
                health = (exc.code, orjson.loads(exc.read()))
            except OSError:
                pass
            time.sleep(0.5)
        assert said, w.log()
        assert health is not None and health[0] == 503 and dead in health[1]["reason"], health
    finally:
        w.stop()


def test_a_decision_made_while_catching_up_on_old_events_is_enforced_for_a_full_ttl_from_now(
    worker: WorkerProcess,
) -> None:
    """Issue 23, item 4: expiry was event time and lifting wall clock, so a decision about events two hours
    old was lifted the moment it was published. Detection keeps event time; enforcement lives on the wall clock."""
    worker.wait_ready()
    wait_for_topics(worker.bootstrap, {"llm.requests", "distillguard.throttle"})
    late = unique("backfill")
    produce(worker.bootstrap, "llm.requests", harvester(late, 300, time.time() - 7200))
    key = f"account:{late}".encode()

    def decided(rs: list[Any]) -> bool:
        return any(r.key == key and r.value is not None for r in rs)

    published = time.time()
    records = read_until(worker.bootstrap, "distillguard.throttle", decided)
    first = next(orjson.loads(r.value) for r in records if r.key == key and r.value is not None)
    assert first["issued_at"] < published - 3600  # decided on the events' own (old) time
    assert first["expires_at"] >= published + 3600 - 60  # enforceable for a full TTL from now
    time.sleep(5)  # the lift timer runs every few seconds: it must not lift it as already expired
    later = read_until(worker.bootstrap, "distillguard.throttle", lambda rs: False, timeout=5)
    assert not any(r.key == key and r.value is None for r in later), "lifted on arrival"
