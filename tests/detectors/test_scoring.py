"""One contract for every River-backed detector (STYLE §3), plus the fusion."""

from __future__ import annotations

import math
import pickle
import random
from typing import Any

import pytest
from river import anomaly as anomaly_module

from detectors.account_state import AccountState, Counters
from detectors.anomaly import CohortAnomaly
from detectors.config import load_scoring
from detectors.features import CATEGORIES, RequestFeatures
from detectors.fusion import LinearFusion, fuse
from detectors.scoring import VECTOR_FEATURES, account_vector, vector_params
from detectors.supervised import SupervisedModel
from tests.detectors.histories import random_state

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


def river_masses(trees: anomaly_module.HalfSpaceTrees) -> list[tuple[int, int]]:
    return [(node.l_mass, node.r_mass) for root in trees.trees for node in root.iter_dfs()]


def test_cohort_anomaly_learns_and_scores_as_rivers_own_trees_across_window_pivots() -> None:
    """The C walks over the flat copy of the trees are River's: fed the same vectors as River's own
    HalfSpaceTrees, every score is River's float for float — before the first pivot, after each of
    several, for vectors missing a feature (which learn and score by live masses) and for values on the
    other side of every split — and the trees' masses equal River's, mid-window too, across a pickle."""
    model, rng = anomaly(), random.Random(8)
    a = CFG.anomaly
    river = anomaly_module.HalfSpaceTrees(n_trees=a.n_trees, height=a.height, window_size=a.window_size, seed=a.seed)
    checked = 0
    for i in range(4 * a.window_size + 37):
        x = {name: rng.choice((rng.random(), rng.random() * 0.2, 0.0, 1.0)) for name in VECTOR_FEATURES}
        if i // 100 % 2:  # high values for a while: the right children get busier than the left
            x = {k: 1.0 - v for k, v in x.items()}
        if i % 5 == 2:  # a vector missing features: paths through their splits follow the live masses
            for name in rng.sample(VECTOR_FEATURES, rng.choice((1, 6))):
                del x[name]
        for probe in (x, {k: 1.0 - v for k, v in x.items()}):
            assert model.raw_score(probe) == river.score_one(probe)
            checked += 1
        model.learn_one(x)
        river.learn_one(x)
        if i in (3, 260, 600):  # a checkpoint mid-window carries the live masses; learning goes on after it
            model = pickle.loads(pickle.dumps(model))
            assert river_masses(model.trees) == river_masses(river)
    assert checked > 2000 and model.n_learned // a.window_size == 4
    restored = pickle.loads(pickle.dumps(model))
    assert river_masses(restored.trees) == river_masses(river) and restored.trees.counter == river.counter
    probe = vectors(11, 20)
    assert [restored.raw_score(x) for x in probe] == [river.score_one(x) for x in probe]


def test_the_shipped_fusion_is_monotone_more_of_any_input_never_lowers_the_score() -> None:
    w = CFG.weights
    assert all(weight >= 0 for name, weight in w.items() if name != "bias")
    rng = random.Random(7)
    for _ in range(200):
        x = {name: rng.random() for name in VECTOR_FEATURES}
        base, _ = fuse(x, w)
        name = rng.choice(VECTOR_FEATURES)
        more, _ = fuse({**x, name: min(1.0, x[name] + rng.random())}, w)
        assert more >= base


def test_the_fast_logit_is_the_fusions_own_on_any_vector_and_weights() -> None:
    rng = random.Random(4)
    for trial in range(300):
        # The configured weights, then random ones (some zero), so no weight can be left out unnoticed.
        w = dict(CFG.weights) if trial == 0 else {k: rng.choice((0.0, rng.uniform(-5, 5))) for k in CFG.weights}
        values = [rng.choice((0.0, 1.0, rng.random())) for _ in VECTOR_FEATURES]
        supervised = rng.uniform(-1, 1)
        score, _ = fuse({**dict(zip(VECTOR_FEATURES, values, strict=True)), "supervised": supervised}, w)
        z = LinearFusion.of(w).logit(values, supervised)
        assert 1 / (1 + math.exp(-z)) == pytest.approx(score, rel=1e-12, abs=1e-15)


def test_a_weight_the_fast_logit_cannot_read_is_refused() -> None:
    with pytest.raises(ValueError, match="tools_x_volume"):
        LinearFusion.of({**CFG.weights, "tools_x_volume": 1.0})


# The definition of the window vector, in Python; the C code (``_fold.vector``) must agree with it exactly.
_LOG_CATEGORIES = math.log(len(CATEGORIES))


def _log_scaled(value: float, cap: float) -> float:
    return min(1.0, math.log1p(max(value, 0.0)) / math.log1p(cap))


def defined_vector(state: AccountState, now: float) -> dict[str, float]:
    w, sc = CFG.window, CFG.scaling
    c = state.counters
    n = c[Counters.REQUESTS]
    shrunk = n + sc.share_prior_requests  # shares shrink towards 0 while evidence is thin
    cats = [v for v in state.categories if v > 0]
    total = sum(cats)
    entropy = -sum([v / total * math.log(v / total) for v in cats]) if total > 0 else 0.0
    hour = state.window(now, w)
    age = now - (state.created_ts or state.first_ts)
    return {
        "volume": _log_scaled(hour.requests, sc.requests_per_hour_cap),
        "burst": _log_scaled(hour.burst, sc.burst_per_minute_cap),
        "tokens": _log_scaled(hour.tokens, sc.output_tokens_per_hour_cap),
        "cot_rate": c[Counters.COT] / shrunk,
        "role_rate": c[Counters.ROLE] / shrunk,
        "template_top": state.template_top_share(sc.share_prior_requests),
        "focus": 1.0 - entropy / _LOG_CATEGORIES if total > 0 else 0.0,
        "ratio": _log_scaled(c[Counters.RATIO] / n if n > 0 else 0.0, sc.ratio_cap),
        "single_turn": c[Counters.SINGLE_TURN] / shrunk,
        "max_tokens_high": c[Counters.MAX_HIGH] / shrunk,
        "regularity": 1.0 / (1.0 + state.gap_cv()) if n >= 3 else 0.0,
        "always_on": state.active_hours(now) / 24.0,
        "ip_spread": min(1.0, state.distinct_ips() / sc.distinct_ips_cap),
        "ua_spread": min(1.0, state.distinct_uas() / sc.distinct_uas_cap),
        "new_account": min(1.0, max(0.0, 1.0 - age / w.new_account_seconds)),  # a late event may predate it
        "new_model": c[Counters.NEW_MODEL] / shrunk,
        "tools": c[Counters.TOOLS] / shrunk,
        "drift": 1.0 if state.drift_ts and now - state.drift_ts < CFG.drift.memory_seconds else 0.0,
    }


def test_the_c_window_vector_matches_its_definition() -> None:
    rng = random.Random(5)
    params = vector_params(CFG)
    for _ in range(600):
        state, now = random_state(rng)
        assert account_vector(state, now, params) == defined_vector(state, now), (state, now)


def test_the_window_vector_is_in_the_unit_interval_and_reads_like_its_account() -> None:
    rng = random.Random(6)
    for _ in range(200):
        state, now = random_state(rng)
        assert all(0.0 <= v <= 1.0 for v in account_vector(state, now, vector_params(CFG)).values())
    metronome = AccountState.new(CFG.window, created_ts=0.0)
    for i in range(400):  # a templated CoT request every 6 s from 3 IPs
        features = RequestFeatures(0.8, 1, 4, (1, 2, 3, 4), 20.0, 0, False, True, 8192)
        metronome.add(features, 1_800_000_000.0 + 6 * i, CFG.window, output_tokens=2000, ip=f"10.0.0.{i % 3}")
    x = account_vector(metronome, 1_800_000_000.0 + 2400, vector_params(CFG))
    assert x["cot_rate"] > 0.75 and x["template_top"] > 0.9 and x["regularity"] > 0.95 and x["focus"] == 1.0
    assert x["volume"] > 0.7 and x["ip_spread"] == 3 / CFG.scaling.distinct_ips_cap
    assert x["new_account"] > 0.99  # no creation time given: first seen 40 minutes ago
