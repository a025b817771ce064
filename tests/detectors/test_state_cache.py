"""The hot states in front of the store: written back at a flush, or when they go cold, never lost."""

from __future__ import annotations

from detectors.config import load_scoring
from detectors.engine import MemoryStore
from detectors.state_cache import StateCache

T0 = 1_800_000_000.0


def test_a_state_pushed_out_of_the_hot_set_before_a_flush_is_written_back_not_lost() -> None:
    window = load_scoring().window
    states = StateCache(MemoryStore(), window, size=2)
    for i, account in enumerate(("a", "b", "c")):  # "a" goes cold when "c" arrives
        states.writable(account, created_ts=None, ts=T0 + i)
    assert list(states.hot) == ["b", "c"] and states.store.get("a") is not None
    assert states.flush() == 2 and len(states.store) == 3


def test_a_new_account_starts_at_its_creation_time_when_the_gateway_gives_one() -> None:
    states = StateCache(MemoryStore(), load_scoring().window)
    assert states.writable("old", created_ts=T0 - 86_400 * 30, ts=T0).created_ts == T0 - 86_400 * 30
    assert states.writable("new", created_ts=None, ts=T0).created_ts == T0
    assert states.read("never") is None and states.read("old") is not None
