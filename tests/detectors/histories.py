"""Random account histories and linker streams for the tests that pin the C accelerators to their
references (and for the specifications that need such streams)."""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Any

from detectors.account_state import AccountState
from detectors.clusters import ClusterConfig, load_clusters
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


def small_caps(**caps: Any) -> ClusterConfig:
    """The shipped cluster config with some caps replaced (small ones make evictions happen)."""
    cfg = load_clusters()
    return type(cfg)(**{**cfg.__dict__, **caps})


def random_observations(rng: random.Random, n: int) -> list[tuple[str, float, list[tuple[str, bool]]]]:
    """Accounts hitting strong and soft targets, mostly in time order, some late, some at integer times."""
    obs, t = [], 1_800_000_000.0
    for _ in range(n):
        t += rng.expovariate(0.5)
        ts: float = t - rng.uniform(0, 90) if rng.random() < 0.1 else t
        if rng.random() < 0.1:
            ts = int(ts)
        targets = [(f"payment_fingerprint:pf-{rng.randrange(6)}", True)] if rng.random() < 0.3 else []
        targets += [(f"template:{rng.randrange(40)}", False) for _ in range(rng.randrange(3))]
        targets.append((f"ip24:10.0.{rng.randrange(8)}", False))
        obs.append((f"acct-{int(60 * rng.random() ** 2)}", ts, targets))
    return obs


def linker_view(targets: OrderedDict[str, Any], links: OrderedDict[Any, Any], linked: set[Any]) -> str:
    """Everything a linker holds, in order, with types (an int timestamp is not a float one)."""
    held = [(k, t.recent, t.accounts, t.popular, t.since) for k, t in targets.items()]
    return repr((held, list(links.items()), sorted(linked)))
