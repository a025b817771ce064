"""One contract for every River-backed detector (STYLE §3), plus the fusion."""

from __future__ import annotations

import pickle
import random
from typing import Any

import pytest

from detectors.config import load_scoring
from detectors.scoring import VECTOR_FEATURES, CohortAnomaly, SupervisedModel, fuse

CFG = load_scoring()


def vectors(seed: int, n: int = 1200) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{name: rng.random() * 0.3 for name in VECTOR_FEATURES} for _ in range(n)]


def anomaly() -> CohortAnomaly:
    return CohortAnomaly(CFG.anomaly)


class Supervised:
    """Adapter giving the supervised model the unsupervised signature: label from a fixed rule."""

    def __init__(self) -> None:
        self.model = SupervisedModel(CFG.supervised)

    def learn_one(self, x: dict[str, float]) -> None:
        self.model.learn_one(x, x.get("cot_rate", 0.0) > 0.15)

    def score_one(self, x: dict[str, float]) -> float:
        return self.model.score_one(x)


DETECTORS = {"cohort_anomaly": anomaly, "supervised": Supervised}


def trained(factory: Any, seed: int = 1) -> Any:
    model = factory()
    for x in vectors(seed):
        model.score_one(x)
        model.learn_one(x)
    return model


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_survives_a_pickle_round_trip(name: str) -> None:
    model = trained(DETECTORS[name])
    clone = pickle.loads(pickle.dumps(model))
    probe = vectors(99, 50)
    assert [model.score_one(x) for x in probe] == [clone.score_one(x) for x in probe]


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_is_reproducible_with_the_same_seed(name: str) -> None:
    a, b = trained(DETECTORS[name]), trained(DETECTORS[name])
    probe = vectors(7, 50)
    assert [a.score_one(x) for x in probe] == [b.score_one(x) for x in probe]


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_tolerates_missing_and_new_features(name: str) -> None:
    model = trained(DETECTORS[name])
    partial = {"volume": 0.9}
    extended = {**vectors(3, 1)[0], "brand_new_feature": 0.5}
    for x in (partial, extended, {}):
        score = model.score_one(x)
        assert 0.0 <= score <= 1.0
        model.learn_one(x)


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_scores_stay_in_the_unit_interval(name: str) -> None:
    model = trained(DETECTORS[name])
    assert all(0.0 <= model.score_one(x) <= 1.0 for x in vectors(5, 200))


def test_cohort_anomaly_is_gated_for_its_first_windows_then_flags_outliers() -> None:
    model = anomaly()
    normal = vectors(2, 2 * CFG.anomaly.window_size)
    for x in normal:
        assert model.score_one(x) == 0.0
        model.learn_one(x)
    for x in vectors(4, 300):
        model.score_one(x)
        model.learn_one(x)
    outlier = {name: 1.0 for name in VECTOR_FEATURES}
    typical = [model.score_one(x) for x in vectors(6, 100)]
    assert model.score_one(outlier) == 1.0 > sorted(typical)[50]


def test_fusion_rewards_content_at_scale_over_either_alone() -> None:
    w = CFG.weights
    content_only, _ = fuse({"cot_rate": 1.0, "template_top": 1.0, "single_turn": 1.0}, w)
    scale_only, _ = fuse({"volume": 1.0, "always_on": 1.0, "regularity": 1.0, "focus": 1.0}, w)
    both, _ = fuse({"cot_rate": 1.0, "template_top": 1.0, "single_turn": 1.0, "volume": 1.0}, w)
    assert max(content_only, scale_only) < CFG.policy.limit < CFG.policy.block < both
