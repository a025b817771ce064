"""distillguard evaluate: the detector and the baselines side by side, per family, on one stream."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from sim.scenario import load_scenario, write
from stream.evaluate import DETECTOR, Outcome, evaluate, format_report, plot, score

SMALL = """
[scenario]
name = "small"
seed = 3

[[population]]
name = "researchers"
persona = "cot_researcher"
accounts = 6
kind = "benign"
params = { days = 1.0 }

[[population]]
name = "harvesters"
persona = "cot_harvester"
accounts = 2
kind = "attack"
campaign = "A"
start_within_hours = 6
params = { hours = 1.0, gap = 3.0 }
"""


def test_the_detector_and_every_baseline_are_scored_per_family_on_the_same_stream(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SMALL)
    events, labels = tmp_path / "e.jsonl", tmp_path / "l.jsonl"
    write(load_scenario(tmp_path / "s.toml"), events, labels)
    report = evaluate(events, labels)

    assert list(report["detectors"]) == [DETECTOR, "volume", "cot_regex", "either"]
    ours = report["detectors"][DETECTOR]
    assert ours["families"]["harvesters"]["recall"] == 1.0  # the stock template at one request every 3 s
    assert ours["families"]["researchers"]["false_positive_rate"] == 0.0
    # The regex blocks researchers who ask for steps in most prompts: the baseline's known weakness.
    assert report["detectors"]["cot_regex"]["families"]["researchers"]["false_positive_rate"] > 0.5
    # ~1,200 requests an hour trips the volume rule too, but only after its 201st request in an hour.
    volume = report["detectors"]["volume"]["families"]["harvesters"]
    assert volume["recall"] == 1.0 and volume["minutes_to_enforce_median"] > 9
    text = format_report(report)
    assert "| harvesters | attack | 2 |" in text and "| benign enforced FPR |" in text
    json.dumps({k: v for k, v in report.items() if not k.startswith("_")})
    plot(report, labels, tmp_path / "report.png")
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_harvested_tokens_count_from_the_harvest_start_and_stop_counting_as_served_at_enforcement() -> None:
    truth = {
        "a": {"kind": "attack", "population": "p", "family": "f", "harvest_start": 10.0},
        "b": {"kind": "benign", "population": "q", "family": "g"},
    }
    harvest = [("a", 10.0, 100), ("a", 20.0, 100), ("a", 30.0, 200)]  # from the harvest's start on
    enforced = score(truth, harvest, Outcome(enforced_at={"a": 25.0}, challenged={"b"}))
    attack, benign = enforced["families"]["f"], enforced["families"]["g"]
    assert attack["harvested_token_reduction"] == 0.5  # 200 of 400 tokens came after the block
    assert attack["minutes_to_enforce_median"] == round(15 / 60, 1)
    assert (benign["false_positive_rate"], benign["challenge_rate"]) == (0.0, 1.0)
    never = score(truth, harvest, Outcome())["families"]["f"]
    assert (never["recall"], never["harvested_token_reduction"], never["minutes_to_enforce_median"]) == (0.0, 0.0, None)


def test_decisions_from_a_file_are_scored_without_a_replay(tmp_path: Path) -> None:
    events, labels, decisions = tmp_path / "e.jsonl", tmp_path / "l.jsonl", tmp_path / "d.jsonl"
    sent = [{"event_id": f"x{i}", "ts": 100.0 + i, "account_id": "x", "model": "m", "input_tokens": 1,
             "output_tokens": 10} for i in range(3)]  # fmt: skip
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in sent))
    labels.write_bytes(orjson.dumps({"account_id": "x", "population": "p", "kind": "attack", "campaign": "c",
                                     "harvest_start": 100.0}) + b"\n")  # fmt: skip
    decisions.write_bytes(orjson.dumps({"subject": {"type": "account", "id": "x"}, "action": "block",
                                        "issued_at": 101.5, "score": 0.99}) + b"\n")  # fmt: skip
    report = evaluate(events, labels, decisions)
    ours = report["detectors"][DETECTOR]["families"]["p"]
    assert ours["recall"] == 1.0 and ours["harvested_token_reduction"] == round(10 / 30, 4)
