"""The broker restarted while a worker runs: the worker reconnects by itself and catches up — every
event produced before, during and after the outage is processed, and decisions keep coming."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from stream.topics import group_lag, wait_for_topics
from tests.conftest import KAFKA_SH
from tests.integration.conftest import eventually, harvest, new_worker, produce, read_until

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0


def test_the_worker_survives_a_broker_restart_and_catches_up(own_broker: tuple[str, dict[str, str]],
                                                              tmp_path: Path) -> None:  # fmt: skip
    bootstrap, env = own_broker
    worker = new_worker(bootstrap, tmp_path)
    before, after = f"before-{uuid.uuid4().hex[:6]}", f"after-{uuid.uuid4().hex[:6]}"
    try:
        worker.start()
        worker.wait_ready()
        wait_for_topics(bootstrap, {"llm.requests", "distillguard.throttle"})
        produce(bootstrap, "llm.requests", harvest(before, T0, 200))

        def decided(account: str) -> Any:
            return lambda rs: any(r.key == f"account:{account}".encode() and r.value for r in rs)

        assert decided(before)(read_until(bootstrap, "distillguard.throttle", decided(before), timeout=90))

        subprocess.run([str(KAFKA_SH), "down"], env=env, check=True, capture_output=True, timeout=120)
        time.sleep(10)  # the worker runs without a broker for a while
        assert worker.proc is not None and worker.proc.poll() is None, worker.log()
        subprocess.run([str(KAFKA_SH), "up"], env=env, check=True, capture_output=True, timeout=600)

        produce(bootstrap, "llm.requests", harvest(after, T0 + 7200, 200))
        throttle = read_until(bootstrap, "distillguard.throttle", decided(after), timeout=180)
        assert decided(after)(throttle), worker.log()
        assert eventually(lambda: group_lag(bootstrap, worker.app_id) == 0, 120), worker.log()  # nothing behind
    finally:
        worker.stop()
    assert not worker.crashes(), worker.log()
