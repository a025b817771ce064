"""Shared fixtures: a real Apache Kafka broker, started with the same script as ``make kafka-up``.

Set ``DISTILLGUARD_TEST_BROKER=host:port`` to use a broker that is already running instead.
Integration tests never skip: if the broker cannot start, they fail and say why.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.runtime import free_port

REPO = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"


def free_port_block(length: int = 2) -> int:
    """A free port whose next ``length - 1`` ports are free too: a broker and its controller (kafka.sh
    uses port + 1), and with ``length=3`` its SASL_SSL listener (port + 2)."""
    while True:
        port = free_port()
        try:
            for offset in range(1, length):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue


def make_event(i: int, *, account: str = "acct-1", ts: float = 1_800_000_000.0, **extra: object) -> dict[str, object]:
    """A valid request event; tests override fields with ``extra``."""
    event: dict[str, object] = {
        "event_id": f"{account}-{i}",
        "ts": ts,
        "account_id": account,
        "model": "frontier-1",
        "input_tokens": 120,
        "output_tokens": 900,
    }
    event.update(extra)
    return event


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running single-node KRaft broker, stopped by its pid after the session."""
    existing = os.environ.get("DISTILLGUARD_TEST_BROKER")
    if existing:
        yield existing
        return
    port = free_port_block()
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_RUN_DIR": str(tmp_path_factory.mktemp("kafka"))}
    up = subprocess.run([str(KAFKA_SH), "up"], env=env, capture_output=True, text=True, timeout=600)
    if up.returncode != 0:
        pytest.fail(f"could not start Kafka with {KAFKA_SH} up:\n{up.stdout}\n{up.stderr}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(KAFKA_SH), "down"], env=env, capture_output=True, timeout=120)
