"""``distillguard evaluate``: how the detector did on a labelled events file, by population.

    distillguard evaluate --events E.jsonl.gz --labels L.jsonl [--decisions D.jsonl] [--json R.json] [--plot P.png]

Without ``--decisions`` it runs replay itself. Figures (all per account; "enforced" = limit or block):
precision, recall and false-positive rate of enforcing actions, challenge rate on benign accounts,
per-campaign recall, time from a campaign's first request to its first enforced decision (median, p90),
and harvested-token reduction (1 − attacker output tokens served before the account's first enforced
decision ÷ all attacker output tokens) — broken down by population so that a regression on one benign
group is visible.
"""

from __future__ import annotations

import io
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from stream.replay import read_lines, replay

__all__ = ["evaluate", "format_report", "plot"]

ENFORCING = ("limit", "block")


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def evaluate(events: Path, labels: Path, decisions: Path | None = None) -> dict[str, Any]:
    """The report as a JSON-ready dict."""
    truth = {(rec := orjson.loads(line))["account_id"]: rec for line in read_lines(labels)}
    if decisions is None:
        out = io.BytesIO()
        replay(events, out)
        lines = out.getvalue().splitlines()
    else:
        lines = list(read_lines(decisions))
    first_enforced: dict[str, float] = {}
    challenged: set[str] = set()
    scores: dict[str, float] = {}
    for line in lines:
        d = orjson.loads(line)
        account = d["subject"]["id"]
        scores[account] = max(scores.get(account, 0.0), d["score"])
        if d["action"] in ENFORCING:
            first_enforced[account] = min(first_enforced.get(account, float("inf")), d["issued_at"])
        elif d["action"] == "challenge":
            challenged.add(account)

    first_seen: dict[str, float] = {}
    served_before: dict[str, int] = defaultdict(int)
    served_all: dict[str, int] = defaultdict(int)
    for raw in read_lines(events):
        e = orjson.loads(raw)
        account = e["account_id"]
        first_seen.setdefault(account, e["ts"])
        if truth.get(account, {}).get("kind") == "attack":
            served_all[account] += e["output_tokens"]
            if e["ts"] < first_enforced.get(account, float("inf")):
                served_before[account] += e["output_tokens"]

    populations: dict[str, dict[str, Any]] = {}
    for account, label in truth.items():
        pop = populations.setdefault(label["population"], {"kind": label["kind"], "accounts": 0, "enforced": 0,
                                                           "challenged": 0})  # fmt: skip
        pop["accounts"] += 1
        pop["enforced"] += account in first_enforced
        pop["challenged"] += account in challenged and account not in first_enforced
    for pop in populations.values():
        rate = pop["enforced"] / pop["accounts"] if pop["accounts"] else 0.0
        pop["recall" if pop["kind"] == "attack" else "false_positive_rate"] = round(rate, 4)

    attackers = [a for a, lab in truth.items() if lab["kind"] == "attack"]
    benign = [a for a, lab in truth.items() if lab["kind"] == "benign"]
    enforced = set(first_enforced)
    true_pos = len(enforced & set(attackers))
    campaigns: dict[str, dict[str, Any]] = {}
    for a in attackers:
        c = campaigns.setdefault(truth[a]["campaign"], {"accounts": 0, "enforced": 0, "first_request": float("inf"),
                                                        "first_enforced": float("inf")})  # fmt: skip
        c["accounts"] += 1
        c["enforced"] += a in enforced
        c["first_request"] = min(c["first_request"], first_seen.get(a, float("inf")))
        c["first_enforced"] = min(c["first_enforced"], first_enforced.get(a, float("inf")))
    delays = []
    for c in campaigns.values():
        c["detected"] = c["enforced"] > 0
        c["recall"] = round(c["enforced"] / c["accounts"], 4)
        c["time_to_enforce_seconds"] = c["first_enforced"] - c["first_request"] if c["detected"] else None
        if c["detected"]:
            delays.append(c["time_to_enforce_seconds"])
        del c["first_request"], c["first_enforced"]
    harvested_before, harvested_all = sum(served_before.values()), sum(served_all.values())
    return {
        "accounts": len(truth),
        "attacker_accounts": len(attackers),
        "benign_accounts": len(benign),
        "precision": round(true_pos / len(enforced), 4) if enforced else None,
        "recall": round(true_pos / len(attackers), 4) if attackers else None,
        "false_positive_rate": round(len(enforced & set(benign)) / len(benign), 4) if benign else None,
        "benign_challenge_rate": round(len(challenged & set(benign) - enforced) / len(benign), 4) if benign else None,
        "campaigns_detected": f"{sum(c['detected'] for c in campaigns.values())}/{len(campaigns)}",
        "time_to_enforce_seconds": {
            "median": statistics.median(delays) if delays else None,
            "p90": _quantile(delays, 0.9),
        },  # fmt: skip
        "harvested_token_reduction": round(1 - harvested_before / harvested_all, 4) if harvested_all else None,
        "confusion": {
            "enforced_attackers": true_pos,
            "missed_attackers": len(attackers) - true_pos,
            "enforced_benign": len(enforced & set(benign)),
            "clear_benign": len(benign) - len(enforced & set(benign)),
        },  # fmt: skip
        "populations": populations,
        "campaigns": campaigns,
        "_scores": {a: scores.get(a, 0.0) for a in truth},
        "_delays": delays,
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"accounts {report['accounts']} ({report['attacker_accounts']} attackers); precision {report['precision']}, "
        f"recall {report['recall']}, enforcing FPR {report['false_positive_rate']}, benign challenge rate "
        f"{report['benign_challenge_rate']}",
        f"campaigns detected {report['campaigns_detected']}; time to enforce median "
        f"{report['time_to_enforce_seconds']['median']} s, p90 {report['time_to_enforce_seconds']['p90']} s; "
        f"harvested-token reduction {report['harvested_token_reduction']}",
        f"confusion: {report['confusion']}",
        "",
        "| population | kind | accounts | enforced | challenged only | recall / FPR |",
        "|---|---|---|---|---|---|",
    ]
    for name, p in sorted(report["populations"].items()):
        rate = p.get("recall", p.get("false_positive_rate"))
        lines.append(f"| {name} | {p['kind']} | {p['accounts']} | {p['enforced']} | {p['challenged']} | {rate} |")
    return "\n".join(lines)


def plot(report: dict[str, Any], labels: Path, path: Path) -> None:
    """Score distributions by kind and campaign detection delays, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = {(rec := orjson.loads(line))["account_id"]: rec["kind"] for line in read_lines(labels)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for kind, colour in (("benign", "tab:blue"), ("attack", "tab:red")):
        values = [s for a, s in report["_scores"].items() if kinds.get(a) == kind]
        left.hist(values, bins=20, range=(0, 1), alpha=0.6, color=colour, label=f"{kind} ({len(values)})")
    left.set_title("highest published score per account (0 = never decided)")
    left.set_xlabel("score")
    left.legend()
    right.hist([d / 60 for d in report["_delays"]], bins=10, color="tab:red")
    right.set_title("campaigns: first request → first enforced decision")
    right.set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
