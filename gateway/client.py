"""The gateway's view of ``distillguard.throttle``: a signed, compacted topic read into a dict.

A gateway asks :meth:`ThrottleTable.check` on every request; that is one dict lookup and one
comparison against the decision's expiry, which is honoured locally even if the tombstone is late.
A background task consumes the topic from the beginning (it is compacted: the latest record per
account is the state), verifies each record's HMAC and reconnects by itself after broker outages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.signing import verify

__all__ = ["Verdict", "ThrottleTable"]

log = logging.getLogger("distillguard.gateway")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the gateway must do for one account right now."""

    action: str  # challenge | limit | block
    mode: str  # enforce | shadow
    expires_at: float
    decision_id: str
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    cluster_id: str | None = None


def verdict_from_record(value: bytes) -> Verdict:
    """Parse a throttle record's value (raises ``ValueError`` on anything off-contract)."""
    record = orjson.loads(value)
    if not isinstance(record, dict) or record.get("action") not in ("observe", "challenge", "limit", "block"):
        raise ValueError("not a throttle decision")
    limit = record.get("limit") or {}
    return Verdict(
        action=record["action"],
        mode=record.get("mode", "enforce"),
        expires_at=float(record["expires_at"]),
        decision_id=str(record["decision_id"]),
        requests_per_minute=int(limit.get("requests_per_minute", 0)),
        tokens_per_minute=int(limit.get("tokens_per_minute", 0)),
        cluster_id=record.get("cluster_id"),
    )


class ThrottleTable:
    """In-memory table of the decisions in force, kept current from the throttle topic.

    Parameters
    ----------
    bootstrap
        ``host:port`` of the Kafka cluster.
    keys
        Trusted signing keys, id -> secret; records signed otherwise (or not at all) are refused.
    clock
        Wall clock for expiry, injectable for tests.
    """

    def __init__(
        self,
        bootstrap: str,
        keys: Mapping[str, bytes],
        *,
        topic: str = "distillguard.throttle",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bootstrap = bootstrap
        self.keys = dict(keys)
        self.topic = topic
        self.clock = clock
        self.table: dict[str, Verdict] = {}
        self.rejected = 0  # records refused for a missing or bad signature
        self.invalid = 0  # signed records whose value is off-contract
        self.applied = 0
        self.caught_up = asyncio.Event()
        self.connected = False
        self._end_offsets: dict[TopicPartition, int] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None

    # -- the hot path ----------------------------------------------------------------------------

    def check(self, account_id: str) -> Verdict | None:
        """The decision in force for ``account_id``, or ``None``. Expired decisions count as lifted."""
        verdict = self.table.get("account:" + account_id)
        if verdict is None or verdict.expires_at <= self.clock():
            return None
        return verdict

    @property
    def lag(self) -> int:
        """Records on the topic not yet applied (end offset − position, summed over partitions)."""
        return sum(max(0, end - self._positions.get(tp, 0)) for tp, end in self._end_offsets.items())

    # -- keeping it current ------------------------------------------------------------------------

    def apply(self, key: bytes | None, value: bytes | None, headers: Any) -> None:
        """Fold one record in: verify, then set or (null value) lift."""
        if key is None or not verify(key, value, headers, self.keys):
            self.rejected += 1
            return
        subject = key.decode(errors="replace")
        if value is None:
            self.table.pop(subject, None)
        else:
            try:
                self.table[subject] = verdict_from_record(value)
            except (ValueError, KeyError, TypeError):
                self.invalid += 1
                return
        self.applied += 1

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="throttle-table")

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
            )
            try:
                await consumer.start()
                while not consumer.assignment():  # the worker creates the topic; wait for it
                    self._apply_batches(await consumer.getmany(timeout_ms=500))
                self.connected = True
                await self._consume(consumer, sorted(consumer.assignment()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker outage or the like: reconnect and catch up from the start
                log.warning("throttle table lost its connection (%s); reconnecting", exc)
            finally:
                self.connected = False
                await consumer.stop()
            await asyncio.sleep(1.0)

    def _apply_batches(self, batches: Mapping[TopicPartition, Any]) -> None:
        for tp, records in batches.items():
            for r in records:
                self.apply(r.key, r.value, r.headers)
                self._positions[tp] = r.offset + 1

    async def _consume(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        self._end_offsets = await consumer.end_offsets(tps)
        refreshed = time.monotonic()
        while True:
            self._apply_batches(await consumer.getmany(timeout_ms=500, max_records=10_000))
            if time.monotonic() - refreshed > 1.0:
                self._end_offsets = await consumer.end_offsets(tps)
                refreshed = time.monotonic()
            if not self.caught_up.is_set() and self.lag == 0:
                self.caught_up.set()
