"""From an account's packed state to its window vector: named features in [0, 1] at a moment, and the
cohort's typical values of them (what explanations compare against).

The vector goes to the fusion (``fusion.py``) with the cohort's anomaly score (``anomaly.py``) and the
verdict-trained model's (``supervised.py``); Page-Hinkley per account is in ``drift.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from river import stats

from detectors.accelerators import accelerator
from detectors.account_state import AccountState
from detectors.config import ScoringConfig
from detectors.reference import fold as _reference
from detectors.registry import VECTOR_FEATURES

if TYPE_CHECKING:
    from detectors import _fold
else:
    _fold = accelerator("_fold") or _reference

__all__ = ["VECTOR_FEATURES", "PopulationNorms", "account_vector", "vector_params", "window_vector"]

if _reference.VECTOR_FEATURES != VECTOR_FEATURES or _fold.VECTOR_FEATURES != VECTOR_FEATURES:
    raise ImportError("the window vector's computation and rules/features.toml disagree: rebuild with `make setup`")


def vector_params(cfg: ScoringConfig) -> tuple[float, ...]:
    """What :func:`account_vector` needs of the configuration, in the order ``_fold.vector`` takes it."""
    w, sc = cfg.window, cfg.scaling
    return (
        w.buckets, w.bucket_seconds, sc.share_prior_requests, sc.requests_per_hour_cap, sc.burst_per_minute_cap,
        sc.output_tokens_per_hour_cap, sc.ratio_cap, sc.distinct_ips_cap, sc.distinct_uas_cap,
        w.new_account_seconds, cfg.drift.memory_seconds,
    )  # fmt: skip


def account_vector(state: AccountState, now: float, params: tuple[float, ...]) -> dict[str, float]:
    """The account's window at ``now`` as named features in [0, 1], read from the packed state
    (``params`` from :func:`vector_params`). Defined in ``detectors/reference/fold.py`` (``vector``), in C
    where the accelerator is built (``_fold.vector``, ~1 µs). In short:

    - ``volume``, ``burst``, ``tokens``: requests, busiest minute and output tokens in the last hour,
      log-scaled to their ``[scaling]`` caps;
    - ``cot_rate``, ``role_rate``, ``single_turn``, ``max_tokens_high``, ``new_model``, ``tools``: decayed
      shares of requests, shrunk towards 0 by ``share_prior_requests`` pseudo-requests;
    - ``template_top``: the guaranteed share of the heaviest template (space-saving), shrunk the same way;
    - ``focus``: 1 - normalized entropy of the category histogram; ``ratio``: mean output/input tokens;
    - ``regularity``: 1 / (1 + CV of in-session gaps); ``always_on``: active hours of the last 24 / 24;
    - ``ip_spread``, ``ua_spread``: distinct IPs / user agents (bottom-k) over their caps;
    - ``new_account``: 1 at creation, 0 after ``new_account_seconds``; ``drift``: 1 for a day after a
      Page-Hinkley alarm.
    """
    return dict(zip(VECTOR_FEATURES, window_vector(state, now, params), strict=True))


def window_vector(state: AccountState, now: float, params: tuple[float, ...]) -> tuple[float, ...]:
    """:func:`account_vector`'s values alone, in :data:`VECTOR_FEATURES` order (what
    :meth:`LinearFusion.logit` reads)."""
    return _fold.vector(state.data, now, *params)


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
