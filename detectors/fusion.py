"""The fusion: a subject's inputs → one score in [0, 1], and each input's part in it (the explanation).

``sigmoid(bias + Σ weight · input)`` with product terms for content at scale; the weights and thresholds
are fitted (``rules/fusion.toml``, ``sim/fusion_fit.py``), never set by hand.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detectors.registry import PRODUCTS, VECTOR_FEATURES

__all__ = ["Explanation", "LinearFusion", "fuse", "logistic"]


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

    Products (``cot_x_volume``, ``templated_x_volume``, ``templated_single_turn``) let content at scale
    count more than either alone, when the fit (``sim/fusion_fit.py``) finds that it should.

    >>> w = {"bias": -6.0, "cot_rate": 2.0, "volume": 1.0, "cot_x_volume": 4.0}
    >>> quiet, _ = fuse({}, w)
    >>> loud, parts = fuse({"cot_rate": 1, "template_top": 1, "single_turn": 1, "volume": 1}, w)
    >>> quiet < 0.01 < 0.5 < loud, max(parts, key=parts.get)
    (True, 'cot_x_volume')
    """
    x = dict(inputs)
    for name, factors in PRODUCTS:
        x[name] = math.prod(x.get(factor, 0.0) for factor in factors)
    return logistic(x, weights)


@dataclass(frozen=True)
class LinearFusion:
    """:func:`fuse`'s logit read straight off a window vector, without each input's part: most ticks
    decide nothing and need only the score (~0.8 µs against ~3 µs for :func:`fuse`). The anomaly term
    is added by the caller, only when the trees are asked.

    >>> from detectors.config import load_scoring
    >>> w = load_scoring().weights
    >>> v = [0.5] * len(VECTOR_FEATURES)
    >>> z = LinearFusion.of(w).logit(v, supervised=0.2)
    >>> score, _ = fuse({**dict(zip(VECTOR_FEATURES, v)), "supervised": 0.2}, w)
    >>> math.isclose(1 / (1 + math.exp(-z)), score)
    True
    """

    bias: float
    linear: tuple[float, ...]  # the weight of each window feature, in VECTOR_FEATURES order (0: none)
    products: tuple[tuple[float, tuple[int, ...]], ...]  # (weight, indices of the factors)
    supervised: float

    @classmethod
    def of(cls, weights: Mapping[str, float]) -> LinearFusion:
        index = {name: i for i, name in enumerate(VECTOR_FEATURES)}
        products = tuple((weights.get(name, 0.0), tuple(index[f] for f in factors)) for name, factors in PRODUCTS)
        linear = tuple(weights.get(name, 0.0) for name in VECTOR_FEATURES)
        covered = {"bias", "supervised", "anomaly", *VECTOR_FEATURES, *(name for name, _ in PRODUCTS)}
        if missing := sorted(name for name, w in weights.items() if w and name not in covered):
            raise ValueError(f"the fusion has no input for weights {missing}")
        return cls(weights.get("bias", 0.0), linear, products, weights.get("supervised", 0.0))

    def logit(self, v: Sequence[float], supervised: float = 0.0) -> float:
        z: float = self.bias + sum(map(operator.mul, self.linear, v)) + self.supervised * supervised
        for weight, factors in self.products:
            for i in factors:
                weight *= v[i]
            z += weight
        return z


def logistic(x: Mapping[str, float], weights: Mapping[str, float]) -> tuple[float, dict[str, float]]:
    """``sigmoid(bias + Σ weight·x)`` over the weighted names present in ``x``, and each one's part.

    >>> logistic({"a": 1.0, "ignored": 5.0}, {"bias": -1.0, "a": 1.0})
    (0.5, {'a': 1.0})
    """
    parts = {name: w * v for name, w in weights.items() if (v := x.get(name)) and name != "bias"}
    z = weights.get("bias", 0.0) + sum(parts.values())
    return 1.0 / (1.0 + math.exp(-z)), parts
