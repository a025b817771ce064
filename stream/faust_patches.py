"""Fixes for faust-streaming 0.15.3 bugs that the worker runs into, each applied once per process.

Kept apart from the app so that each one names the bug, where it was seen, and can go when Faust
fixes it upstream.
"""

from __future__ import annotations

import functools
from typing import Any

from faust.transport.consumer import Consumer

__all__ = ["commit_past_duplicate_acks"]


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
