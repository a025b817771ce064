"""Correct on several workers (issue 23): what one worker learns, every worker learns."""

from __future__ import annotations

import random
import signal
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from sim import personas as P
from stream.settings import WorkerSettings
from stream.topics import wait_for_topics
from tests.conftest import free_port
from tests.integration.conftest import WorkerProcess, eventually, produce


def confirmed(worker: WorkerProcess) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics").read().decode()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    return sum(
        s.value
        for s in samples
        if s.name == "distillguard_feedback_verdicts_total" and s.labels.get("verdict") == "confirmed"
    )


def settled(workers: list[WorkerProcess], seconds: float = 3.0, timeout: float = 60.0) -> list[float]:
    """Each worker's count once it has stopped moving (each reads the whole log from its start)."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        now = [confirmed(w) for w in workers]
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return now
        time.sleep(0.5)
    raise AssertionError(f"feedback counts kept moving: {last}")


def test_a_verdict_teaches_every_worker_not_only_one_member_of_the_group(kafka_bootstrap: str, tmp_path: Path) -> None:
    app_id = f"dg-mw-{uuid.uuid4().hex[:6]}"
    workers = [WorkerProcess(bootstrap=kafka_bootstrap, data_dir=tmp_path / f"w{i}", app_id=app_id,
                             metrics_port=free_port(), log_path=tmp_path / f"w{i}.log") for i in range(2)]  # fmt: skip
    try:
        for w in workers:
            w.start()
            w.wait_ready()
        wait_for_topics(kafka_bootstrap, {"distillguard.feedback"})
        before = settled(workers)
        value = orjson.dumps({"verdict": "confirmed", "features": {"cot_rate": 0.9, "volume": 0.8}})
        key = f"account:mw-{app_id}".encode()
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        producer.send(
            "distillguard.feedback", key=key, value=value, headers=WorkerSettings().control_headers(key, value)
        )
        producer.flush()
        producer.close()
        after = settled(workers)
        assert [a - b for a, b in zip(after, before, strict=True)] == [1.0, 1.0], [w.log() for w in workers]
    finally:
        for w in workers:
            w.stop()
    for w in workers:
        assert not w.crashes(), w.log()


def metric(worker: WorkerProcess, metric_name: str, /, **labels: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics").read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == metric_name and all(s.labels.get(k) == v for k, v in labels.items()))  # fmt: skip


def test_a_worker_that_takes_over_starts_from_the_models_of_the_one_it_replaces(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Issue 23, item 2 (the models' part): models are checkpointed to a compacted topic, not a local
    disk, so a worker on an empty volume taking over from a killed one starts from them."""
    app_id = f"dg-ck-{uuid.uuid4().hex[:6]}"
    fast = {"DISTILLGUARD_HOUSEKEEPING_SECONDS": "2"}
    first, second = (WorkerProcess(bootstrap=kafka_bootstrap, data_dir=tmp_path / f"w{i}", app_id=app_id,
                                   metrics_port=free_port(), log_path=tmp_path / f"w{i}.log", env=fast)
                     for i in range(2))  # fmt: skip
    rng, run = random.Random(4), uuid.uuid4().hex[:6]
    streams = [P.chat_user(f"ck-person-{run}-{i}", rng, 1_800_000_000.0, days=0.2) for i in range(40)]
    try:
        first.start()
        first.wait_ready()
        records = [(e["account_id"].encode(), orjson.dumps(e)) for e in P.merged(streams)]
        produce(kafka_bootstrap, "llm.requests", records)
        written = lambda: metric(first, "distillguard_checkpoints_total", name="models", outcome="written") > 0  # noqa: E731
        assert eventually(written, 120), first.log()
        first.stop(signal.SIGKILL)
        second.start()  # an empty data directory: nothing on disk to start from
        second.wait_ready()
        restored = lambda: metric(second, "distillguard_checkpoints_total", name="models", outcome="restored") > 0  # noqa: E731
        assert eventually(restored, 90), second.log()
    finally:
        first.stop()
        second.stop()
    assert not second.crashes(), second.log()
