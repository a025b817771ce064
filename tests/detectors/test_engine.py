"""Specification of the engine: the same events always give the same decisions."""

from __future__ import annotations

from detectors.engine import Engine, MemoryStore
from tests.conftest import make_event

T0 = 1_800_000_000.0


def burst(account: str, n: int, gap: float, start: float = T0) -> list[dict[str, object]]:
    return [make_event(i, account=account, ts=start + i * gap) for i in range(n)]


def test_engine_throttles_a_fast_account_and_leaves_a_slow_one_alone() -> None:
    engine = Engine(MemoryStore())
    events = sorted(burst("fast", 700, 0.05) + burst("slow", 30, 20.0), key=lambda e: e["ts"])  # type: ignore
    decisions = [d for e in events for d in engine.process(e)]
    assert [(d.subject_id, d.action) for d in decisions] == [
        ("fast", "challenge"),
        ("fast", "limit"),
        ("fast", "block"),
    ]
    assert all(d.reason == ("RATE_HIGH",) for d in decisions)


def test_engine_replay_is_deterministic() -> None:
    events = burst("a", 300, 0.1) + burst("b", 300, 0.15)
    events.sort(key=lambda e: e["ts"])  # type: ignore
    first, second = (
        [d for e in events for d in engine.process(e)]
        for engine in (Engine(MemoryStore()), Engine(MemoryStore()))
    )
    assert first and first == second  # same actions, times and decision ids


def test_engine_state_lives_in_the_store() -> None:
    store = MemoryStore()
    events = burst("a", 130, 0.1)
    for e in events[:100]:
        Engine(store).process(e)  # a new engine (a restarted worker) with the same store
    actions = [d.action for e in events[100:] for d in Engine(store).process(e)]
    assert actions == ["limit"]  # 130/min crossed only because the first 100 were remembered


def test_memory_store_evicts_idle_accounts() -> None:
    store = MemoryStore()
    engine = Engine(store)
    for i in range(10):
        engine.process(make_event(i, account=f"idle-{i}", ts=T0))
    engine.process(make_event(0, account="active", ts=T0 + 90_000))
    assert store.evict_idle(before=T0 + 90_000 - engine.rule.idle_horizon_seconds) == 10
    assert len(store) == 1
