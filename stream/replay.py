"""Offline replay: run the very same engine over a JSONL(.gz) file, with each event's ``ts`` as the clock."""

from __future__ import annotations

import gzip
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from detectors.config import ScoringConfig, load_scoring
from detectors.engine import Engine, MemoryStore
from detectors.pipeline import handle, published
from stream.runtime import tune_gc

__all__ = ["ReplaySummary", "replay", "read_lines"]

_FLUSH_EVERY = 5_000  # events between flushes of unpacked states (and idle-account sweeps)


@dataclass
class ReplaySummary:
    events: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)  # optional fields dropped or cut, by field
    decisions: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    accounts: int = 0

    def __str__(self) -> str:
        rate = self.events / self.seconds if self.seconds else 0.0
        invalid = ", ".join(f"{k}={v}" for k, v in sorted(self.invalid.items())) or "none"
        repaired = ", ".join(f"{k}={v}" for k, v in sorted(self.repaired.items())) or "none"
        decided = ", ".join(f"{k}={v}" for k, v in sorted(self.decisions.items())) or "none"
        return (
            f"replayed {self.events} events in {self.seconds:.2f}s ({rate:,.0f} events/s); "
            f"invalid: {invalid}; fields repaired: {repaired}; decisions: {decided}; "
            f"accounts tracked at the end: {self.accounts}"
        )


def read_lines(path: Path) -> Iterator[bytes]:
    """Lines of a ``.jsonl`` or ``.jsonl.gz`` file as raw bytes, blank lines skipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for line in f:
            line = line.strip()
            if line:
                yield line


def replay(
    events_path: Path,
    out: IO[bytes],
    *,
    alerts: IO[bytes] | None = None,
    rejects: IO[bytes] | None = None,
    cfg: ScoringConfig | None = None,
    mode: str = "enforce",
    engine: Engine | None = None,
) -> ReplaySummary:
    """Write every decision the worker would publish for these events; invalid lines go to ``rejects``
    (line number and reason only: replay never copies prompt text). ``engine``: run this one (with its
    own config and hooks) instead of a fresh one."""
    if engine is None:
        engine = Engine(MemoryStore(), cfg or load_scoring())
    cfg, store = engine.cfg, engine.states.store
    tune_gc()
    summary = ReplaySummary()
    started = time.perf_counter()
    last_ts = 0.0
    for lineno, raw in enumerate(read_lines(events_path), start=1):
        summary.events += 1
        handled = handle(raw, engine)  # the worker's sequence, without Kafka (detectors/pipeline.py)
        summary.repaired.update(handled.repaired)
        if (refused := handled.refused) is not None:
            summary.invalid[refused.reason] += 1
            if rejects is not None:
                rejects.write(orjson.dumps({"line": lineno, "reason": refused.reason, "error": refused.detail}) + b"\n")
            continue
        for decision in handled.decisions:
            summary.decisions[decision.action] += 1
            record, alert = published(decision, mode, cfg.policy)
            out.write(orjson.dumps(record) + b"\n")
            if alerts is not None and alert is not None:
                alerts.write(orjson.dumps(alert) + b"\n")
        last_ts = max(last_ts, float(handled.ts))
        if summary.events % _FLUSH_EVERY == 0:
            engine.evict(before=last_ts - cfg.window.idle_horizon_seconds)
    engine.flush()
    summary.accounts = len(store)
    summary.seconds = time.perf_counter() - started
    return summary
