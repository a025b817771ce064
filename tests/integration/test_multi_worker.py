"""Correct on several workers (issue 23): what one worker learns, every worker learns."""

from __future__ import annotations

import time
import urllib.request
import uuid
from pathlib import Path

import orjson
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from stream.settings import WorkerSettings
from stream.topics import wait_for_topics
from tests.conftest import free_port
from tests.integration.conftest import WorkerProcess


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
