"""Specification of the fixes applied to faust-streaming: each states the bug it removes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.structs import ConsumerRecord, TopicPartition
from faust.exceptions import NotReady
from faust.transport.consumer import Consumer
from faust.types import TP

from stream.faust_patches import (
    InternalsMissing,
    check_internals,
    commit_past_duplicate_acks,
    drop_records_fetched_before_a_seek,
    skipped_once_stopped,
)

PARTITION = TP("llm.requests", 1)


@pytest.fixture
def consumer() -> Iterator[Any]:
    app = faust.App("faust-patches-test", broker="kafka://127.0.0.1:1", store="memory://")
    yield app.consumer


def acked_as_seen_after_a_restart(consumer: Any) -> None:
    """What a restarted worker held in CI: one committed offset, then 200 offsets acked twice."""
    acked = [3491] + [o for offset in range(3492, 3692) for o in (offset, offset)] + list(range(3692, 9000))
    consumer._committed_offset[PARTITION] = 3492
    consumer._acked[PARTITION] = acked
    consumer._acked_index[PARTITION] = set(acked)


def test_unpatched_faust_commits_one_offset_at_a_time_past_duplicates(consumer: Any) -> None:
    acked_as_seen_after_a_restart(consumer)
    original = getattr(Consumer._new_offset, "__wrapped__", Consumer._new_offset)
    assert original(consumer, PARTITION) == 3493  # the bug: 200 duplicates cost 200 commit intervals


def test_the_commit_moves_past_duplicate_and_already_committed_offsets(consumer: Any) -> None:
    commit_past_duplicate_acks()
    acked_as_seen_after_a_restart(consumer)
    assert consumer._new_offset(PARTITION) == 9000  # everything processed is committed at once
    assert consumer._acked[PARTITION] == [] and not consumer._acked_index[PARTITION]


def test_a_real_gap_still_holds_the_commit_back(consumer: Any) -> None:
    commit_past_duplicate_acks()
    commit_past_duplicate_acks()  # applied once, however often the app is created
    consumer._committed_offset[PARTITION] = 100
    consumer._acked[PARTITION] = [100, 101, 101, 102, 105, 106]  # 103 and 104 not processed yet
    consumer._acked_index[PARTITION] = {100, 101, 102, 105, 106}
    assert consumer._new_offset(PARTITION) == 103
    assert consumer._acked[PARTITION] == [105, 106]


# A rebalance in CI: the joiner fetched offsets 339-399 of a partition, then recovery sought it back to
# the committed offset 339 while the batch was still being handed to the streams one record at a time.


def delivered(consumer: Any, during: Callable[[SubscriptionState, int], None] = lambda s, i: None) -> list[int]:
    """Offsets that ``consumer.getmany`` hands on from one fetched batch of 339-399, the aiokafka
    subscription under it being changed by ``during(subscription, i)`` after the i-th record."""

    async def run() -> list[int]:
        subscription = SubscriptionState()
        subscription.subscribe({PARTITION.topic})
        subscription.assign_from_subscribed({TopicPartition(*PARTITION)})
        subscription.seek(TopicPartition(*PARTITION), 400)  # aiokafka's position once 339-399 were returned
        consumer._thread._consumer = SimpleNamespace(_subscription=subscription, highwater=lambda tp: 400)
        batch = [ConsumerRecord(PARTITION.topic, PARTITION.partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])
                 for offset in range(339, 400)]  # fmt: skip

        async def wait_next_records(timeout: float) -> tuple[dict[TP, list[ConsumerRecord[bytes, bytes]]], None]:
            return {PARTITION: batch}, None

        consumer._wait_next_records = wait_next_records
        offsets = []
        async for _, message in consumer.getmany(timeout=0):
            offsets.append(message.offset)
            during(subscription, len(offsets))
        return offsets

    return asyncio.run(run())


def after_the_third(change: Callable[[SubscriptionState], None]) -> Callable[[SubscriptionState, int], None]:
    def during(subscription: SubscriptionState, i: int) -> None:
        if i == 3:
            change(subscription)

    return during


def seek(offset: int) -> Callable[[SubscriptionState], None]:
    return lambda subscription: subscription.seek(TopicPartition(*PARTITION), offset)


def revoke(subscription: SubscriptionState) -> None:
    subscription.assign_from_subscribed(set())


def test_unpatched_faust_delivers_records_fetched_before_a_seek_back(consumer: Any) -> None:
    original = getattr(Consumer.getmany, "__wrapped__", Consumer.getmany)
    consumer.getmany = original.__get__(consumer)
    assert delivered(consumer, after_the_third(seek(339))) == list(range(339, 400))  # the bug: 342-399 too


def test_records_fetched_before_a_seek_back_are_left_to_the_fetch_after_it(consumer: Any) -> None:
    drop_records_fetched_before_a_seek()
    drop_records_fetched_before_a_seek()  # applied once, however often the app is created
    assert delivered(consumer, after_the_third(seek(339))) == [339, 340, 341]  # recovery sought back


def test_a_batch_with_no_seek_is_delivered_whole(consumer: Any) -> None:
    drop_records_fetched_before_a_seek()
    assert delivered(consumer) == list(range(339, 400))


def test_records_in_hand_below_a_new_position_are_still_delivered(consumer: Any) -> None:
    """Records below the position sought are not fetched again (dropping them would lose them); the
    one at the position and those past it are."""
    drop_records_fetched_before_a_seek()
    assert delivered(consumer, after_the_third(seek(345))) == list(range(339, 345))


def test_records_of_a_partition_no_longer_assigned_are_not_delivered(consumer: Any) -> None:
    """Whoever owns it now reads it from the committed offset."""
    drop_records_fetched_before_a_seek()
    assert delivered(consumer, after_the_third(revoke)) == [339, 340, 341]


def test_every_pinned_internal_is_there_on_the_pinned_versions(consumer: Any) -> None:
    check_internals(consumer)


def test_a_renamed_internal_fails_the_start_up_check_naming_it(consumer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from aiokafka.consumer.subscription_state import Assignment

    monkeypatch.delattr(Assignment, "state_value")
    del consumer._committed_offset
    with pytest.raises(InternalsMissing, match=r"Assignment\.state_value.*\._committed_offset"):
        check_internals(consumer)


def test_a_timer_cut_short_by_a_stopped_producer_ends_quietly_and_other_errors_still_raise() -> None:
    sent: list[int] = []

    @skipped_once_stopped
    async def tick() -> None:
        sent.append(1)
        raise NotReady("Producer service not yet started")  # what Faust raises once it stopped the producer

    asyncio.run(tick())
    assert sent == [1] and tick.__name__ == "tick"

    @skipped_once_stopped
    async def broken() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        asyncio.run(broken())
