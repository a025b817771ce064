"""Replay a scenario with simulated analyst verdicts and show precision improving as they accumulate.

    python -m sim.feedback_loop [--seed 5]

Two days of traffic: ordinary people, CoT-template harvesters starting through the period, and
*startup* accounts running evaluation jobs (templated "think step by step" prompts at high volume,
short-lived) — look-alikes the per-account heuristics limit at first, since only enterprise
accounts are capped. An analyst answers every alert an hour (event time) after it is raised:
harvesters are confirmed, evaluation jobs dismissed (which lifts the decision until it would have
expired). Verdicts teach the engine's supervised model, exactly as ``distillguard.feedback`` does in the
worker. The report compares alert precision per 12-hour window with and without the analyst.
"""

from __future__ import annotations

import argparse
import heapq
import random
from dataclasses import dataclass, field
from typing import Any

from detectors.alerts import should_alert
from detectors.config import ScoringConfig
from detectors.engine import Engine, MemoryStore
from sim import personas as P

__all__ = ["LoopResult", "run_loop", "scenario"]

DAY = 86_400.0
T0 = 1_800_000_000.0 - 1_800_000_000.0 % DAY
WINDOW = 12 * 3600.0
REVIEW_DELAY = 3600.0  # an analyst looks at an alert an hour after it is raised


def scenario(seed: int) -> tuple[list[dict[str, Any]], set[str]]:
    """(events in time order, attacker account ids)."""
    rng = random.Random(seed)
    streams = [P.chat_user(f"person-{i}", rng, T0) for i in range(80)]
    attackers = set()
    for i in range(12):  # a new harvester every four hours
        account = f"harvester-{i}"
        attackers.add(account)
        streams.append(P.cot_harvester(account, rng, T0 + i * 4 * 3600 + rng.uniform(0, 3600), hours=1.5, gap=4.0,
                                       template=i % len(P.COT_TEMPLATES)))  # fmt: skip
    for i in range(24):  # an evaluation job every two hours, from a startup's fresh API keys
        job = P.enterprise_eval_harness(f"evaljob-{i}", rng, T0 + i * 2 * 3600 + rng.uniform(0, 1800), minutes=25)
        for event in job:
            event["account_type"] = "startup"
        streams.append(job)
    return list(P.merged(streams)), attackers


@dataclass
class LoopResult:
    windows: list[tuple[int, int]] = field(default_factory=list)  # (true alerts, all alerts) per window
    verdicts: int = 0
    alerted: set[str] = field(default_factory=set)  # accounts that raised at least one alert

    def precision(self, i: int) -> float:
        tp, n = self.windows[i]
        return tp / n if n else 1.0


def run_loop(
    events: list[dict[str, Any]], attackers: set[str], *, analyst: bool, cfg: ScoringConfig | None = None
) -> LoopResult:
    """Replay ``events``; with ``analyst``, every alert gets a verdict an hour later (confirmed for attackers)."""
    engine = Engine(MemoryStore(), cfg)
    result = LoopResult(windows=[(0, 0) for _ in range(int(2 * DAY // WINDOW) + 1)])
    reviews: list[tuple[float, int, Any]] = []  # (when, tiebreak, decision) waiting for the analyst
    for n, event in enumerate(events):
        now = event["ts"]
        while analyst and reviews and reviews[0][0] <= now:
            _, _, decision = heapq.heappop(reviews)
            confirmed = decision.subject_id in attackers
            engine.learn_verdict(decision.evidence["features"], confirmed)
            if not confirmed:  # dismissal: lifted, and not renewed until it would have expired
                engine.allowlist[f"account:{decision.subject_id}"] = decision.expires_at
            result.verdicts += 1
        for decision in engine.process(event):
            if should_alert(decision):
                i = int((decision.issued_at - T0) // WINDOW)
                tp, total = result.windows[i]
                result.windows[i] = (tp + (decision.subject_id in attackers), total + 1)
                result.alerted.add(decision.subject_id)
                heapq.heappush(reviews, (decision.issued_at + REVIEW_DELAY, n, decision))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    events, attackers = scenario(args.seed)
    without, with_analyst = run_loop(events, attackers, analyst=False), run_loop(events, attackers, analyst=True)
    print(f"{len(events)} events, {len(attackers)} harvesters, 24 evaluation jobs; seed {args.seed}\n")
    print("| window | alerts, no analyst | precision | alerts, with analyst | precision |")
    print("|---|---|---|---|---|")
    for i in range(len(without.windows) - 1):
        (_, n0), (_, n1) = without.windows[i], with_analyst.windows[i]
        print(
            f"| {i * 12}-{i * 12 + 12} h | {n0} | {without.precision(i):.2f} | {n1} | {with_analyst.precision(i):.2f} |"
        )
    print(f"\nverdicts given: {with_analyst.verdicts}")


if __name__ == "__main__":
    main()
