"""Hot accounts' writable states in front of the state store: what the engine reads and writes per event.

The store (a Faust table in the worker, a dict in replay) holds packed bytes; unpacking and packing per
event would cost more than the detection. So the states of recently active accounts stay unpacked here,
least recently used first, and the ones changed since the last :meth:`StateCache.flush` are written back
then — once per batch in the worker, before its offsets are committed.

>>> from detectors.config import load_scoring
>>> from detectors.engine import MemoryStore
>>> states = StateCache(MemoryStore(), load_scoring().window, size=2)
>>> state = states.writable("a", created_ts=None, ts=100.0)
>>> states.flush(), states.flush(), len(states.store)
(1, 0, 1)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from detectors.account_state import AccountState
from detectors.types import StateStore

__all__ = ["CACHE_SIZE", "StateCache"]

#: States kept as writable copies for recently active accounts between flushes: ~1.1 KB each, so 64k cost
#: ~70 MB. A miss copies the state in and another out (~6% of the core at 100k accounts with 20k).
CACHE_SIZE = 65_536
_SWEEP_EVERY = 3600.0  # event-time seconds between idle-account sweeps when under the account cap
_INSERT_SLACK = 0.01  # new accounts may exceed the cap by this share before an insertion sweeps


class StateCache:
    """The store's states, writable for hot accounts; ``window`` is ``[window]`` of ``rules/scoring.toml``
    (the ring's shape, the account cap and the idle horizon)."""

    def __init__(self, store: StateStore, window: Any, size: int = CACHE_SIZE) -> None:
        self.store, self.window, self.size = store, window, size
        self.hot: OrderedDict[str, AccountState] = OrderedDict()  # writable states, least recently used first
        self.dirty: dict[str, None] = {}  # hot accounts changed since the last flush (an ordered set)
        self.new_accounts = 0  # accounts created since the last flush (not in the store yet)
        self._swept_at = -math.inf  # event time of the last eviction sweep

    def read(self, account_id: str) -> AccountState | None:
        """The account's state as it stands (None: never seen, or evicted), not marked changed."""
        return self.hot.get(account_id) or AccountState.unpack(self.store.get(account_id), self.window)

    def writable(self, account_id: str, created_ts: float | None, ts: float) -> AccountState:
        """The account's state for updating (a new one, created at ``created_ts`` or ``ts``, if it has
        none); it is written back at the next :meth:`flush`."""
        hot = self.hot
        state = hot.get(account_id)
        if state is not None:
            hot.move_to_end(account_id)
        else:
            state = AccountState.unpack(self.store.get(account_id), self.window)
            if state is None:
                state = AccountState.new(self.window, created_ts=created_ts if created_ts else ts)
                self.new_accounts += 1
                cap = self.window.max_tracked_accounts
                if len(self.store) + self.new_accounts > cap + max(1, int(cap * _INSERT_SLACK)):
                    # The cap holds at insertion, not only at the next timed sweep: a flood of fresh ids
                    # between sweeps cannot grow memory by more than the slack (issue 22, item 10).
                    self.evict(before=ts - self.window.idle_horizon_seconds)
            hot[account_id] = state
            if len(hot) > self.size:  # the coldest account goes back to packed form only
                cold_id, cold = hot.popitem(last=False)
                if self.dirty.pop(cold_id, 0) is None:
                    self.store.put(cold_id, cold.pack())
        self.dirty[account_id] = None
        return state

    def flush(self) -> int:
        """Pack every state changed since the last flush into the store; returns how many. States stay
        hot for the next events of their accounts (see :meth:`forget`)."""
        hot, store = self.hot, self.store
        self.new_accounts = 0  # in the store from now on
        for account_id in self.dirty:
            store.put(account_id, hot[account_id].pack())
        n = len(self.dirty)
        self.dirty.clear()
        return n

    def evict(self, before: float) -> int:
        """Forget accounts idle since ``before`` (event time) and, beyond ``[window] max_tracked_accounts``,
        those with the least evidence, hot or stored; returns how many.

        A sweep reads every stored state, so idle accounts are swept at most once per hour of event time
        (the idle horizon is days); over the cap, at every call.
        """
        self.flush()
        cap = self.window.max_tracked_accounts
        if len(self.store) <= cap and before - self._swept_at < _SWEEP_EVERY:
            return 0
        self._swept_at = before
        evicted = self.store.evict(before, cap)
        for account_id in evicted:
            self.hot.pop(account_id, None)
        return len(evicted)

    def forget(self) -> None:
        """Drop hot states (after a flush): the worker calls this when partitions move, since another
        worker may own and change those accounts' state in the store meanwhile."""
        self.flush()
        self.hot.clear()
