"""Hydra clusters: link accounts that share infrastructure or act on the same targets together.

Two kinds of link, both decaying (half-life in ``rules/clusters.toml``):

- **strong**: an account and a strong target it used (the payment fingerprint) are joined
  directly — a bipartite edge, so a card shared by 500 accounts costs 500 edges, not 125,000;
- **soft**, SynchroTrap-style: two accounts that hit the same soft target (template fingerprint, IP /24,
  ASN, user agent) within ``window_seconds`` of each other gain ``1 / log2(1 + accounts on the target)``
  (FRAUDAR-style discount), times (fewer / more) of the two accounts' hits on the target (Jaccard-like:
  an account that is always there co-occurs with everyone); a target used by more than
  ``max_accounts_per_target`` accounts (a big NAT, a common SDK, a viral prompt) links nobody.

A target's account count starts again every ``target_period_seconds`` (from its first hit of the period):
popularity decays, so a hydra that burns its own template with throwaway accounts gains one period.

Clusters are the connected components over strong edges and soft edges at or above ``link_threshold``:
one weak co-occurrence never joins an account to a cluster. Every structure is an LRU with a cap, so an
account-id flood cannot grow memory without bound.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from detectors.accelerators import accelerator
from detectors.account_state import AccountState
from detectors.config import RULES_DIR
from detectors.features import RequestFeatures
from detectors.fusion import logistic
from detectors.reference import fold as _fold_reference
from detectors.reference import link as _link_reference
from detectors.types import RequestEvent

if TYPE_CHECKING:
    from detectors import _fold, _link
else:
    _fold = accelerator("_fold") or _fold_reference
    _link = accelerator("_link") or _link_reference

__all__ = [
    "CLUSTER_REASON_CODES",
    "Cluster",
    "ClusterConfig",
    "LinkMerge",
    "Linker",
    "MemberSummary",
    "ShardedLinker",
    "cluster_targets",
    "cluster_vector",
    "load_clusters",
    "lru_slot",
    "member_fields",
    "member_summary",
    "score_cluster",
    "split_obs",
    "target_shard",
]

#: A cluster's score is the same logistic fusion as an account's, over cluster features.
score_cluster = logistic


@dataclass(frozen=True)
class ClusterConfig:
    strong_targets: tuple[str, ...]
    strong_weight: float
    soft_targets: tuple[str, ...]
    window_seconds: float
    max_accounts_per_target: int
    target_period_seconds: float
    link_threshold: float
    half_life_seconds: float
    recent_per_target: int
    max_targets: int
    max_links: int
    tick_seconds: float
    min_members: int
    anomaly_floor: float
    member_min_cot_share: float
    weights: dict[str, float]
    thresholds: dict[str, float]  # challenge, limit, block on the cluster score


def load_clusters(path: Path | str | None = None) -> ClusterConfig:
    """Load ``rules/clusters.toml``; a missing key raises ``ValueError`` naming file and key.

    >>> load_clusters().link_threshold > 1.0
    True
    """
    path = Path(path) if path is not None else RULES_DIR / "clusters.toml"
    doc = tomllib.loads(path.read_text())
    try:
        link, scoring = doc["linking"], dict(doc["scoring"])
        return ClusterConfig(
            strong_targets=tuple(link["strong_targets"]), strong_weight=float(link["strong_weight"]),
            soft_targets=tuple(link["soft_targets"]), window_seconds=float(link["window_seconds"]),
            max_accounts_per_target=int(link["max_accounts_per_target"]),
            target_period_seconds=float(link["target_period_seconds"]),
            link_threshold=float(link["link_threshold"]), half_life_seconds=float(link["half_life_seconds"]),
            recent_per_target=int(link["recent_per_target"]), max_targets=int(link["max_targets"]),
            max_links=int(link["max_links"]), tick_seconds=float(scoring.pop("tick_seconds")),
            min_members=int(scoring.pop("min_members")), anomaly_floor=float(scoring.pop("anomaly_floor")),
            member_min_cot_share=float(scoring.pop("member_min_cot_share")),
            weights={k: float(v) for k, v in scoring.items()},
            thresholds={name: float(doc["thresholds"][name]) for name in ("challenge", "limit", "block")},
        )  # fmt: skip
    except KeyError as exc:
        raise ValueError(f"{path}: missing {exc}; see detectors/rules/clusters.toml") from None


def cluster_targets(event: RequestEvent, features: RequestFeatures, cfg: ClusterConfig) -> list[tuple[str, bool]]:
    """The (target, strong?) pairs an event touches, e.g. ``("payment_fingerprint:pf-1", True)``.

    >>> cfg = load_clusters()
    >>> from detectors.features import extract, load_phrasebook
    >>> e = {"prompt": "hi", "input_tokens": 1, "output_tokens": 1, "ip": "203.0.113.9", "payment_fingerprint": "pf"}
    >>> sorted(cluster_targets(e, extract(e, load_phrasebook()), cfg))[:2]
    [('ip24:203.0.113', False), ('payment_fingerprint:pf', True)]
    """
    template = features.template[0] if features.template else None
    return _link.targets(event, template, cfg.strong_targets, cfg.soft_targets)


K = TypeVar("K")
V = TypeVar("V")


def lru_slot(store: OrderedDict[K, V], key: K, new: Callable[[], V], cap: int) -> V:
    """``store[key]``, created by ``new()`` if missing, marked most recently used; beyond ``cap`` entries
    the least recently used goes (bounded memory under an id flood).

    >>> d: OrderedDict[str, list[int]] = OrderedDict()
    >>> for k in "abcb":
    ...     _ = lru_slot(d, k, list, cap=2)
    >>> list(d)
    ['c', 'b']
    """
    slot = store.get(key)
    if slot is None:
        slot = store[key] = new()
        if len(store) > cap:
            store.popitem(last=False)
    else:
        store.move_to_end(key)
    return slot


#: What the linker remembers of one target: its latest ``(ts, account)`` hits (``recent``), how often each
#: account hit it (``accounts``), whether it is ``popular`` and ``since`` when it has been counting.
#: The C type where the accelerator runs (``reference/link.py``'s class otherwise); checkpoints name it.
_Target = _link.Target


def _link_params(cfg: ClusterConfig) -> tuple[float | int, ...]:
    """The config values the C fold reads, in its order."""
    return (cfg.window_seconds, cfg.max_accounts_per_target, cfg.max_targets, cfg.recent_per_target,
            cfg.strong_weight, cfg.half_life_seconds, cfg.link_threshold, cfg.max_links,
            cfg.target_period_seconds)  # fmt: skip


class Linker:
    """Streaming account linking with bounded memory; :meth:`clusters` gives the current components.

    The fold of observations is defined in ``detectors/reference/link.py`` over the structures below,
    and runs in C (``_link.c``) where the accelerator is built; tests pin the two together.

    >>> cfg = load_clusters()
    >>> linker = Linker(cfg)
    >>> for i in range(6):
    ...     linker.observe(f"a{i}", 100.0 + i, [("payment_fingerprint:pf-shared", True)])
    >>> linker.observe("loner", 100.0, [("ip24:198.51.100", False)])
    >>> [(c.members, c.hubs, len(c.strong)) for c in linker.clusters(200.0).values()]
    [(['a0', 'a1', 'a2', 'a3', 'a4', 'a5'], ['payment_fingerprint:pf-shared'], 6)]
    """

    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg = cfg
        self._params = _link_params(cfg)
        # target key -> _Target, least recently used first
        self.targets: OrderedDict[str, _link.Target] = OrderedDict()
        # (node, node) -> [weight at last_ts, last_ts, strong?]; nodes are accounts or "@target" hubs
        self.links: OrderedDict[tuple[str, str], list[Any]] = OrderedDict()
        # Links whose weight reached the threshold when last updated: only these can join a cluster
        # (weights only decay between updates), so a tick never walks the long tail of weak links.
        self.linked: set[tuple[str, str]] = set()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Load a checkpoint; one from before the C fold has no ``_params`` and may hold targets whose
        recent hits are a deque (the C fold reads lists)."""
        self.__dict__.update(state)
        self._params = _link_params(self.cfg)
        for target in self.targets.values():
            if type(target.recent) is not list:
                target.recent = list(target.recent)
            if getattr(target, "since", None) is None:  # older than popularity decay: counting from its next hit
                target.since = 0.0

    def observe(self, account: str, ts: float, targets: Iterable[Sequence[Any]]) -> None:
        """Fold in that ``account`` touched each ``(target key, strong?)`` pair at ``ts``."""
        self.observe_many([(account, ts, targets)])

    def observe_many(self, obs: Iterable[Sequence[Any]]) -> None:
        """Fold in each ``(account, ts, targets)`` of ``obs``, in order (a partial's ``obs``)."""
        _link.observe(self.targets, self.links, self.linked, self._params, obs)

    def clusters(self, now: float) -> dict[str, Cluster]:
        """cluster id -> :class:`Cluster`, for the components of two accounts or more, in the order of
        their roots (not of the ``linked`` set, whose order changes with the interpreter's hash seed).

        The union-find is ``reference/link.py``'s ``components`` (in C, ``_link.components``). Pairs whose
        link decayed below the threshold leave ``linked``.
        """
        return _clusters(self.links, self.linked, now, self.cfg)

    def drain_links(self) -> list[list[Any]]:
        """The links this linker formed since the last drain, as ``[a, b, weight, last_ts, strong]``
        deltas for a :class:`LinkMerge`, and forgets them: a link shard keeps only its targets."""
        out = [[a, b, weight, last, strong] for (a, b), (weight, last, strong) in self.links.items()]
        self.links.clear()
        self.linked.clear()
        return out


def _clusters(links: OrderedDict[tuple[str, str], list[Any]], linked: set[tuple[str, str]], now: float,
              cfg: ClusterConfig) -> dict[str, Cluster]:  # fmt: skip
    groups, on_hub = _link.components(links, linked, now, cfg.half_life_seconds, cfg.link_threshold)
    return {_cluster_id(root): Cluster(sorted(m), sorted(h), frozenset(a for a in m if a in on_hub))
            for root, (m, h) in sorted(groups.items()) if len(m) >= 2}  # fmt: skip


def target_shard(key: str, shards: int) -> int:
    """The link shard that folds a target: every hit of one target meets in one place, so each shard's
    co-occurrences, counts and popularity are exactly those one linker would keep for its targets.
    A stable hash (not Python's, which changes per process), the same in every worker.

    >>> target_shard("template:42", 1), target_shard("template:42", 4) == target_shard("template:42", 4)
    (0, True)
    """
    if shards <= 1:
        return 0
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=4).digest()) % shards


def split_obs(obs: Iterable[Sequence[Any]], shards: int) -> list[list[list[Any]]]:
    """A partial's ``(account, ts, targets)`` observations per shard, each with only the targets its
    shard owns (an observation left with none is not sent there).

    >>> split_obs([["a", 1.0, [["template:1", False], ["template:2", False]]]], 1)
    [[['a', 1.0, [['template:1', False], ['template:2', False]]]]]
    >>> sum(len(part) for part in split_obs([["a", 1.0, [["template:1", False], ["template:2", False]]]], 64))
    2
    """
    out: list[list[list[Any]]] = [[] for _ in range(max(1, shards))]
    for account, ts, keys in obs:
        mine: dict[int, list[Any]] = {}
        for key in keys:
            mine.setdefault(target_shard(key[0], shards), []).append(key)
        for shard, owned in mine.items():
            out[shard].append([account, ts, owned])
    return out


class LinkMerge:
    """The link graph summed over link shards' deltas (:meth:`Linker.drain_links`): what one linker over
    every target would hold, since a decaying weight is a sum of decayed updates (a strong link is its
    cap). Its :meth:`clusters` are the components, as :class:`Linker`'s.

    >>> cfg = load_clusters()
    >>> shards = [Linker(cfg), Linker(cfg)]  # a and b meet twice on a template, twice behind one /24
    >>> for t in (0.0, 10.0):
    ...     for account, dt in (("a", 1), ("b", 2)):
    ...         shards[0].observe(account, t + dt, [("template:7", False)])
    ...         shards[1].observe(account, t + dt, [("ip24:10.0.0", False)])
    >>> [len(shard.clusters(20.0)) for shard in shards]  # neither shard alone reaches the threshold
    [0, 0]
    >>> merge = LinkMerge(cfg)
    >>> for shard in shards:
    ...     merge.add(shard.drain_links())
    >>> [c.members for c in merge.clusters(20.0).values()]
    [['a', 'b']]
    """

    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg, self._params = cfg, _link_params(cfg)
        self.links: OrderedDict[tuple[str, str], list[Any]] = OrderedDict()  # as Linker.links
        self.linked: set[tuple[str, str]] = set()

    def add(self, deltas: Iterable[Sequence[Any]]) -> None:
        """Fold in ``[a, b, weight, last_ts, strong]`` deltas, each as one more link update
        (``reference/link.py``'s ``merge``, in C ``_link.merge``; ``ValueError`` on a malformed one:
        they arrive over Kafka)."""
        _link.merge(self.links, self.linked, self._params, deltas)

    def clusters(self, now: float) -> dict[str, Cluster]:
        return _clusters(self.links, self.linked, now, self.cfg)


class ShardedLinker:
    """``shards`` link shards and their merge in one process: how the worker's sharded cluster stage
    computes (``stream/app.py``: shards on the partitions of ``cluster-partials``, the merge on
    ``cluster-links``), run where one process sees everything, so replay and tests can check that
    sharding changes no cluster. Same interface as :class:`Linker`.
    """

    def __init__(self, cfg: ClusterConfig, shards: int) -> None:
        self.cfg, self.shards = cfg, [Linker(cfg) for _ in range(shards)]
        self.merge = LinkMerge(cfg)

    def observe_many(self, obs: Iterable[Sequence[Any]]) -> None:
        for shard, part in zip(self.shards, split_obs(obs, len(self.shards)), strict=True):
            if part:
                shard.observe_many(part)

    def clusters(self, now: float) -> dict[str, Cluster]:
        for shard in self.shards:
            self.merge.add(shard.drain_links())
        return self.merge.clusters(now)


class Cluster(NamedTuple):
    """One component of the link graph at a tick."""

    members: list[str]
    hubs: list[str]  # shared strong targets ("payment_fingerprint:…") inside the component
    strong: frozenset[str]  # members joined by strong infrastructure rather than co-occurrence alone


def _cluster_id(root: str) -> str:
    return "cl-" + hashlib.blake2b(root.encode(), digest_size=6).hexdigest()


#: Stable reason codes for cluster decisions, by cluster feature.
CLUSTER_REASON_CODES = {
    "members": "CLUSTER_SIZE",
    "requests": "CLUSTER_VOLUME",
    "cot_rate": "CLUSTER_COT_ELICITATION",
    "template_concentration": "CLUSTER_SHARED_TEMPLATE",
    "evenness": "CLUSTER_LOAD_BALANCING",
    "strong_share": "CLUSTER_SHARED_INFRASTRUCTURE",
    "new_model": "CLUSTER_NEW_MODEL_PIVOT",
    "anomaly": "CLUSTER_ANOMALOUS",
}


class MemberSummary(NamedTuple):
    """What a cluster needs to know of one member's window (sent between the stages; no prompt text)."""

    last_ts: float
    requests_last_hour: float
    requests: float  # decayed day-level count
    cot: float  # decayed count of CoT-eliciting requests
    new_model: float  # decayed count of requests on a newly released model
    top_template: int | None  # the member's heaviest template fingerprint
    account_type: str
    first_ts: float = 0.0  # first request seen (new members per hour)
    tokens_last_hour: float = 0.0  # output tokens in the last hour


def member_fields(state: AccountState, now: float, window: Any, account_type: str) -> list[Any]:
    """The member's :class:`MemberSummary` at ``now`` as the JSON-ready list of its fields, as partials
    carry it; read from the packed state (``reference/fold.py``'s ``summary``, in C ``_fold.summary``)."""
    return _fold.summary(state.data, now, window.buckets, window.bucket_seconds, account_type)


def member_summary(state: AccountState, now: float, window: Any, account_type: str) -> MemberSummary:
    return MemberSummary(*member_fields(state, now, window, account_type))


def cluster_vector(members: list[MemberSummary], strong: int, now: float) -> dict[str, float]:
    """Aggregate features of a cluster's members: the weighted ones in [0, 1], plus raw context."""
    active = [m for m in members if now - m.last_ts < 3600]
    requests = [m.requests_last_hour for m in active]
    total = sum(m.requests for m in members) or 1.0
    tops = [m.top_template for m in members if m.top_template is not None]
    top_share = Counter(tops).most_common(1)[0][1] / len(members) if tops else 0.0
    # statistics.fmean's arithmetic; the deviation as a float sum (statistics.pstdev's exact fractions
    # cost a third of a busy tick, for digits past the 15th)
    mean = math.fsum(requests) / len(requests) if requests else 0.0
    deviation = math.sqrt(math.fsum((r - mean) ** 2 for r in requests) / len(requests)) if requests else 0.0
    cv = deviation / mean if mean > 0 and len(requests) > 1 else 1.0
    # Shown in the evidence, not weighted (rules/clusters.toml has no weight for them yet): how fast the
    # cluster recruits (a hydra replacing burnt accounts) and how much output it takes.
    context = {
        "new_members_last_hour": float(sum(1 for m in members if now - m.first_ts < 3600)),
        "output_tokens_last_hour": float(sum(m.tokens_last_hour for m in active)),
    }
    return context | {
        "members": min(1.0, math.log1p(len(active)) / math.log1p(1000)),
        "requests": min(1.0, math.log1p(sum(requests)) / math.log1p(36000)),
        "cot_rate": sum(m.cot for m in members) / total,
        "template_concentration": top_share,
        "evenness": max(0.0, 1.0 - min(1.0, cv)),
        "strong_share": strong / len(members) if members else 0.0,
        "new_model": sum(m.new_model for m in members) / total,
    }
