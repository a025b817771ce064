"""Page-Hinkley change detection in four floats, so that every account can carry its own detector.

The arithmetic is River's ``drift.PageHinkley`` (River 0.26, ``mode="up"``) step for step, done on the
account's packed state where the per-request fold is (``reference/fold.py``, in C ``_fold.page_hinkley``):

    n += 1;  mean += (x - mean) / n;  cumulative = alpha * cumulative + (x - mean) - delta
    minimum = min(minimum, cumulative);  drift when n >= min_instances and cumulative - minimum > threshold

``tests/detectors/test_drift.py`` runs both on the same streams and checks they flag the same points.
River's object pickles to ~0.5 KB; this packs into 16 bytes of the account's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from detectors.accelerators import accelerator
from detectors.config import DriftConfig
from detectors.reference import fold as _reference

if TYPE_CHECKING:
    from detectors import _fold
else:
    _fold = accelerator("_fold") or _reference

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


def page_hinkley_update(state: bytearray, x: float, cfg: DriftConfig) -> bool:
    """Fold ``x`` into the detector inside packed account ``state``; ``True`` when the mean of the stream
    has risen (and the detector restarts, as River's does).

    >>> from detectors.account_state import AccountState
    >>> from detectors.config import load_scoring
    >>> cfg = load_scoring()
    >>> s = AccountState.new(cfg.window, created_ts=0.0)
    >>> flags = [page_hinkley_update(s.data, 0.0 if i < 100 else 0.8, cfg.drift) for i in range(200)]
    >>> flags.index(True) - 100 < 20   # caught within 20 requests of the change
    True
    """
    return _fold.page_hinkley(state, x, cfg.min_instances, cfg.delta, cfg.threshold, cfg.alpha)
