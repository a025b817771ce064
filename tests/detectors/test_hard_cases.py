"""The hard cases of the per-account detector, each a deterministic scenario on real prompts.

Attackers must end up limited or blocked; benign look-alikes must never be. The scenarios mix in a
background of ordinary chat users so that the cohort models see a population. Seeds here differ from
the ones the weights were explored with (seed 1 in development), and two seeds run.
"""

from __future__ import annotations

from typing import Any

import pytest

from detectors.types import Decision
from sim.hard_cases import ATTACKERS, SWITCH, build, run

ENFORCING = {"limit", "block"}
BENIGN_SINGLES = ("harness", "agent", "researcher", "library")


@pytest.fixture(scope="module", params=[11, 12], ids=["seed11", "seed12"])
def scenario(
    request: pytest.FixtureRequest,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[Decision]]]:
    streams = build(request.param)
    return streams, run(streams)


@pytest.mark.parametrize("account", list(ATTACKERS))
def test_attacker_is_limited_or_blocked(scenario: Any, account: str) -> None:
    _, decisions = scenario
    assert {d.action for d in decisions[account]} & ENFORCING, decisions[account]


@pytest.mark.parametrize("account", BENIGN_SINGLES)
def test_benign_look_alike_is_never_limited_or_blocked(scenario: Any, account: str) -> None:
    _, decisions = scenario
    assert not {d.action for d in decisions[account]} & ENFORCING, decisions[account]


def test_enterprise_harness_gets_at_most_a_challenge(scenario: Any) -> None:
    _, decisions = scenario
    assert {d.action for d in decisions["harness"]} <= {"challenge"}


def test_ordinary_and_launch_day_users_are_never_limited(scenario: Any) -> None:
    streams, decisions = scenario
    people = [a for a in streams if a.startswith(("chat-", "launch-"))]
    enforced = [a for a in people if {d.action for d in decisions.get(a, [])} & ENFORCING]
    assert enforced == []


def test_drifting_account_is_caught_at_its_change_point(scenario: Any) -> None:
    _, decisions = scenario
    drifter = decisions["drifter"]
    assert all(d.issued_at >= SWITCH for d in drifter), "flagged while still behaving normally"
    first_enforced = min(d.issued_at for d in drifter if d.action in ENFORCING)
    assert first_enforced - SWITCH < 1800  # within half an hour of turning


def test_single_high_volume_harvester_is_enforced_within_minutes(scenario: Any) -> None:
    streams, decisions = scenario
    start = streams["harvester"][0]["ts"]
    first = min(d.issued_at for d in decisions["harvester"] if d.action in ENFORCING)
    assert first - start < 600


def test_every_decision_carries_an_explanation_against_population_norms(scenario: Any) -> None:
    _, decisions = scenario
    for d in (d for ds in decisions.values() for d in ds):
        explanation = d.evidence["explanation"]
        assert explanation and d.reason
        assert {"feature", "value", "contribution", "typical"} <= set(explanation[0])
        assert set(d.evidence["features"]) >= {"cot_rate", "template_top", "volume"}
