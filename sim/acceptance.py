"""The acceptance table: the detector on scenarios it was not tuned on (other seeds, sizes, mixtures).

    python -m sim.acceptance [--jobs 2] [--out acceptance.json]

Each run simulates a scenario, replays it through the detector and evaluates it, then checks the
issue's bar: enforcing-action FPR ≤ 0.5 % overall *and* in every benign population, attacker-account
recall ≥ 0.9, every campaign detected, harvested-token reduction ≥ 90 %. The table printed is the one in
the README; a miss is printed as a miss (the scenario is not tuned until it passes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RUNS", "Run", "check", "run"]

SCENARIOS = Path(__file__).parent / "scenarios"

#: Bars from the issue.
MAX_FPR = 0.005
MIN_RECALL = 0.9
MIN_REDUCTION = 0.9


@dataclass(frozen=True)
class Run:
    scenario: str
    seed: int
    benign: float = 1.0  # scale of every benign population
    attack: float = 1.0  # scale of every attack population

    @property
    def name(self) -> str:
        mix = "" if (self.benign, self.attack) == (1.0, 1.0) else f" benign×{self.benign:g} attack×{self.attack:g}"
        return f"{self.scenario} seed {self.seed}{mix}"


#: None of these seeds or mixtures was looked at while the weights were set (development used
#: hydra.toml seed 21 and mixed.toml seed 1).
RUNS = (
    Run("hydra", 31),
    Run("hydra", 32),
    Run("hydra", 33, benign=2.0),
    Run("hydra", 34, attack=0.5),
    Run("mixed", 35, benign=3.0),
)


def check(report: dict[str, Any]) -> dict[str, bool]:
    """Which of the bars a report meets."""
    worst = max((p["false_positive_rate"] for p in report["populations"].values() if p["kind"] == "benign"),
                default=0.0)  # fmt: skip
    detected, total = (int(x) for x in report["campaigns_detected"].split("/"))
    return {
        "fpr": (report["false_positive_rate"] or 0.0) <= MAX_FPR and worst <= MAX_FPR,
        "recall": (report["recall"] or 0.0) >= MIN_RECALL,
        "campaigns": detected == total,
        "reduction": (report["harvested_token_reduction"] or 0.0) >= MIN_REDUCTION,
    }


def run(spec: Run) -> dict[str, Any]:
    """Simulate, replay and evaluate one run; the report with its checks and timings."""
    from sim.scenario import load_scenario, resized, write
    from stream.evaluate import evaluate

    with tempfile.TemporaryDirectory() as tmp:
        events, labels = Path(tmp) / "events.jsonl.gz", Path(tmp) / "labels.jsonl"
        scenario = resized(load_scenario(SCENARIOS / f"{spec.scenario}.toml", seed=spec.seed), spec.benign, spec.attack)
        started = time.perf_counter()
        n_events, _ = write(scenario, events, labels)
        report = evaluate(events, labels)
    report = {k: v for k, v in report.items() if not k.startswith("_")}
    return {"run": spec.name, "events": n_events, "seconds": round(time.perf_counter() - started, 1),
            "checks": check(report), "report": report}  # fmt: skip


def table(results: list[dict[str, Any]]) -> str:
    """The README table: one row per run, a miss marked ✗ next to its figure."""

    def mark(ok: bool) -> str:
        return "" if ok else " ✗"

    rows = [
        "| run | events | accounts (attackers) | enforcing FPR (worst benign population) | recall | campaigns "
        "| harvested-token reduction | time to enforce median / p90 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rep, ok = r["report"], r["checks"]
        worst_name, worst = max(((n, p["false_positive_rate"]) for n, p in rep["populations"].items()
                                 if p["kind"] == "benign"), key=lambda x: x[1])  # fmt: skip
        tte = rep["time_to_enforce_seconds"]
        delays = " / ".join("–" if v is None else f"{v / 60:.0f} min" for v in (tte["median"], tte["p90"]))
        rows.append(
            f"| {r['run']} | {r['events']:,} | {rep['accounts']:,} ({rep['attacker_accounts']:,}) "
            f"| {rep['false_positive_rate']:.4f} ({worst_name} {worst:.4f}){mark(ok['fpr'])} "
            f"| {rep['recall']:.3f}{mark(ok['recall'])} | {rep['campaigns_detected']}{mark(ok['campaigns'])} "
            f"| {rep['harvested_token_reduction']:.3f}{mark(ok['reduction'])} | {delays} |"
        )
    misses = sorted({f"{n}: {p['recall']}" for r in results for n, p in r["report"]["populations"].items()
                     if p["kind"] == "attack" and p["recall"] < MIN_RECALL})  # fmt: skip
    if misses:
        rows.append("")
        rows.append("Attack populations under the recall bar (population: recall): " + "; ".join(misses))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one core each)")
    parser.add_argument("--out", type=Path, help="write every report as JSON here")
    parser.add_argument("--only", type=int, nargs="*", help="indexes into the run list (default: all)")
    args = parser.parse_args(argv)
    specs = [RUNS[i] for i in args.only] if args.only else list(RUNS)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run, specs))
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0 if all(all(r["checks"].values()) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
