"""Read a compacted topic from the beginning into memory and keep following it.

The gateway's throttle table and the worker's allowlist are both "the latest record per key" of a
compacted topic that every process needs in full (not a consumer group's share): this reader assigns
itself every partition, starts from the beginning on every (re)connect, reports lag and whether it
has caught up, and reconnects by itself after a broker outage. The worker's feedback log is read the
same way but with ``resume``: a log of verdicts, each to be learnt once, so a reconnect goes on from
where it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.connection import aiokafka_config

__all__ = ["CompactedReader", "OnRecord"]

log = logging.getLogger("distillguard.compacted")

#: Called for each record: (key, value or None for a tombstone, headers).
OnRecord = Callable[[bytes | None, bytes | None, Any], None]


class CompactedReader:
    """Follows ``topic`` on ``bootstrap`` and hands every record to ``on_record``."""

    def __init__(
        self, bootstrap: str, topic: str, on_record: OnRecord, *, reconnect_seconds: float = 1.0, resume: bool = False
    ) -> None:
        self.bootstrap = bootstrap
        self.resume = resume  # after a reconnect, go on from the last position instead of the start
        self.topic = topic
        self.on_record = on_record
        self.reconnect_seconds = reconnect_seconds
        self.caught_up = asyncio.Event()
        self.connected = False
        self.reconnects = 0
        self.failed = 0  # records whose handler raised: logged and skipped, never a restart from the start
        self._end_offsets: dict[TopicPartition, int] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def lag(self) -> int:
        """Records on the topic not yet applied (end offset − position, summed over partitions)."""
        return sum(max(0, end - self._positions.get(tp, 0)) for tp, end in self._end_offsets.items())

    @property
    def ready(self) -> bool:
        return self.connected and self.caught_up.is_set()

    async def start(self) -> None:
        """Start following (once: a second call while it runs does nothing), so whoever needs the topic
        first can start it without waiting for whoever owns it."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"compacted:{self.topic}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            # Without a group id, aiokafka assigns every partition of the subscribed topic itself and
            # starts from the beginning: the whole compacted state is read on every (re)connect.
            consumer = AIOKafkaConsumer(
                self.topic,
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                **aiokafka_config(),
            )
            try:
                await consumer.start()
                while not consumer.assignment():  # the topic may not exist yet; wait for it
                    self._apply(await consumer.getmany(timeout_ms=500))
                if self.resume:
                    for tp in consumer.assignment():
                        if tp in self._positions:
                            consumer.seek(tp, self._positions[tp])
                self.connected = True
                await self._follow(consumer, sorted(consumer.assignment()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker outage or the like: reconnect and catch up from the start
                log.warning("lost %s (%s); reconnecting", self.topic, exc)
            finally:
                self.connected = False
                # stop() can wait forever on a dead broker (and ignore cancellation): give it 5 s, then
                # abandon it and build a fresh consumer.
                stopping = asyncio.ensure_future(consumer.stop())
                done, _ = await asyncio.wait({stopping}, timeout=5)
                if not done:
                    log.info("consumer of %s did not stop within 5 s; abandoning it", self.topic)
            self.reconnects += 1
            await asyncio.sleep(self.reconnect_seconds)

    def _apply(self, batches: Mapping[TopicPartition, Any]) -> None:
        for tp, records in batches.items():
            done = self._positions.get(tp, 0) if self.resume else 0
            for r in records:
                if r.offset < done:  # resuming: read before the reconnect, applied once already
                    continue
                try:
                    self.on_record(r.key, r.value, r.headers)
                except Exception as exc:  # noqa: BLE001 - one crafted record must not restart the whole read
                    self.failed += 1
                    log.warning("skipped %s[%d]@%d: %s", self.topic, tp.partition, r.offset, type(exc).__name__)
                self._positions[tp] = r.offset + 1

    async def _follow(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        self._end_offsets = await consumer.end_offsets(tps)
        refreshed = time.monotonic()
        while True:
            self._apply(await consumer.getmany(timeout_ms=500, max_records=10_000))
            if time.monotonic() - refreshed > 1.0:
                # Also how a dead broker is noticed: end_offsets raises once the connection is gone.
                self._end_offsets = await asyncio.wait_for(consumer.end_offsets(tps), timeout=10)
                refreshed = time.monotonic()
            if not self.caught_up.is_set() and self.lag == 0:
                self.caught_up.set()
