"""The per-account hard cases as one reproducible scenario, and a report of how the detector does.

    python -m sim.hard_cases [--seeds 11 12 13]

Used by ``tests/detectors/test_hard_cases.py`` (assertions) and by the README (figures).
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from typing import Any

from detectors.engine import Engine, MemoryStore
from detectors.types import Decision
from sim import personas as P

__all__ = ["ATTACKERS", "BENIGN", "DAY", "LAUNCH", "SWITCH", "T0", "build", "run"]

DAY = 86_400.0
T0 = 1_800_000_000.0 - 1_800_000_000.0 % DAY  # midnight UTC
SWITCH = T0 + DAY  # when the drifting account turns
LAUNCH = T0 + DAY + 10 * 3600  # a new model is released
ENFORCING = ("limit", "block")

#: account -> what it is
ATTACKERS = {
    "harvester": "one account, one CoT template, a request every ~3 s",
    "rotator": "twenty CoT templates in rotation",
    "mimic": "CoT template with human timing (diurnal sessions, exponential gaps)",
    "drifter": "a day as an ordinary user, then a CoT harvester",
}
BENIGN = {
    "harness": "enterprise evaluation harness (templated CoT, ~4 req/s, 40 min)",
    "agent": "coding agent round the clock, tools, multi-turn",
    "researcher": "asks for step-by-step reasoning in 80% of prompts, multi-turn",
    "library": 'prompt-library user ("I want you to act as ...")',
    "chat-*": "120 ordinary chat users",
    "launch-*": "30 users trying a newly released model on its first day",
}


def build(seed: int) -> dict[str, list[dict[str, Any]]]:
    """Every account's events; a background of people gives the cohort models a population."""
    rng = random.Random(seed)
    streams: dict[str, list[dict[str, Any]]] = {}
    for i in range(120):
        streams[f"chat-{i}"] = P.chat_user(f"chat-{i}", rng, T0)
    for i in range(30):
        streams[f"launch-{i}"] = P.launch_day_user(f"launch-{i}", rng, T0, launch=LAUNCH)
    streams["harvester"] = P.cot_harvester("harvester", rng, T0 + 30_000)
    streams["rotator"] = P.rotating_template_harvester("rotator", rng, T0 + 40_000)
    streams["mimic"] = P.human_timing_mimic("mimic", rng, T0)
    streams["drifter"] = P.drifting_account("drifter", rng, T0, switch_after=SWITCH - T0)
    streams["harness"] = P.enterprise_eval_harness("harness", rng, T0 + 50_000)
    streams["agent"] = P.coding_agent("agent", rng, T0)
    streams["researcher"] = P.cot_researcher("researcher", rng, T0)
    streams["library"] = P.prompt_library_user("library", rng, T0)
    return streams


def run(streams: dict[str, list[dict[str, Any]]]) -> dict[str, list[Decision]]:
    """All decisions, by account, from one engine over the merged streams."""
    engine = Engine(MemoryStore())
    by_account: dict[str, list[Decision]] = defaultdict(list)
    for event in P.merged(list(streams.values())):
        for d in engine.process(event):
            by_account[d.subject_id].append(d)
    return by_account


def _row(name: str, streams: dict[str, list[dict[str, Any]]], decisions: dict[str, list[Decision]]) -> str:
    accounts = [a for a in streams if a == name or (name.endswith("*") and a.startswith(name[:-1]))]
    events = sum(len(streams[a]) for a in accounts)
    actions = sorted({d.action for a in accounts for d in decisions.get(a, [])})
    enforced = [a for a in accounts if any(d.action in ENFORCING for d in decisions.get(a, []))]
    delay = "-"
    if len(accounts) == 1 and enforced:
        start = SWITCH if name == "drifter" else streams[name][0]["ts"]
        first = min(d.issued_at for d in decisions[name] if d.action in ENFORCING)
        delay = f"{(first - start) / 60:.1f} min"
    return f"| {name} | {events} | {len(enforced)}/{len(accounts)} | {', '.join(actions) or 'none'} | {delay} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    args = parser.parse_args()
    for seed in args.seeds:
        streams = build(seed)
        decisions = run(streams)
        print(f"\nseed {seed}:\n")
        print("| account | events | limited or blocked | actions seen | first enforcement after start |")
        print("|---|---|---|---|---|")
        for name in (*ATTACKERS, *BENIGN):
            print(_row(name, streams, decisions))


if __name__ == "__main__":
    main()
