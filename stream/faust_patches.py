"""Every private Faust and aiokafka attribute the worker touches, in one place: two fixes for
faust-streaming 0.15.3 bugs (each names the bug and where it was seen, and can go when Faust fixes it
upstream), the reads and settings Faust has no public API for (the producer under it, committed offsets,
its send buffer, the changelog partitioner's metadata, who owns a partition), how a timer survives Faust
stopping under it, and :func:`check_internals`, which the worker runs at
start-up so that a renamed internal fails loudly instead of turning a fix into a silent no-op.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted, NotReady
from faust.transport.consumer import Consumer

__all__ = [
    "InternalsMissing",
    "aiokafka_producer",
    "queue_whole_batches",
    "warm_partitioner",
    "check_internals",
    "commit_past_duplicate_acks",
    "committed_offset",
    "drop_records_fetched_before_a_seek",
    "owns",
    "skipped_once_stopped",
]

log = logging.getLogger("distillguard.worker")


class InternalsMissing(RuntimeError):
    """A pinned Faust/aiokafka internal is gone: the versions in pyproject.toml were changed without
    revisiting this module."""


#: (object, attribute) pairs on classes this module relies on; instance attributes are checked on a live
#: consumer by :func:`check_internals`.
_CLASS_INTERNALS: tuple[tuple[str, str], ...] = (
    ("faust.transport.consumer:Consumer", "_new_offset"),
    ("faust.transport.consumer:Consumer", "getmany"),
    ("faust.transport.drivers.aiokafka:Producer", "_ensure_producer"),
    ("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread", "_ensure_consumer"),
    ("aiokafka.consumer.subscription_state:Assignment", "state_value"),
    ("aiokafka.consumer.subscription_state:TopicPartitionState", "has_valid_position"),
    ("aiokafka.consumer.subscription_state:TopicPartitionState", "position"),
    ("faust.assignor.partition_assignor:PartitionAssignor", "assigned_actives"),
)
_CONSUMER_INTERNALS = ("_acked", "_acked_index", "_committed_offset", "_thread")


def check_internals(consumer: Any = None) -> None:
    """Raise :class:`InternalsMissing` naming every pinned internal that is not there (on the classes, and
    on ``consumer``, Faust's consumer, when given).

    >>> check_internals()
    """
    import importlib

    missing = []
    for where, attribute in _CLASS_INTERNALS:
        module, _, name = where.partition(":")
        owner = getattr(importlib.import_module(module), name, None)
        if owner is None or not hasattr(owner, attribute):
            missing.append(f"{where}.{attribute}")
    if consumer is not None:
        missing += [f"Faust consumer .{a}" for a in _CONSUMER_INTERNALS if not hasattr(consumer, a)]
    if missing:
        raise InternalsMissing(f"Faust/aiokafka internals this worker relies on are gone: {', '.join(missing)}; "
                               "see stream/faust_patches.py")  # fmt: skip


def owns(app: Any, topic: str, partition: int) -> bool:
    """Whether this worker is the group's active owner of ``topic``'s ``partition`` now."""
    return any(tp.topic == topic and tp.partition == partition for tp in app.assignor.assigned_actives())


def aiokafka_producer(producer: Any) -> Any:
    """The aiokafka producer under Faust's (Faust has no public accessor)."""
    return producer._ensure_producer()


def committed_offset(consumer: Any, tp: Any) -> int:
    """The last offset Faust committed for ``tp`` (0 before any)."""
    return int(consumer._committed_offset.get(tp) or 0)


def commit_past_duplicate_acks() -> None:
    """Let a partition's commit move past offsets that were acked twice.

    After a restart with a backlog, Faust can hold an offset twice in a partition's list of acked
    offsets (robinhood/faust#625, #559; never fixed upstream). Its commit takes only the first run of
    consecutive offsets, so every duplicate costs one commit interval (2.8 s): a worker SIGKILLed and
    restarted mid-backlog processed everything but committed about one offset per commit — minutes of
    apparent lag, seen in CI as a stalled restart. Before Faust reads the list, drop offsets below the
    committed one and duplicates; what remains is what Faust expects (sorted, distinct, uncommitted).
    """
    original = Consumer._new_offset
    if getattr(original, "distillguard_patched", False):
        return

    @functools.wraps(original)
    def _new_offset(self: Any, tp: Any) -> int | None:
        acked: list[int] = self._acked[tp]
        if acked:
            committed = self._committed_offset[tp] or 0
            distinct = sorted({offset for offset in acked if offset >= committed})
            if len(distinct) != len(acked):
                self._acked_index[tp].difference_update(offset for offset in acked if offset < committed)
                acked[:] = distinct
        return original(self, tp)

    _new_offset.distillguard_patched = True  # type: ignore[attr-defined]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]


def drop_records_fetched_before_a_seek() -> None:
    """Do not deliver a record that was fetched before its partition was sought back.

    Faust hands a fetched batch to its streams one record at a time, awaiting each, while a rebalance
    goes on around it. When recovery then seeks a partition to its committed offset, the rest of the
    batch in hand was fetched from the old position but is still delivered, and moves Faust's read
    offset past the committed one. The records fetched again from the committed offset then read as
    already seen and are dropped: they are never processed, their offsets never acked, and the
    partition's commit waits for them forever. Seen in CI as a group that never caught up after a
    worker joined and another left mid-stream (the joiner acked from offset 400 of a partition
    committed at 339). aiokafka guards its own buffer the same way: a record is delivered only while
    the partition's fetch position is still past it, so a record that a seek will fetch again is
    left to that fetch.
    """
    original = Consumer.getmany
    if getattr(original, "distillguard_patched", False):
        return

    @functools.wraps(original)
    async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        async for tp, message in original(self, timeout):
            if fetched_again(self, tp, message.offset):
                continue
            yield tp, message

    getmany.distillguard_patched = True  # type: ignore[attr-defined]
    Consumer.getmany = getmany  # type: ignore[method-assign]


def fetched_again(consumer: Any, tp: Any, offset: int) -> bool:
    """Whether the aiokafka consumer under Faust's will fetch ``offset`` of ``tp`` again: its position
    was sought back to or before it, or the partition is no longer assigned or awaits a reset."""
    try:
        assignment = consumer._thread._ensure_consumer()._subscription.subscription.assignment
    except (AttributeError, ConsumerNotStarted):  # not aiokafka, or not subscribed: nothing to compare
        return False
    state = assignment.state_value(tp) if assignment is not None else None
    if state is None or not state.has_valid_position:
        return True
    return bool(offset >= state.position)


async def warm_partitioner(app: faust.App, tables: Iterable[Any]) -> None:
    """``use_partitioner`` tables choose a changelog partition synchronously from the producer's
    metadata, which aiokafka loads lazily and a leader failover can clear: load it before writes, or a
    write fails with a TypeError inside aiokafka (seen in `make demo`, and in CI's failover test, where
    it crashed the detect agent). Cheap once loaded: callers do it before every batch of writes."""
    producer: Any = app.producer
    underlying = aiokafka_producer(producer)
    for table in tables:
        await underlying.partitions_for(table.changelog_topic.get_topic_name())


def queue_whole_batches(app: faust.App, batch_size: int) -> None:
    """Faust flushes its send buffer synchronously once it holds 100 messages, which stalls the agent
    on every burst of changelog writes; let a whole batch's writes queue instead."""
    producer: Any = app.producer
    producer.buffer.max_messages = batch_size


def skipped_once_stopped(timer: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A timer that sends is cut short, not crashed, when the worker stops under it: Faust stops the
    producer while a timer may be between two sends (seen in CI). What it skipped, the next run after
    a restart does again (the cluster stage re-scores, expired decisions are still in the table)."""

    @functools.wraps(timer)
    async def run() -> None:
        try:
            await timer()
        except NotReady:
            log.info("%s cut short: the producer has stopped (the worker is stopping)", timer.__name__)

    return run
