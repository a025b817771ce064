"""Fixes for faust-streaming 0.15.3 bugs that the worker runs into, each applied once per process.

Kept apart from the app so that each one names the bug, where it was seen, and can go when Faust
fixes it upstream.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

from faust.exceptions import ConsumerNotStarted
from faust.transport.consumer import Consumer

__all__ = ["commit_past_duplicate_acks", "drop_records_fetched_before_a_seek"]


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
