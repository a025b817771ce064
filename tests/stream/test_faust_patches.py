"""Specification of the fixes applied to faust-streaming: each states the bug it removes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import faust
import pytest
from faust.transport.consumer import Consumer
from faust.types import TP

from stream.faust_patches import commit_past_duplicate_acks

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
