"""Simulated traffic delivered on the real broker: straight to a topic, and through the reference gateway,
whose published events must carry what the simulator's edge headers said (IP, payment fingerprint)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from gateway.server import GatewayConfig, create_app
from sim.scenario import load_scenario, write
from sim.send import to_gateway, to_kafka
from stream.replay import read_lines
from tests.conftest import free_port
from tests.integration.conftest import read_until

pytestmark = pytest.mark.integration

SCENARIO = """
[scenario]
name = "delivery"
seed = 5

[[population]]
name = "pool"
persona = "synchronized_harvester"
accounts = 4
kind = "attack"
campaign = "A"
start_within_hours = 0.0
infra = { cards = 2, proxy = "p", proxy_ips = 3 }
params = { hours = 0.003, gap = 0.5 }
"""


def ensure_topic(bootstrap: str, name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def simulate(tmp_path: Path, start: float) -> list[dict[str, Any]]:
    (tmp_path / "s.toml").write_text(SCENARIO)
    scenario = dataclasses.replace(load_scenario(tmp_path / "s.toml"), start=start)
    write(scenario, tmp_path / "e.jsonl", tmp_path / "l.jsonl")
    return [orjson.loads(line) for line in read_lines(tmp_path / "e.jsonl")]


def test_to_kafka_delivers_every_event_keyed_by_account(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = f"sim-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka_bootstrap, topic)
    events = simulate(tmp_path, 1_800_000_000.0)
    assert to_kafka(events, kafka_bootstrap, topic=topic) == len(events)
    records = read_until(kafka_bootstrap, topic, lambda r: len(r) >= len(events), timeout=30)
    assert sorted(orjson.loads(r.value)["event_id"] for r in records) == sorted(str(e["event_id"]) for e in events)
    assert all(r.key.decode() == orjson.loads(r.value)["account_id"] for r in records)


def test_through_the_gateway_events_are_paced_and_carry_the_edge_fields(kafka_bootstrap: str, tmp_path: Path) -> None:
    ensure_topic(kafka_bootstrap, "llm.requests")
    port = free_port()
    run = uuid.uuid4().hex[:6]

    async def go() -> tuple[list[dict[str, Any]], float]:
        app = create_app(GatewayConfig(broker=kafka_bootstrap, trust_edge_headers=True))
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            events = simulate(tmp_path, time.time() + 1.0)
            for e in events:
                e["account_id"] = f"{e['account_id']}-{run}"
            started = time.time()
            delivery = await to_gateway(events, f"http://127.0.0.1:{port}/v1/messages")
            assert delivery.sent == len(events) and delivery.statuses[200] == len(events) and not delivery.errors
            return events, time.time() - started
        finally:
            await runner.cleanup()

    events, took = asyncio.run(go())
    assert len({e["payment_fingerprint"] for e in events}) == 2 and len({e["ip"] for e in events}) > 1
    assert took >= events[-1]["ts"] - events[0]["ts"] - 0.5  # paced in real time, not fired at once

    def mine(records: list[Any]) -> list[dict[str, Any]]:
        return [d for r in records if (d := orjson.loads(r.value))["account_id"].endswith(run)]

    published = mine(read_until(kafka_bootstrap, "llm.requests", lambda r: len(mine(r)) >= len(events), timeout=30))

    def seen(es: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
        return sorted((e["account_id"], e["prompt"], e["ip"], e["payment_fingerprint"]) for e in es)

    assert seen(published) == seen(events)
    starts = {e["account_id"]: e["ts"] for e in reversed(events)}
    assert all(abs(p["ts"] - starts[p["account_id"]]) < 60 for p in published)  # stamped by the gateway, now
