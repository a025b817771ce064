"""The model that learns from analysts' verdicts (``distillguard.feedback``): StandardScaler →
LogisticRegression, starting neutral, its say in the fusion growing with the verdicts it has seen.
"""

from __future__ import annotations

import math

from river import compose, linear_model, optim, preprocessing

from detectors.config import SupervisedConfig
from detectors.registry import VECTOR_FEATURES

__all__ = ["SupervisedModel"]

_WINDOW_FEATURES = frozenset(VECTOR_FEATURES)


class SupervisedModel:
    """Online logistic regression on triage verdicts; starts neutral and earns its weight.

    ``score_one`` is the probability that an account is an extractor; ``confidence`` grows from 0
    towards 1 as verdicts arrive, so the fusion can scale its say by it.

    >>> from detectors.config import load_scoring
    >>> model = SupervisedModel(load_scoring().supervised)
    >>> model.score_one({"cot_rate": 1.0}), model.confidence
    (0.5, 0.0)
    >>> model.learn_one({"cot_rate": 1e308}, True), model.learn_one({"rm -rf": 0.5}, True), model.verdicts
    (False, False, 0)
    """

    def __init__(self, cfg: SupervisedConfig) -> None:
        self.cfg = cfg
        self.model = compose.Pipeline(
            preprocessing.StandardScaler(), linear_model.LogisticRegression(optimizer=optim.SGD(0.05))
        )
        self.verdicts = 0

    def learn_one(self, x: dict[str, float], y: bool) -> bool:
        """Learn from one verdict whose features are window features in [0, 1]; anything else (a value
        of 1e308 would turn every later score into NaN, and detection off) is refused: False."""
        if not all(name in _WINDOW_FEATURES and 0.0 <= value <= 1.0 for name, value in x.items()):
            return False
        self.model.learn_one(x, y)
        self.verdicts += 1
        return True

    def score_one(self, x: dict[str, float]) -> float:
        if self.verdicts == 0:
            return 0.5
        p = float(self.model.predict_proba_one(x).get(True, 0.5))
        return p if math.isfinite(p) else 0.5  # a model gone wrong says nothing, it does not switch scoring off

    @property
    def confidence(self) -> float:
        return self.verdicts / (self.verdicts + self.cfg.evidence_half)
