"""Page-Hinkley change detection in four floats, so that every account can carry its own detector.

The arithmetic is River's ``drift.PageHinkley`` (River 0.26, ``mode="up"``) step for step;
``tests/detectors/test_drift.py`` runs both on the same streams and checks they flag the same points.
River's object pickles to ~0.5 KB; this packs into 16 bytes of the account's state.
"""

from __future__ import annotations

from dataclasses import dataclass

from detectors.config import DriftConfig

__all__ = ["PageHinkleyState", "page_hinkley_update"]


@dataclass
class PageHinkleyState:
    """Running mean, cumulative deviation and its minimum: River's ``_x_mean``, ``_sum_increase``,
    ``_min_increase``. ``n = 0`` means fresh (also right after a detection, as in River)."""

    n: float = 0.0
    mean: float = 0.0
    cumulative: float = 0.0
    minimum: float = float("inf")

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.n, self.mean, self.cumulative, self.minimum)


def page_hinkley_update(state: PageHinkleyState, x: float, cfg: DriftConfig) -> bool:
    """Fold ``x`` in; ``True`` when the mean of the stream has risen (and the state is reset).

    >>> from detectors.config import load_scoring
    >>> cfg, s = load_scoring().drift, PageHinkleyState()
    >>> flags = [page_hinkley_update(s, 0.0 if i < 100 else 0.8, cfg) for i in range(200)]
    >>> flags.index(True) - 100 < 20   # caught within 20 requests of the change
    True
    """
    state.n += 1
    state.mean += (x - state.mean) / state.n
    state.cumulative = cfg.alpha * state.cumulative + (x - state.mean) - cfg.delta
    if state.cumulative < state.minimum:
        state.minimum = state.cumulative
    if state.n >= cfg.min_instances and state.cumulative - state.minimum > cfg.threshold:
        state.n, state.mean, state.cumulative, state.minimum = 0.0, 0.0, 0.0, float("inf")
        return True
    return False
