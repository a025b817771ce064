"""Analyst verdicts make the detector better: precision rises, and no harvester is lost for it."""

from __future__ import annotations

from sim.feedback_loop import run_loop, scenario


def test_simulated_analyst_verdicts_raise_precision_over_time_without_losing_harvesters() -> None:
    events, attackers = scenario(seed=9)  # the README's table uses seed 5
    without = run_loop(events, attackers, analyst=False)
    with_analyst = run_loop(events, attackers, analyst=True)
    last = len(without.windows) - 2  # the last full 12-hour window
    assert with_analyst.verdicts > 10
    assert with_analyst.precision(last) > without.precision(last)
    assert with_analyst.precision(last) > with_analyst.precision(0)  # it improves as verdicts accumulate
    assert attackers <= with_analyst.alerted and attackers <= without.alerted  # recall is kept
