"""From an account's state to one extraction score in [0, 1] with the reasons behind it.

Three River models feed the fusion, each used the way BRIEF §4 says works: HalfSpaceTrees per
cohort (never per account) on features already in [0, 1], thresholded on its own running quantile;
Page-Hinkley per account (see ``drift.py``); StandardScaler → LogisticRegression learning from
triage verdicts, whose weight grows with the number of verdicts.
"""

from __future__ import annotations

import math
import operator
import struct
from array import array
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from river import anomaly, compose, linear_model, optim, preprocessing, stats

from detectors.accelerators import accelerator
from detectors.account_state import AccountState
from detectors.config import AnomalyConfig, ScoringConfig, SupervisedConfig
from detectors.reference import fold as _reference
from detectors.registry import PRODUCTS, VECTOR_FEATURES

if TYPE_CHECKING:
    from detectors import _fold
else:
    _fold = accelerator("_fold") or _reference
_hst = accelerator("_hst")  # River's own trees are the reference of its walks

__all__ = [
    "VECTOR_FEATURES",
    "CohortAnomaly",
    "Explanation",
    "FlatTrees",
    "LinearFusion",
    "PopulationNorms",
    "SupervisedModel",
    "PRODUCTS",
    "account_vector",
    "vector_params",
    "window_vector",
    "fuse",
    "logistic",
]

_WINDOW_FEATURES = frozenset(VECTOR_FEATURES)

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


class CohortAnomaly:
    """HalfSpaceTrees for one cohort of accounts, scored against its own running quantile.

    Returns 0 until the trees have seen a full window (HST scores 0 for its whole first window),
    then ``min(1, score / quantile)``: 1 means as anomalous as the top ``1 - q`` of the cohort.
    River builds the trees; scores and learning steps are River's, walked in C over a flat copy of the
    trees (``_hst.c``; River's own walks take 15 µs a score and 28 µs a learn). Between window pivots
    the live masses a learn adds to are kept in an array (``_live``) and written to River's nodes when
    River needs them: at a pivot, a checkpoint, or a score River walks itself.

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
        self._flat: FlatTrees | None = None  # the trees' shape, as _hst reads it (built once)
        self._masses: bytes | None = None  # their reference masses; None when stale
        self._live: bytearray | None = None  # their live masses while River's nodes lag; None when they are current

    def learn_one(self, x: dict[str, float]) -> None:
        trees = self.trees
        self.n_learned += 1
        if not trees.trees or _hst is None:  # River builds the trees at the first learn; River is the reference
            trees.learn_one(x)  # type: ignore[no-untyped-call]  # River's HST is not annotated
            return
        flat = self._flat_trees()
        live = self._live
        if live is None:
            live = self._live = flat.live_masses()
        _hst.learn(flat.nodes, live, x, flat.names, flat.n_trees, flat.height)
        trees.counter += 1
        if trees.counter == trees.window_size:  # River's pivot: this window becomes the reference
            flat.pivot(live)
            self._masses = bytes(live)
            live[:] = bytes(len(live))  # as River's nodes now are
            trees._first_window, trees.counter = False, 0

    def raw_score(self, x: dict[str, float]) -> float:
        """River's ``HalfSpaceTrees.score_one(x)``, the same float, in C when ``x`` has every feature."""
        trees = self.trees
        if trees._first_window:
            return 0.0
        if _hst is None:
            return float(trees.score_one(x))  # type: ignore[no-untyped-call]
        flat = self._flat_trees()
        if self._masses is None:
            self._masses = flat.masses()
        walked = _hst.walk(flat.nodes, self._masses, x, flat.names, flat.n_trees, flat.height, flat.size_limit)
        if walked is None:  # a missing feature: River goes down the busier side, by live masses
            self._sync()
            return float(trees.score_one(x))  # type: ignore[no-untyped-call]
        return 1 - float(walked) / flat.max_score

    def score_one(self, x: dict[str, float]) -> float:
        """Relative anomaly in [0, 1]; every raw score also updates the cohort's running quantile."""
        raw = self.raw_score(x)
        self.quantile.update(raw)
        if self.n_learned < 2 * self.cfg.window_size:
            return 0.0  # first windows gated
        q = self.quantile.get() or 0.0
        return min(1.0, raw / q) if q > 0 else 0.0

    def _flat_trees(self) -> FlatTrees:
        flat = self._flat
        if flat is None:
            flat = self._flat = FlatTrees.of(self.trees)
        return flat

    def _sync(self) -> None:
        """Write the live masses to River's nodes, so that River's own walks and pickles read them; River's
        nodes are then current, and the next learn reads the array from them (a run of scores River walks
        itself writes the nodes once, not at every score)."""
        if self._live is not None and self._flat is not None:
            self._flat.set_live_masses(self._live)
            self._live = None

    def __getstate__(self) -> dict[str, Any]:
        self._sync()
        return {k: v for k, v in self.__dict__.items() if k not in ("_flat", "_masses", "_live")}  # rebuilt on load

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _flat=None, _masses=None, _live=None)


_NODE = struct.Struct("=dq")  # _hst.c's Node: threshold, feature index (-1: a leaf)


@dataclass(frozen=True)
class FlatTrees:
    """River's padded trees as ``_hst.walk`` reads them: every node in heap order (a full tree) with
    its split, and the feature names the splits' indices refer to. Splits never change; the masses a
    score reads change at each window pivot (:meth:`masses`).

    >>> from river import anomaly
    >>> hst = anomaly.HalfSpaceTrees(n_trees=2, height=3, seed=1)
    >>> hst.learn_one({"a": 0.2, "b": 0.9})
    >>> flat = FlatTrees.of(hst)
    >>> len(flat.nodes) == 2 * (2**4 - 1) * _NODE.size, flat.names, len(flat.masses()) == 2 * (2**4 - 1) * 8
    (True, ('a', 'b'), True)
    """

    nodes: bytes
    names: tuple[str, ...]
    river_nodes: tuple[Any, ...]
    n_trees: int
    height: int
    size_limit: float
    max_score: int

    @classmethod
    def of(cls, trees: Any) -> FlatTrees:
        nodes = []
        for root in trees.trees:  # breadth first: heap order in a full tree
            queue = deque([root])
            while queue:
                node = queue.popleft()
                nodes.append(node)
                queue.extend(getattr(node, "children", ()))
        names = tuple(sorted({node.feature for node in nodes if hasattr(node, "feature")}))
        index = {name: i for i, name in enumerate(names)}
        packed = b"".join(
            _NODE.pack(node.threshold, index[node.feature]) if hasattr(node, "feature") else _NODE.pack(0.0, -1)
            for node in nodes
        )
        return cls(packed, names, tuple(nodes), trees.n_trees, trees.height, 0.1 * trees.window_size,
                   trees._max_score)  # fmt: skip

    def masses(self) -> bytes:
        """Every node's ``r_mass`` (the reference window's), in the order of :attr:`nodes`."""
        return array("q", [node.r_mass for node in self.river_nodes]).tobytes()

    def live_masses(self) -> bytearray:
        """Every node's ``l_mass`` (the window being learned), in the order of :attr:`nodes`, writable."""
        return bytearray(array("q", [node.l_mass for node in self.river_nodes]).tobytes())

    def set_live_masses(self, live: bytearray) -> None:
        for node, mass in zip(self.river_nodes, array("q", live), strict=True):
            node.l_mass = mass

    def pivot(self, live: bytearray) -> None:
        """River's window pivot on its nodes: the live masses become the reference, the live ones 0."""
        for node, mass in zip(self.river_nodes, array("q", live), strict=True):
            node.r_mass, node.l_mass = mass, 0


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
