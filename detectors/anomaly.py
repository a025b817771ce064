"""HalfSpaceTrees per cohort of accounts, scored against the cohort's own running quantile (BRIEF §4:
per cohort, never per account, on features already in [0, 1]). River builds and defines the trees; the
walks run in C where the accelerator is built (``_hst.c``), over a flat copy of River's own trees.
"""

from __future__ import annotations

import struct
from array import array
from collections import deque
from dataclasses import dataclass
from typing import Any

from river import anomaly, stats

from detectors.accelerators import accelerator
from detectors.config import AnomalyConfig

__all__ = ["CohortAnomaly", "FlatTrees"]

_hst = accelerator("_hst")  # River's own trees are the reference of its walks


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
