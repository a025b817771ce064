"""Helpers for end-to-end tests: a worker process, and kafka-python producers and readers."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from sim import personas as P
from tests.conftest import KAFKA_SH, REPO, free_port, free_port_block

# kafka-python's log.exception when a socket closes under a read: logged, handled, not a failure.
_NETWORK_NOISE = ("Error receiving network data closing socket",)


def crashes(log: str) -> list[str]:
    r"""The records of a worker's log (each starts with its ``[date time]``) that hold a traceback, except
    kafka-python's network noise (see :data:`_NETWORK_NOISE`).

    >>> crashes("[2026-01-01 00:00:00,0] [1] [INFO] ok\n[2026-01-01 00:00:01,0] [1] [ERROR] boom\nTraceback (x)")
    ['[2026-01-01 00:00:01,0] [1] [ERROR] boom\nTraceback (x)']
    """
    records = re.split(r"\n(?=\[\d{4}-\d\d-\d\d )", log)
    return [r for r in records if "Traceback" in r and not any(n in r.split("\n", 1)[0] for n in _NETWORK_NOISE)]


@dataclass
class WorkerProcess:
    """One ``distillguard worker`` subprocess; its log is kept for failure messages."""

    bootstrap: str
    data_dir: Path
    app_id: str
    metrics_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    extra: tuple[str, ...] = ()
    triage_port: int = 0
    env: dict[str, str] | None = None  # added to this process's environment (Kafka credentials)

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stream.cli",
                "worker",
                "--dev",
                "--max-future-seconds",  # the tests replay a synthetic timeline from T0 (Jan 2027)
                "1e10",
                "--broker",
                f"kafka://{self.bootstrap}",
                "--app-id",
                self.app_id,
                "--data-dir",
                str(self.data_dir),
                "--partitions",
                "4",
                "--metrics-port",
                str(self.metrics_port),
                "--triage-port",
                str(self.triage_port),
                "--loglevel",
                "info",
                *self.extra,
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"},
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def crashes(self) -> list[str]:
        """The log records that carry a traceback, but for kafka-python's own network noise: it logs a
        socket closed under a pending read (at a consumer's close) with its traceback, which is neither a
        crash nor an agent that raised."""
        return crashes(self.log_path.read_text(errors="replace"))

    def log(self) -> str:
        """The log's tail, for failure messages; a live worker also dumps what each of its tasks awaits
        (mode's SIGUSR1 handler), so a stalled worker says where it is stuck."""
        before = self.log_path.read_text(errors="replace")
        if self.proc is None or self.proc.poll() is not None:
            return before[-5000:]
        self.proc.send_signal(signal.SIGUSR1)
        time.sleep(3)
        stacks = self.log_path.read_text(errors="replace")[len(before) :]
        warnings = [line for line in before.splitlines() if "[WARNING]" in line or "[ERROR]" in line]
        # A failure report shows its head and tail: what the agents await goes last, where it is read.
        agents = [block for block in stacks.split("~" * 20) if "stream/app.py" in block or "cluster_agents" in block]
        return (f"{before[-4000:]}\n--- its warnings and errors ---\n" + "\n".join(warnings[-15:])
                + f"\n--- tasks of the live worker (SIGUSR1) ---\n{stacks[-20000:]}"
                + "\n--- the agents' own tasks ---\n" + "\n".join(b[-3000:] for b in agents))  # fmt: skip

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, f"worker exited:\n{self.log()}"
            if self.log_path.read_text(errors="replace").count("Worker ready") > self._ready_seen:
                self._ready_seen += 1
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log()}")

    _ready_seen: int = 0


def new_worker(bootstrap: str, tmp_path: Path, *extra: str) -> WorkerProcess:
    """A worker with its own consumer group, data dir and metrics port (not started)."""
    return WorkerProcess(
        bootstrap=bootstrap,
        data_dir=tmp_path / "worker",
        app_id=f"dg-test-{uuid.uuid4().hex[:8]}",
        metrics_port=free_port(),
        log_path=tmp_path / "worker.log",
        extra=extra,
        triage_port=free_port(),
    )


@pytest.fixture
def worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    w = new_worker(kafka_bootstrap, tmp_path)
    w.start()
    try:
        yield w
    finally:
        w.stop()
    # An agent that raised leaves a worker that looks alive and processes nothing: fail loudly.
    assert not w.crashes(), w.log()


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def harvest(account: str, start: float, n: int) -> list[tuple[bytes, bytes]]:
    """``n`` requests of the simulator's CoT harvester from ``start``, as (key, value) records."""
    events = P.cot_harvester(account, random.Random(account), start, hours=n * 5 / 3600)[:n]
    return [(account.encode(), orjson.dumps(e)) for e in events]


def eventually(check: Callable[[], bool], timeout: float) -> bool:
    """Poll ``check`` until it holds or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return check()


def read_until(bootstrap: str, topic: str, done: Any, timeout: float = 60.0) -> list[Any]:
    """Read ``topic`` from the beginning until ``done(records)`` is true or ``timeout`` passes."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done(records):
            records.extend(consumer)
    finally:
        consumer.close()
    return records


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A broker of this test's own (restarting the shared one would disturb other tests)."""
    port = free_port_block()
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_RUN_DIR": str(tmp_path / "kafka")}
    subprocess.run([str(KAFKA_SH), "up"], env=env, check=True, capture_output=True, timeout=600)
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([str(KAFKA_SH), "down"], env=env, capture_output=True, timeout=120)


@dataclass
class ThreeNodes:
    """A three-node KRaft cluster of this test's own (``kafka.sh cluster-up``): node n listens on
    ``base + 10 (n - 1)``, its controller one port above."""

    base: int
    env: dict[str, str]

    def port(self, node: int) -> int:
        return self.base + 10 * (node - 1)

    def bootstrap(self, *nodes: int) -> str:
        return ",".join(f"127.0.0.1:{self.port(n)}" for n in nodes or (1, 2, 3))

    def kafka(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(KAFKA_SH), *args], env=self.env, capture_output=True, text=True, timeout=300)

    def kill(self, node: int) -> None:
        """SIGKILL the node's JVM: no clean shutdown, no leadership handed over first."""
        pid_file = Path(self.env["KAFKA_RUN_DIR"]) / f"node{node}" / "kafka.pid"
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _free_cluster_base() -> int:
    """A base port such that base, base+1, base+10, base+11, base+20, base+21 are all free."""
    for _ in range(100):
        base = random.randrange(20_000, 40_000, 100)
        try:
            for offset in (0, 1, 10, 11, 20, 21):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
    raise RuntimeError("no free block of ports on loopback")


@pytest.fixture
def three_nodes(tmp_path: Path) -> Iterator[ThreeNodes]:
    base = _free_cluster_base()
    env = {**os.environ, "KAFKA_PORT": str(base), "KAFKA_RUN_DIR": str(tmp_path / "k3"), "KAFKA_HEAP": "384m"}
    cluster = ThreeNodes(base, env)
    up = cluster.kafka("cluster-up")
    try:
        assert up.returncode == 0, up.stderr
        yield cluster
    finally:
        cluster.kafka("cluster-down")
