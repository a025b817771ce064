"""The detector pipeline for one event: decoded event → account state → score → decision.

The Faust worker and offline replay both call :meth:`Engine.process`; only where state lives differs.
"""

from __future__ import annotations

from collections import OrderedDict

from detectors.account_state import AccountState
from detectors.config import RateRule, load_rate_rule
from detectors.policy import decide, level_for_rate
from detectors.types import Decision, RequestEvent, StateStore

__all__ = ["Engine", "MemoryStore"]


class MemoryStore:
    """A dict of packed states that remembers each key's last event time, to evict idle accounts.

    >>> store = MemoryStore()
    >>> store.put("a", b"x", ts=10.0); store.put("b", b"y", ts=20.0)
    >>> store.evict_idle(before=15.0)
    1
    >>> store.get("a") is None, len(store)
    (True, 1)
    """

    def __init__(self) -> None:
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        return item[1] if item is not None else None

    def put(self, key: str, value: bytes, ts: float) -> None:
        self._data[key] = (ts, value)
        self._data.move_to_end(key)

    def evict_idle(self, before: float) -> int:
        """Forget keys last written with an event time before ``before``; returns how many."""
        evicted = 0
        while self._data:
            key, (ts, _) = next(iter(self._data.items()))
            if ts >= before:
                break
            del self._data[key]
            evicted += 1
        return evicted

    def __len__(self) -> int:
        return len(self._data)


class Engine:
    """Runs the per-account rule over events in event-time order and returns the decisions to publish.

    Parameters
    ----------
    store
        Where packed account states live (:class:`MemoryStore` in replay, a Faust table in the worker).
    rule
        The rule's thresholds; defaults to ``detectors/rules/rate.toml``.

    >>> engine = Engine(MemoryStore())
    >>> events = [{"event_id": f"e{i}", "ts": 1000.0 + i * 0.1, "account_id": "a", "model": "m",
    ...            "input_tokens": 10, "output_tokens": 500} for i in range(200)]
    >>> [d.action for e in events for d in engine.process(e)]
    ['challenge', 'limit']
    """

    def __init__(self, store: StateStore, rule: RateRule | None = None) -> None:
        self.store = store
        self.rule = rule or load_rate_rule()

    def process(self, event: RequestEvent) -> list[Decision]:
        rule = self.rule
        account_id: str = event["account_id"]
        ts = float(event["ts"])
        state = AccountState.from_bytes(
            self.store.get(account_id), bucket_seconds=rule.bucket_seconds, buckets=rule.buckets
        )
        state.add(ts)
        rpm = state.rate_per_bucket(ts) * 60.0 / rule.bucket_seconds
        decision = decide(
            state,
            subject_id=account_id,
            level=level_for_rate(rpm, rule),
            score=min(1.0, rpm / rule.block_rpm),
            now=ts,
            trigger_event_id=event["event_id"],
            rule=rule,
            evidence={"requests_per_minute": round(rpm, 2)},
        )
        self.store.put(account_id, state.to_bytes(), ts)
        return [decision] if decision is not None else []
