"""Per-account rolling state: a ring of time buckets packed into a few hundred bytes."""

from __future__ import annotations

import struct
from array import array

__all__ = ["AccountState", "STATE_VERSION"]

#: Bumped whenever the packed layout changes; older bytes are discarded instead of misread.
STATE_VERSION = 1
_HEADER = struct.Struct("<BdqBd")  # version, last_ts, head bucket, active action level, active expiry


class AccountState:
    """Request counts in a ring of ``buckets`` time buckets of ``bucket_seconds`` each, plus the
    action currently in force, so that hysteresis survives a restart with the rest of the state.

    Time is event time, passed in; nothing here reads a clock.

    >>> s = AccountState(bucket_seconds=60, buckets=60)
    >>> for i in range(90):  # one request a second for 90 s
    ...     s.add(1_000_020.0 + i)
    >>> round(s.rate_per_bucket(1_000_110.0))
    60
    >>> AccountState.from_bytes(s.to_bytes(), bucket_seconds=60, buckets=60) == s
    True
    """

    __slots__ = ("bucket_seconds", "buckets", "counts", "head", "last_ts", "action_level", "action_expires")

    def __init__(self, *, bucket_seconds: int, buckets: int) -> None:
        self.bucket_seconds = bucket_seconds
        self.buckets = buckets
        self.counts = array("I", bytes(4 * buckets))
        self.head = -1  # absolute index of the newest bucket; -1 before the first event
        self.last_ts = 0.0
        self.action_level = 0  # index into detectors.types.ACTIONS
        self.action_expires = 0.0

    def add(self, ts: float) -> None:
        """Count one request at event time ``ts``; events older than the ring are ignored."""
        index = int(ts // self.bucket_seconds)
        self._advance(index)
        if index > self.head - self.buckets:
            slot = index % self.buckets
            if self.counts[slot] < 0xFFFFFFFF:
                self.counts[slot] += 1
        self.last_ts = max(self.last_ts, ts)

    def rate_per_bucket(self, now: float) -> float:
        """Sliding count over the last bucket-length before ``now``: the current bucket plus the
        unexpired fraction of the previous one (the usual two-bucket approximation)."""
        index = int(now // self.bucket_seconds)
        if self.head < 0 or index - self.head >= 2:
            return 0.0
        current = self.counts[index % self.buckets] if index == self.head else 0
        previous = self.counts[(index - 1) % self.buckets] if index - 1 <= self.head else 0
        elapsed = (now % self.bucket_seconds) / self.bucket_seconds
        return current + previous * (1.0 - elapsed)

    def total(self) -> int:
        """Requests still inside the ring."""
        return sum(self.counts)

    def _advance(self, index: int) -> None:
        if index <= self.head:
            return
        if self.head < 0 or index - self.head >= self.buckets:
            self.counts = array("I", bytes(4 * self.buckets))
        else:
            for i in range(self.head + 1, index + 1):
                self.counts[i % self.buckets] = 0
        self.head = index

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(STATE_VERSION, self.last_ts, self.head, self.action_level, self.action_expires)
        return header + self.counts.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes | None, *, bucket_seconds: int, buckets: int) -> AccountState:
        """Unpack; bytes of another version or ring size give a fresh state rather than garbage."""
        state = cls(bucket_seconds=bucket_seconds, buckets=buckets)
        if not data or len(data) != _HEADER.size + 4 * buckets or data[0] != STATE_VERSION:
            return state
        _, state.last_ts, state.head, state.action_level, state.action_expires = _HEADER.unpack_from(data)
        state.counts = array("I", data[_HEADER.size :])
        return state

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AccountState) and self.to_bytes() == other.to_bytes()

    def __repr__(self) -> str:
        return f"AccountState(head={self.head}, total={self.total()}, action_level={self.action_level})"
