"""Analyst verdicts make the detector better: precision rises, and no harvester is lost for it."""

from __future__ import annotations

from dataclasses import replace

from detectors.config import load_scoring
from sim.feedback_loop import run_loop, scenario

# A detector that alerts on the startup's evaluation jobs: the fitted thresholds with the challenge and limit
# rungs lowered, so that there are false alerts for verdicts to correct.
_CFG = load_scoring()
NOISY = replace(_CFG, policy=_CFG.policy.with_thresholds({"challenge": 0.1, "limit": 0.2, "block": 0.95}))


def test_simulated_analyst_verdicts_raise_precision_over_time_without_losing_harvesters() -> None:
    events, attackers = scenario(seed=9)
    without = run_loop(events, attackers, analyst=False, cfg=NOISY)
    with_analyst = run_loop(events, attackers, analyst=True, cfg=NOISY)
    last = len(without.windows) - 2  # the last full 12-hour window
    assert with_analyst.verdicts > 10
    assert with_analyst.precision(last) > without.precision(last)
    assert with_analyst.precision(last) > with_analyst.precision(0)  # it improves as verdicts accumulate
    assert attackers <= with_analyst.alerted and attackers <= without.alerted  # recall is kept
