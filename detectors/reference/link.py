"""The linker's fold of observations, an event's targets and the link graph's components, in Python.

This is the definition ``detectors/_link.c`` accelerates, on the same structures (``clusters.Linker``'s
OrderedDicts of targets and links and its set of linked pairs), operation for operation and in the
same order, so checkpoints and cluster ids do not depend on which one ran
(``tests/detectors/test_accelerators.py``).

>>> from collections import OrderedDict
>>> targets, links, linked = OrderedDict(), OrderedDict(), set()
>>> params = (600.0, 50, 1000, 8, 1.0, 3600.0, 0.5, 1000, 21600.0)
>>> observe(targets, links, linked, params, [("a", 1.0, [("template:7", False)]), ("b", 2.0, [("template:7", False)])])
>>> [(pair, round(weight, 3), last, strong) for pair, (weight, last, strong) in links.items()]
[(('a', 'b'), 0.631, 2.0, False)]
>>> components(links, linked, 2.0, 3600.0, 0.5)
({'a': (['a', 'b'], [])}, set())
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["Target", "components", "merge", "observe", "targets"]


class Target:
    """What the linker remembers of one target (a template, an IP /24, a payment fingerprint)."""

    __slots__ = ("recent", "accounts", "popular", "since")

    def __init__(
        self,
        recent: list[tuple[float, str]] | None = None,
        accounts: dict[str, int] | None = None,
        popular: bool = False,
        since: float = 0.0,
    ) -> None:
        self.recent = [] if recent is None else recent  # (ts, account) of the latest hits, oldest first
        self.accounts = {} if accounts is None else accounts  # account -> times it hit the target
        self.popular = bool(popular)  # shared by too many accounts: links nobody
        self.since = float(since)  # when its account count started (0: at the next hit)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.recent, self.accounts, self.popular, self.since))


def _add_link(links: OrderedDict[Any, list[Any]], linked: set[Any], p: tuple[Any, ...], a: str, b: str,
              weight: float, ts: Any, *, strong: bool, cap: bool) -> None:  # fmt: skip
    """Strengthen the (a, b) link by ``weight`` at ``ts`` (decayed since its last update); a strong link
    is capped at its weight. A link that reaches the threshold joins ``linked``."""
    _, _, _, _, _, half_life, threshold, max_links, _ = p
    pair = (a, b) if a < b else (b, a)
    link = links.get(pair)
    if link is None:
        link = links[pair] = [float(weight), ts, strong]
        if len(links) > max_links:
            oldest, _ = links.popitem(last=False)
            linked.discard(oldest)
    else:
        if not isinstance(link, list) or len(link) != 3:
            raise TypeError("a link must be a list [weight, last_ts, strong]")
        total = link[0] * math.pow(0.5, max(0.0, ts - link[1]) / half_life) + weight
        link[0] = float(min(weight, total) if cap else total)
        if ts > link[1]:
            link[1] = ts
        link[2] = link[2] or strong
        links.move_to_end(pair)
    if link[0] >= threshold:
        linked.add(pair)


def _observe_target(targets: OrderedDict[Any, Target], links: OrderedDict[Any, list[Any]], linked: set[Any],
                    p: tuple[Any, ...], account: str, ts: Any, key: Any, strong: bool) -> None:  # fmt: skip
    window, max_per_target, max_targets, recent_per_target, strong_weight, _, _, _, period = p
    target = targets.get(key)
    if target is None:
        target = targets[key] = Target(since=float(ts))
        if len(targets) > max_targets:
            targets.popitem(last=False)
    else:
        if not isinstance(target, Target):
            raise TypeError(f"linker target {key!r} is a {type(target).__name__}, not a Target")
        targets.move_to_end(key)
    if not target.since > 0.0:
        target.since = float(ts)
    elif ts - target.since > period:  # its count starts again: popularity decays
        target.accounts, target.popular, target.since = {}, False, float(ts)
    if target.popular:
        return
    hits = target.accounts
    hits[account] = mine = hits.get(account, 0) + 1
    if mine == 1 and len(hits) > max_per_target * (50 if strong else 1):
        target.popular, target.accounts = True, {}  # shared by too many: links nobody
        return
    if strong:
        _add_link(links, linked, p, account, "@" + key, strong_weight, ts, strong=True, cap=True)
        return
    weight = 1.0 / math.log2(1 + len(hits))
    recent = target.recent
    while recent and ts - recent[0][0] > window:
        del recent[0]
    for other in dict.fromkeys(other for _, other in recent if other != account):
        theirs = hits.get(other, 1)
        similar = min(mine, theirs) / max(mine, theirs)
        _add_link(links, linked, p, account, other, weight * similar, ts, strong=False, cap=False)
    recent.append((ts, account))
    if len(recent) > recent_per_target:
        del recent[0]


def observe(
    targets: OrderedDict[Any, Target],
    links: OrderedDict[tuple[str, str], list[Any]],
    linked: set[tuple[str, str]],
    params: tuple[float | int, ...],
    obs: Iterable[Sequence[Any]],
    /,
) -> None:
    """Fold each ``(account, ts, [(target key, strong?), ...])`` of ``obs`` into the linker; ``params``
    is (window_seconds, max_accounts_per_target, max_targets, recent_per_target, strong_weight,
    half_life_seconds, link_threshold, max_links, target_period_seconds)."""
    if len(params) != 9:
        raise TypeError("observe(OrderedDict, OrderedDict, set, 9-tuple, obs)")
    for account, ts, keys in obs:
        for key, strong in keys:
            _observe_target(targets, links, linked, params, account, ts, key, bool(strong))


def merge(
    links: OrderedDict[tuple[str, str], list[Any]],
    linked: set[tuple[str, str]],
    params: tuple[float | int, ...],
    deltas: Iterable[Sequence[Any]],
    /,
) -> None:
    """Fold link shards' ``[a, b, weight, last_ts, strong]`` deltas (``clusters.Linker.drain_links``) into
    ``links`` and ``linked``, each as one more link update: what one linker over every target would have
    done, since a decaying weight is a sum of decayed updates and a strong link is its cap. ``ValueError``
    on a malformed delta (they arrive over Kafka); ``params`` as :func:`observe`'s."""
    if len(params) != 9:
        raise TypeError("merge(OrderedDict, set, 9-tuple, deltas)")
    for delta in deltas:
        if not (type(delta) in (list, tuple) and len(delta) == 5):
            raise ValueError("a link delta must be [str, str, weight >= 0, seconds, bool]")
        a, b, weight, last, strong = delta
        if not (type(a) is str and type(b) is str and type(strong) is bool and type(weight) in (int, float)
                and type(last) in (int, float) and weight >= 0.0):  # fmt: skip
            raise ValueError("a link delta must be [str, str, weight >= 0, seconds, bool]")
        _add_link(links, linked, params, a, b, float(weight), float(last), strong=strong, cap=strong)


def targets(
    event: Mapping[str, Any], template: int | None, strong: tuple[str, ...], soft: tuple[str, ...], /
) -> list[tuple[str, bool]]:
    """``clusters.cluster_targets``: the strong targets that are set, then the soft ones present (the
    request's first template hash, its IPv4 /24, and the named fields)."""
    out = [(f"{name}:{value}", True) for name in strong if (value := event.get(name))]
    for name in soft:
        if name == "template":
            if template is not None:
                out.append((f"template:{template}", False))
        elif name == "ip24":
            ip = event.get("ip")
            if isinstance(ip, str) and ip.count(".") == 3:
                out.append((f"ip24:{ip[: ip.rfind('.')]}", False))
        elif (value := event.get(name)) is not None:
            out.append((f"{name}:{value}", False))
    return out


def components(
    links: Mapping[tuple[str, str], list[Any]], linked: set[tuple[str, str]], now: float, half_life: float,
    threshold: float, /,
) -> tuple[dict[str, tuple[list[str], list[str]]], set[str]]:  # fmt: skip
    """Union-find over the ``linked`` pairs whose link, decayed to ``now``, still reaches ``threshold``
    (the others leave ``linked``): each component's root (its least node) -> (accounts, hubs without
    their leading "@") in order of first appearance, and the accounts joined to a hub."""
    parent: dict[str, str] = {}
    on_hub: set[str] = set()

    def find(x: str) -> str:
        while (up := parent.setdefault(x, x)) != x:
            parent[x] = parent[up]  # path halving
            x = parent[x]
        return x

    for pair in list(linked):
        weight, last, _ = links[pair]
        if weight * math.pow(0.5, max(0.0, now - last) / half_life) < threshold:
            linked.discard(pair)  # decayed: rejoins only if refreshed
            continue
        a, b = pair
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
        if a.startswith("@"):
            on_hub.add(b)
        elif b.startswith("@"):
            on_hub.add(a)
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for node in list(parent):
        accounts, hubs = groups.setdefault(find(node), ([], []))
        (hubs if node.startswith("@") else accounts).append(node.lstrip("@"))
    return groups, on_hub
