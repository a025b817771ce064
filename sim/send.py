"""Deliver simulated traffic: straight to ``llm.requests`` on Kafka, or as HTTP requests through the
reference gateway (which publishes the events itself and enforces the throttle decisions).

    distillguard simulate SCENARIO --events E --labels L --to-kafka 127.0.0.1:9092
    distillguard simulate SCENARIO --events E --labels L --via-gateway http://127.0.0.1:8080 --live

To Kafka, events keep their simulated timestamps (a backfill, as fast as the broker takes them).
Through the gateway the gateway stamps its own clock, so requests are paced in real time: event ``ts``
is the wall-clock time at which the request is sent (generate the scenario to start *now*). The fields a
real gateway knows from its account database or edge (IP, payment/device fingerprints, account type and
age) travel as ``X-*`` headers that the gateway honours with ``--trust-edge-headers``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.server import EDGE_HEADERS

__all__ = ["Delivery", "request_of", "to_gateway", "to_kafka"]

_BODY_FIELDS = ("model", "prompt", "system", "max_tokens", "n_tools", "n_messages", "conversation_id", "temperature")


@dataclass
class Delivery:
    """What happened to the requests sent: statuses, and output tokens served vs. asked for per account."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    served_tokens: Counter[str] = field(default_factory=Counter)
    wanted_tokens: Counter[str] = field(default_factory=Counter)
    errors: int = 0


def to_kafka(events: Iterable[dict[str, Any]], bootstrap: str, topic: str = "llm.requests",
             progress: Callable[[int], None] | None = None) -> int:  # fmt: skip
    """Produce every event keyed by account (acks=all); returns how many were sent."""
    from kafka import KafkaProducer

    from stream.connection import kafka_python_config

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256_000,
                             **kafka_python_config())  # fmt: skip
    n = 0
    try:
        for n, event in enumerate(events, 1):
            producer.send(topic, key=str(event["account_id"]).encode(), value=orjson.dumps(event))
            if progress is not None and n % 1000 == 0:
                progress(n)
        producer.flush()
    finally:
        producer.close()
    return n


def request_of(event: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """(headers, JSON body) of the HTTP request that produces ``event`` at the gateway.

    >>> request_of({"account_id": "a", "ip": "203.0.113.7", "prompt": "hi", "model": "m", "ts": 1.0})
    ({'X-Account-Id': 'a', 'X-Forwarded-For': '203.0.113.7'}, {'model': 'm', 'prompt': 'hi'})
    """
    headers = {"X-Account-Id": str(event["account_id"])}
    for name, header in EDGE_HEADERS.items():
        if event.get(name) is not None:
            headers[header] = str(event[name])
    return headers, {k: event[k] for k in _BODY_FIELDS if event.get(k) is not None}


async def to_gateway(
    events: Iterable[dict[str, Any]],
    url: str,
    *,
    concurrency: int = 64,
    progress: Callable[[Delivery], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> Delivery:
    """POST each event to the gateway at its ``ts`` (wall clock); never more than ``concurrency`` in flight."""
    import aiohttp

    delivery = Delivery()
    slots = asyncio.Semaphore(concurrency)

    async def send(session: aiohttp.ClientSession, event: dict[str, Any]) -> None:
        headers, body = request_of(event)
        account = headers["X-Account-Id"]
        delivery.wanted_tokens[account] += int(event.get("output_tokens", 0))
        try:
            async with session.post(url, json=body, headers=headers) as response:
                delivery.statuses[response.status] += 1
                if response.status == 200:
                    delivery.served_tokens[account] += int((await response.json()).get("output_tokens", 0))
        except aiohttp.ClientError:
            delivery.errors += 1
        finally:
            slots.release()

    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession() as session:
        for event in events:
            if (wait := event["ts"] - clock()) > 0:
                await asyncio.sleep(wait)
            await slots.acquire()
            task = asyncio.create_task(send(session, event))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            delivery.sent += 1
            if progress is not None and delivery.sent % 50 == 0:
                progress(delivery)
        await asyncio.gather(*tasks)
    return delivery
