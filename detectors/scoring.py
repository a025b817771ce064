"""From an account's state to one extraction score in [0, 1] with the reasons behind it.

Three River models feed the fusion, each used the way BRIEF §4 says works: HalfSpaceTrees per
cohort (never per account) on features already in [0, 1], thresholded on its own running quantile;
Page-Hinkley per account (see ``drift.py``); StandardScaler → LogisticRegression learning from
triage verdicts, whose weight grows with the number of verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from river import anomaly, compose, linear_model, optim, preprocessing, stats

from detectors.account_state import AccountState, Counters
from detectors.config import AnomalyConfig, ScoringConfig, SupervisedConfig
from detectors.features import CATEGORIES

__all__ = [
    "VECTOR_FEATURES",
    "CohortAnomaly",
    "Explanation",
    "PopulationNorms",
    "SupervisedModel",
    "account_vector",
    "fuse",
    "logistic",
]

#: The window vector every account is scored on, in this order; all values in [0, 1].
VECTOR_FEATURES = (
    "volume", "burst", "tokens", "cot_rate", "role_rate", "template_top", "focus", "ratio", "single_turn",
    "max_tokens_high", "regularity", "always_on", "ip_spread", "ua_spread", "new_account", "new_model",
    "tools", "drift",
)  # fmt: skip

_LOG_CATEGORIES = math.log(len(CATEGORIES))


def _log_scaled(value: float, cap: float) -> float:
    return min(1.0, math.log1p(max(value, 0.0)) / math.log1p(cap))


def account_vector(state: AccountState, now: float, cfg: ScoringConfig) -> dict[str, float]:
    """The account's window as named features in [0, 1] (see :data:`VECTOR_FEATURES`)."""
    w, sc = cfg.window, cfg.scaling
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
        "new_account": max(0.0, 1.0 - age / w.new_account_seconds),
        "new_model": c[Counters.NEW_MODEL] / shrunk,
        "tools": c[Counters.TOOLS] / shrunk,
        "drift": 1.0 if state.drift_ts and now - state.drift_ts < cfg.drift.memory_seconds else 0.0,
    }


@dataclass(frozen=True)
class Explanation:
    """One fusion input's part in a score: its value, weight × value, and the population's median."""

    feature: str
    value: float
    contribution: float
    typical: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "value": round(self.value, 3),
            "contribution": round(self.contribution, 3),
            "typical": round(self.typical, 3),
        }


def fuse(inputs: dict[str, float], weights: Any) -> tuple[float, dict[str, float]]:
    """Logistic fusion: ``sigmoid(bias + Σ weight·input)`` and each input's contribution.

    Products (``cot_x_volume``, ``templated_x_volume``, ``templated_single_turn``) make content at
    scale count more than either alone.

    >>> from detectors.config import load_scoring
    >>> w = load_scoring().weights
    >>> quiet, _ = fuse({}, w)
    >>> loud, parts = fuse({"cot_rate": 1, "template_top": 1, "single_turn": 1, "volume": 1}, w)
    >>> quiet < 0.01 < 0.9 < loud, max(parts, key=parts.get)
    (True, 'cot_x_volume')
    """
    x = dict(inputs)
    x["templated_single_turn"] = x.get("template_top", 0.0) * x.get("single_turn", 0.0)
    x["cot_x_volume"] = x.get("cot_rate", 0.0) * x.get("volume", 0.0)
    x["templated_x_volume"] = x["templated_single_turn"] * x.get("volume", 0.0)
    return logistic(x, weights)


def logistic(x: Mapping[str, float], weights: Mapping[str, float]) -> tuple[float, dict[str, float]]:
    """``sigmoid(bias + Σ weight·x)`` over the weighted names present in ``x``, and each one's part.

    >>> logistic({"a": 1.0, "ignored": 5.0}, {"bias": -1.0, "a": 1.0})
    (0.5, {'a': 1.0})
    """
    parts = {name: weights[name] * x[name] for name in weights if name != "bias" and x.get(name)}
    z = weights.get("bias", 0.0) + sum(parts.values())
    return 1.0 / (1.0 + math.exp(-z)), parts


class CohortAnomaly:
    """HalfSpaceTrees for one cohort of accounts, scored against its own running quantile.

    Returns 0 until the trees have seen a full window (HST scores 0 for its whole first window),
    then ``min(1, score / quantile)``: 1 means as anomalous as the top ``1 - q`` of the cohort.

    >>> from detectors.config import load_scoring
    >>> model = CohortAnomaly(load_scoring().anomaly)
    >>> model.score_one({"volume": 0.5})
    0.0
    """

    def __init__(self, cfg: AnomalyConfig) -> None:
        self.cfg = cfg
        self.trees = anomaly.HalfSpaceTrees(
            n_trees=cfg.n_trees, height=cfg.height, window_size=cfg.window_size, seed=cfg.seed
        )
        self.quantile = stats.Quantile(cfg.quantile)
        self.n_learned = 0

    def learn_one(self, x: dict[str, float]) -> None:
        self.trees.learn_one(x)  # type: ignore[no-untyped-call]  # River's HST is not annotated
        self.n_learned += 1

    def score_one(self, x: dict[str, float]) -> float:
        """Relative anomaly in [0, 1]; every raw score also updates the cohort's running quantile."""
        raw: float = self.trees.score_one(x)  # type: ignore[no-untyped-call]
        self.quantile.update(raw)
        if self.n_learned < 2 * self.cfg.window_size:
            return 0.0  # first windows gated
        q = self.quantile.get() or 0.0
        return min(1.0, raw / q) if q > 0 else 0.0


class SupervisedModel:
    """Online logistic regression on triage verdicts; starts neutral and earns its weight.

    ``score_one`` is the probability that an account is an extractor; ``confidence`` grows from 0
    towards 1 as verdicts arrive, so the fusion can scale its say by it.

    >>> from detectors.config import load_scoring
    >>> model = SupervisedModel(load_scoring().supervised)
    >>> model.score_one({"cot_rate": 1.0}), model.confidence
    (0.5, 0.0)
    """

    def __init__(self, cfg: SupervisedConfig) -> None:
        self.cfg = cfg
        self.model = compose.Pipeline(
            preprocessing.StandardScaler(), linear_model.LogisticRegression(optimizer=optim.SGD(0.05))
        )
        self.verdicts = 0

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        self.model.learn_one(x, y)
        self.verdicts += 1

    def score_one(self, x: dict[str, float]) -> float:
        if self.verdicts == 0:
            return 0.5
        return float(self.model.predict_proba_one(x).get(True, 0.5))

    @property
    def confidence(self) -> float:
        return self.verdicts / (self.verdicts + self.cfg.evidence_half)


class PopulationNorms:
    """Running median of each window feature for one cohort: the "typical value" in explanations.

    Only every ``sample_every``-th vector is folded in: a median needs no more, and updating 18
    quantile sketches per tick would cost more than the scoring itself.
    """

    def __init__(self, sample_every: int = 8) -> None:
        self.medians: dict[str, stats.Quantile] = {}
        self.sample_every = sample_every
        self.seen = 0

    def update(self, x: dict[str, float]) -> None:
        self.seen += 1
        if self.seen % self.sample_every:
            return
        for name, value in x.items():
            median = self.medians.get(name)
            if median is None:
                median = self.medians[name] = stats.Quantile(0.5)
            median.update(value)

    def typical(self, name: str) -> float:
        median = self.medians.get(name)
        value = median.get() if median is not None else None
        return float(value) if value is not None else 0.0
