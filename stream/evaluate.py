"""``distillguard evaluate``: the detector and naive baselines, side by side, on one labelled stream.

    distillguard evaluate --events E.jsonl.gz --labels L.jsonl [--decisions D.jsonl] [--json R.json] [--plot P.png]

Without ``--decisions`` it runs replay itself. Every figure is per account and per family (a label's
``family``, else its population), for each detector: the detector and the baselines of
:mod:`detectors.baselines` (a volume rule, a one-line CoT regex, and either), which enforce (block) the
moment their rule first holds. "Enforced" means limit or block; a challenge alone is not enforcement.

- benign families: enforced FPR and challenge rate (challenged, never enforced);
- attack families: recall, time from each account's first harvesting request to its first enforcement
  (median and p90 over the accounts enforced), and harvested-token reduction: the share of output tokens
  served from an attacker's first harvesting request on that came after its first enforcement.
"""

from __future__ import annotations

import io
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from detectors.baselines import BASELINES, Baselines
from detectors.config import ScoringConfig
from stream.replay import read_lines, replay

__all__ = ["DETECTOR", "Outcome", "evaluate", "format_report", "outcomes", "plot", "score"]

ENFORCING = ("limit", "block")
DETECTOR = "distillguard"


@dataclass
class Outcome:
    """What one detector did to each account: when it first enforced, whom it challenged."""

    enforced_at: dict[str, float] = field(default_factory=dict)
    challenged: set[str] = field(default_factory=set)
    scores: dict[str, float] = field(default_factory=dict)


def _quantile(values: list[float], q: float) -> float | None:
    """The nearest-rank q-quantile.

    >>> _quantile([4.0, 1.0, 3.0, 2.0], 0.5), _quantile([], 0.9)
    (3.0, None)
    """
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _detector_outcome(lines: list[bytes]) -> Outcome:
    out = Outcome()
    for line in lines:
        d = orjson.loads(line)
        account = d["subject"]["id"]
        out.scores[account] = max(out.scores.get(account, 0.0), d["score"])
        if d["action"] in ENFORCING:
            out.enforced_at[account] = min(out.enforced_at.get(account, float("inf")), d["issued_at"])
        elif d["action"] == "challenge":
            out.challenged.add(account)
    return out


def outcomes(events: Path, decisions: Path | None = None, cfg: ScoringConfig | None = None) -> dict[str, Outcome]:
    """Each detector's outcome on the events: ours (replayed with ``cfg`` unless ``decisions`` are given)
    and every baseline."""
    if decisions is None:
        buffer = io.BytesIO()
        replay(events, buffer, cfg=cfg)
        lines = buffer.getvalue().splitlines()
    else:
        lines = list(read_lines(decisions))
    baselines = Baselines()
    for raw in read_lines(events):
        baselines.observe(orjson.loads(raw))
    result = {DETECTOR: _detector_outcome(lines)}
    result.update({name: Outcome(enforced_at=baselines.first_enforced[name]) for name in BASELINES})
    return result


def _harvest(events: Path, truth: dict[str, dict[str, Any]]) -> list[tuple[str, float, int]]:
    """(account, ts, output tokens) of every attacker request from its harvest's start on."""
    out = []
    for raw in read_lines(events):
        e = orjson.loads(raw)
        label = truth.get(e["account_id"])
        if label and label["kind"] == "attack" and e["ts"] >= label.get("harvest_start", float("-inf")):
            out.append((e["account_id"], float(e["ts"]), int(e["output_tokens"])))
    return out


def score(truth: dict[str, dict[str, Any]], harvest: list[tuple[str, float, int]], outcome: Outcome) -> dict[str, Any]:
    """One detector's figures: overall and per family."""
    served: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    first_harvest: dict[str, float] = {}
    for account, ts, tokens in harvest:
        total[account] += tokens
        first_harvest.setdefault(account, ts)
        if ts < outcome.enforced_at.get(account, float("inf")):
            served[account] += tokens
    groups: dict[str, list[str]] = defaultdict(list)
    for account, label in truth.items():
        groups[label.get("family") or label["population"]].append(account)
    families = {name: _figures(accounts, truth, outcome, served, total, first_harvest)
                for name, accounts in sorted(groups.items())}  # fmt: skip
    overall = _figures(list(truth), truth, outcome, served, total, first_harvest)
    return {"overall": overall, "families": families}


def _figures(
    accounts: list[str],
    truth: dict[str, dict[str, Any]],
    outcome: Outcome,
    served: dict[str, int],
    total: dict[str, int],
    first_harvest: dict[str, float],
) -> dict[str, Any]:
    attackers = [a for a in accounts if truth[a]["kind"] == "attack"]
    benign = [a for a in accounts if truth[a]["kind"] == "benign"]
    enforced = set(outcome.enforced_at)
    caught = [a for a in attackers if a in enforced]
    delays = [(outcome.enforced_at[a] - first_harvest.get(a, outcome.enforced_at[a])) / 60 for a in caught]
    harvested = sum(total[a] for a in attackers)
    benign_enforced = [a for a in benign if a in enforced]
    challenged = [a for a in benign if a in outcome.challenged and a not in enforced]
    figures: dict[str, Any] = {"accounts": len(accounts), "attackers": len(attackers), "benign": len(benign)}
    if attackers:
        figures |= {
            "enforced_attackers": len(caught),
            "recall": round(len(caught) / len(attackers), 4),
            "minutes_to_enforce_median": round(statistics.median(delays), 1) if delays else None,
            "minutes_to_enforce_p90": round(q, 1) if (q := _quantile(delays, 0.9)) is not None else None,
            "harvested_tokens": harvested,
            "harvested_token_reduction": round(1 - sum(served[a] for a in attackers) / harvested, 4)
            if harvested
            else None,
        }
    if benign:
        figures |= {
            "enforced_benign": len(benign_enforced),
            "false_positive_rate": round(len(benign_enforced) / len(benign), 4),
            "challenged_benign": len(challenged),
            "challenge_rate": round(len(challenged) / len(benign), 4),
        }
    return figures


def evaluate(
    events: Path, labels: Path, decisions: Path | None = None, cfg: ScoringConfig | None = None
) -> dict[str, Any]:
    """The report as a JSON-ready dict: every detector's figures, overall and per family."""
    truth = {(rec := orjson.loads(line))["account_id"]: rec for line in read_lines(labels)}
    done = outcomes(events, decisions, cfg)
    harvest = _harvest(events, truth)
    kinds = {label.get("family") or label["population"]: label["kind"] for label in truth.values()}
    return {
        "accounts": len(truth),
        "attacker_accounts": sum(label["kind"] == "attack" for label in truth.values()),
        "families": dict(sorted(kinds.items())),
        "detectors": {name: score(truth, harvest, outcome) for name, outcome in done.items()},
        "_scores": {a: done[DETECTOR].scores.get(a, 0.0) for a in truth},
    }


def _cell(figures: dict[str, Any]) -> str:
    """One table cell: recall and median minutes to enforce for attackers; FPR (challenge rate) for benign."""
    if figures.get("attackers"):
        minutes = figures["minutes_to_enforce_median"]
        return f"{figures['recall']:.2f} · {'–' if minutes is None else f'{minutes:,.0f} min'}"
    return f"{figures['false_positive_rate']:.3f} ({figures['challenge_rate']:.3f})"


def format_report(report: dict[str, Any], only: set[str] | None = None) -> str:
    """Side by side: per family, each detector's figures; then the overall rows (over ``only`` families
    when given)."""
    names = list(report["detectors"])
    header = "| family | kind | accounts | " + " | ".join(names) + " |"
    lines = [
        "attack rows: recall · median minutes from first harvesting request to enforcement; "
        "benign rows: enforced FPR (challenge rate)",
        "",
        header,
        "|" + "---|" * (3 + len(names)),
    ]
    for family, kind in report["families"].items():
        if only is not None and family not in only:
            continue
        cells = [_cell(report["detectors"][n]["families"][family]) for n in names]
        accounts = report["detectors"][names[0]]["families"][family]["accounts"]
        lines.append(f"| {family} | {kind} | {accounts} | " + " | ".join(cells) + " |")
    lines += ["", "| overall | " + " | ".join(names) + " |", "|" + "---|" * (1 + len(names))]
    overall = {n: _overall(report["detectors"][n]["families"], report["families"], only) for n in names}
    for key, label in (("recall", "attacker recall"), ("harvested_token_reduction", "harvested-token reduction"),
                       ("false_positive_rate", "benign enforced FPR"), ("challenge_rate", "benign challenge rate"),
                       ("minutes_to_enforce_median", "median minutes to enforce")):  # fmt: skip
        lines.append(f"| {label} | " + " | ".join(_fmt(overall[n].get(key)) for n in names) + " |")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}" if value < 10 else f"{value:,.0f}"


def _overall(families: dict[str, dict[str, Any]], kinds: dict[str, str], only: set[str] | None) -> dict[str, Any]:
    """Account-weighted figures over the chosen families (tokens weighted by tokens)."""
    chosen = [f for f in kinds if only is None or f in only]
    attack = [families[f] for f in chosen if kinds[f] == "attack"]
    benign = [families[f] for f in chosen if kinds[f] == "benign"]
    out: dict[str, Any] = {}
    if attack:
        attackers = sum(f["attackers"] for f in attack)
        harvested = sum(f["harvested_tokens"] for f in attack)
        prevented = sum(f["harvested_tokens"] * (f["harvested_token_reduction"] or 0.0) for f in attack)
        medians = [f["minutes_to_enforce_median"] for f in attack if f["minutes_to_enforce_median"] is not None]
        out |= {"recall": sum(f["enforced_attackers"] for f in attack) / attackers,
                "harvested_token_reduction": prevented / harvested if harvested else None,
                "minutes_to_enforce_median": statistics.median(medians) if medians else None}  # fmt: skip
    if benign:
        n = sum(f["benign"] for f in benign)
        out |= {"false_positive_rate": sum(f["enforced_benign"] for f in benign) / n,
                "challenge_rate": sum(f["challenged_benign"] for f in benign) / n}  # fmt: skip
    return out


def plot(report: dict[str, Any], labels: Path, path: Path) -> None:
    """The detector's highest published score per account by kind, and its minutes to enforce, as a PNG."""
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
    names = list(report["detectors"])
    families = report["detectors"][DETECTOR]["families"]
    attack = [f for f, k in report["families"].items() if k == "attack"]
    for i, name in enumerate(names):
        recalls = [report["detectors"][name]["families"][f]["recall"] for f in attack]
        right.bar([j + i * 0.2 for j in range(len(attack))], recalls, width=0.2, label=name)
    right.set_xticks(range(len(attack)), [f[:14] for f in attack], rotation=70, fontsize=7)
    right.set_title(f"attacker recall per family ({len(families)} families)")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
