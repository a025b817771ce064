"""Specification of the per-account ring of time buckets."""

from __future__ import annotations

import pytest

from detectors.account_state import STATE_VERSION, AccountState

T0 = 1_800_000_000.0  # a bucket boundary for 60-second buckets


def fresh() -> AccountState:
    return AccountState(bucket_seconds=60, buckets=60)


def test_account_state_counts_requests_in_the_current_minute() -> None:
    s = fresh()
    for i in range(30):
        s.add(T0 + i)
    assert s.rate_per_bucket(T0 + 30) == 30
    assert s.total() == 30


def test_account_state_rate_blends_the_previous_bucket_as_it_slides() -> None:
    s = fresh()
    for i in range(60):  # one a second through the first minute
        s.add(T0 + i)
    assert s.rate_per_bucket(T0 + 60) == pytest.approx(60)  # start of the next minute: all of the previous
    assert s.rate_per_bucket(T0 + 90) == pytest.approx(30)  # halfway: half of it
    assert s.rate_per_bucket(T0 + 150) == 0  # two buckets later: nothing


def test_account_state_forgets_buckets_older_than_the_ring() -> None:
    s = fresh()
    s.add(T0)
    s.add(T0 + 3600)  # one hour later: the first bucket's slot is reused
    assert s.total() == 1


def test_account_state_ignores_events_older_than_the_ring() -> None:
    s = fresh()
    s.add(T0 + 7200)
    s.add(T0)  # two hours late
    assert s.total() == 1


def test_account_state_accepts_late_events_inside_the_ring() -> None:
    s = fresh()
    s.add(T0 + 600)
    s.add(T0 + 10)  # ten minutes late, still inside the hour
    assert s.total() == 2


def test_account_state_round_trips_through_bytes() -> None:
    s = fresh()
    for i in range(100):
        s.add(T0 + i * 7.3)
    s.action_level, s.action_expires = 2, T0 + 900
    restored = AccountState.from_bytes(s.to_bytes(), bucket_seconds=60, buckets=60)
    assert restored == s
    assert (restored.action_level, restored.action_expires, restored.head) == (2, T0 + 900, s.head)


@pytest.mark.parametrize(
    "data",
    [None, b"", b"\x00" * 10, bytes([STATE_VERSION + 1]) + fresh().to_bytes()[1:]],
    ids=["none", "empty", "truncated", "other-version"],
)
def test_account_state_starts_fresh_from_unreadable_bytes(data: bytes | None) -> None:
    assert AccountState.from_bytes(data, bucket_seconds=60, buckets=60) == fresh()


def test_account_state_is_small() -> None:
    assert len(fresh().to_bytes()) <= 300
