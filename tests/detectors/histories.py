"""Random account histories for the tests that pin C readers of the packed state to their definitions."""

from __future__ import annotations

import random

from detectors.account_state import AccountState
from detectors.config import load_scoring
from detectors.features import CATEGORIES, RequestFeatures

CFG = load_scoring()


def random_state(rng: random.Random) -> tuple[AccountState, float]:
    """An account after a random history (bursts, idle hours, many or few templates, IPs, agents)."""
    t0 = 1_800_000_000.0 + rng.choice([0.0, rng.uniform(0, 86_400)])
    state = AccountState.new(CFG.window, created_ts=rng.choice([0.0, t0 - rng.uniform(0, 2e6)]))
    ts = t0
    for _ in range(rng.choice([1, 3, 20, 300])):
        ts += rng.choice([0.0, rng.expovariate(0.2), rng.uniform(0, 7200)])
        features = RequestFeatures(
            cot=rng.choice([0.0, 0.0, 0.8, 1.0]), families=rng.randrange(64), category=rng.randrange(len(CATEGORIES)),
            template=tuple(rng.randrange(2**32) for _ in range(rng.choice([0, 2, 4]))) if rng.random() < 0.5
            else (7, 8, 9, 10), ratio=rng.uniform(0, 300), n_tools=rng.choice([0, 0, 3]),
            thinking=rng.random() < 0.3, single_turn=rng.random() < 0.7, max_tokens=rng.choice([0, 8192]),
        )  # fmt: skip
        ip = f"10.0.{rng.randrange(4)}.{rng.randrange(256)}"
        state.add(features, ts, CFG.window, output_tokens=rng.randrange(5000), new_model=rng.random() < 0.1,
                  ip=ip, user_agent=rng.choice(["a", "b", None]))  # fmt: skip
    if rng.random() < 0.3:
        state.drift_ts = ts - rng.uniform(0, 2 * CFG.drift.memory_seconds)
    now = rng.choice([ts, ts + rng.uniform(0, 5400), ts - 30, (ts // 3600 + 1) * 3600, (ts // 60) * 60])
    return state, now
