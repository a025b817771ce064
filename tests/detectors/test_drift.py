"""The packed Page-Hinkley flags exactly where River's PageHinkley does."""

from __future__ import annotations

import random

import pytest
from river import drift

from detectors.account_state import AccountState
from detectors.config import load_scoring
from detectors.drift import PageHinkleyState, page_hinkley_update

CFG = load_scoring().drift
WINDOW = load_scoring().window


def river_flags(stream: list[float]) -> list[int]:
    ph = drift.PageHinkley(
        min_instances=CFG.min_instances, delta=CFG.delta, threshold=CFG.threshold, alpha=CFG.alpha, mode="up"
    )
    flags = []
    for i, x in enumerate(stream):
        ph.update(x)
        if ph.drift_detected:
            flags.append(i)
    return flags


def our_flags(stream: list[float]) -> list[int]:
    state = AccountState.new(WINDOW, created_ts=0.0)
    return [i for i, x in enumerate(stream) if page_hinkley_update(state.data, x, CFG)]


@pytest.mark.parametrize("seed", range(5))
def test_page_hinkley_matches_river_on_streams_that_drift_up(seed: int) -> None:
    rng = random.Random(seed)
    stream = [rng.random() * 0.2 for _ in range(300)] + [0.6 + rng.random() * 0.4 for _ in range(300)]
    stream += [rng.random() * 0.2 for _ in range(300)]
    assert our_flags(stream) == river_flags(stream)
    assert our_flags(stream) and 300 <= our_flags(stream)[0] < 330


@pytest.mark.parametrize("share", [0.0, 0.2, 0.5, 0.9])
def test_page_hinkley_stays_quiet_when_the_share_of_cot_requests_does_not_change(share: float) -> None:
    rng = random.Random(9)
    stream = [0.8 if rng.random() < share else 0.0 for _ in range(5000)]  # a researcher's steady mix
    assert our_flags(stream) == river_flags(stream) == []


def test_the_detector_lives_in_the_account_state_and_restarts_after_a_detection() -> None:
    state = AccountState.new(WINDOW, created_ts=0.0)
    assert state.drift == PageHinkleyState()
    flags = [page_hinkley_update(state.data, 0.0 if i < 100 else 1.0, CFG) for i in range(200)]
    first = flags.index(True)
    assert state.drift.n == 199 - first and state.drift.mean == 1.0  # counted afresh since the detection
    assert AccountState.unpack(state.pack(), WINDOW) == state
