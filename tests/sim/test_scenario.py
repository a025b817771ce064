"""Scenario files → labelled traffic → the evaluation report."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest

from sim.scenario import load_scenario, write
from stream.evaluate import evaluate, format_report, plot

SMALL = """
[scenario]
name = "small"
seed = 3

[[population]]
name = "chat"
persona = "chat_user"
accounts = 25
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


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


def test_simulation_is_reproducible_and_keeps_labels_out_of_events(scenario_file: Path, tmp_path: Path) -> None:
    runs = []
    for name in ("one", "two"):
        events, labels = tmp_path / f"{name}.jsonl.gz", tmp_path / f"{name}-labels.jsonl"
        n, accounts = write(load_scenario(scenario_file), events, labels)
        assert accounts == 27 and n > 500
        runs.append((gzip.decompress(events.read_bytes()), labels.read_bytes()))
    assert runs[0] == runs[1]
    first = orjson.loads(runs[0][0].splitlines()[0])
    assert not {"population", "kind", "campaign"} & set(first)
    timestamps = [orjson.loads(line)["ts"] for line in runs[0][0].splitlines()]
    assert timestamps == sorted(timestamps)


def test_another_seed_gives_other_traffic(scenario_file: Path, tmp_path: Path) -> None:
    write(load_scenario(scenario_file), tmp_path / "a.jsonl", tmp_path / "al.jsonl")
    write(load_scenario(scenario_file, seed=4), tmp_path / "b.jsonl", tmp_path / "bl.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "b.jsonl").read_bytes()


def test_evaluation_reports_by_population_and_plots(scenario_file: Path, tmp_path: Path) -> None:
    events, labels = tmp_path / "e.jsonl", tmp_path / "l.jsonl"
    write(load_scenario(scenario_file), events, labels)
    report = evaluate(events, labels)
    assert report["recall"] == 1.0 and report["false_positive_rate"] == 0.0
    assert report["campaigns_detected"] == "1/1" and report["harvested_token_reduction"] > 0.5
    assert set(report["populations"]) == {"chat", "harvesters"}
    assert "| chat | benign | 25 |" in format_report(report)
    json.dumps({k: v for k, v in report.items() if not k.startswith("_")})
    plot(report, labels, tmp_path / "report.png")
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [('persona = "chat_user"', 'persona = "alien"', "persona must be one of"),
     ('campaign = "A"\n', "", "an attack needs a campaign id"),
     ('kind = "benign"', 'kind = "maybe"', "kind must be")],
)  # fmt: skip
def test_bad_scenario_files_are_refused_with_the_population_named(tmp_path: Path, old: str, new: str,
                                                                  message: str) -> None:  # fmt: skip
    path = tmp_path / "bad.toml"
    path.write_text(SMALL.replace(old, new, 1))
    with pytest.raises(ValueError, match=message):
        load_scenario(path)
