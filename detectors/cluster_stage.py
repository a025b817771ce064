"""The second stage of cluster detection: partial aggregates from every account partition, merged in one
place that sees all accounts, linked, scored, and turned into per-account cluster verdicts.

The flow (the worker runs it over Kafka, replay in one process, with this same code)::

    account stage (per partition)                cluster stage (sees every account)
    events → AccountState ─┐
                           └→ Partials ─(≤1/s, source partition + sequence)→ ClusterStage.merge
                                                                               │  Linker, member summaries
    AccountState ← Engine.apply_verdict ←(keyed by account)── ClusterVerdict ←─┘  tick(): score clusters

A partial carries, for one source partition, the link targets each account touched since the last send
and a small summary of each touched account's window — never prompt text. Its ``seq`` is the highest
source offset it covers, so after a rebalance or a restart, partials rebuilt from replayed events are
recognised as already merged and dropped. Verdicts go back to the partition that owns the account's
state, so one writer decides for each account (no step down between an account and a cluster decision).
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import orjson

from detectors.anomaly import CohortAnomaly
from detectors.clusters import (
    CLUSTER_REASON_CODES,
    ClusterConfig,
    Linker,
    LinkMerge,
    MemberSummary,
    ShardedLinker,
    cluster_vector,
    lru_slot,
    score_cluster,
    split_obs,
    target_shard,
)
from detectors.config import AnomalyConfig, PolicyConfig
from detectors.policy import (
    REASON_CODES,
    escalated,
    in_force,
    inherited,
    level_for_score,
    needs_decision,
    reason_codes,
)

__all__ = ["MAX_PARTIAL_BYTES", "ClusterStage", "ClusterVerdict", "LinkShard", "Partials",
           "encoded_parts", "masked_hub", "partial_key", "split_partial"]  # fmt: skip

#: Largest partial record sent: well under every producer's max request size (~1 MB), so a burst of
#: events never makes a partial the broker refuses; a bigger one goes as numbered parts.
MAX_PARTIAL_BYTES = 256 * 1024


def encoded_parts(message: dict[str, Any], max_bytes: int = MAX_PARTIAL_BYTES) -> list[bytes]:
    """A drained partial (or a link shard's message) as JSON records of at most ``max_bytes``: split in
    halves (observations or links, and members) until each fits, numbered ``part`` 0, 1, … so the next
    stage can drop replayed parts too.

    >>> msg = {"partition": 1, "seq": 9, "at": 5.0, "obs": [["a", 1.0, [["ip24:x", False]]]] * 40, "members": {}}
    >>> parts = encoded_parts(msg, max_bytes=400)
    >>> len(parts), [orjson.loads(p)["part"] for p in parts][:3], sum(len(orjson.loads(p)["obs"]) for p in parts)
    (4, [0, 1, 2], 40)
    """
    listed = "links" if "links" in message else "obs"
    pieces = [message]
    out: list[bytes] = []
    while pieces:
        piece = pieces.pop(0)
        encoded = orjson.dumps({**piece, "part": len(out)})
        items, members = piece[listed], list(piece["members"].items())
        if len(encoded) <= max_bytes or len(items) + len(members) <= 1:
            out.append(encoded)
            continue
        half, half_members = len(items) // 2, len(members) // 2
        pieces[:0] = [{**piece, listed: items[:half], "members": dict(members[:half_members])},
                      {**piece, listed: items[half:], "members": dict(members[half_members:])}]  # fmt: skip
    return out


class Partials:
    """Account side: link targets and touched accounts per source partition, until the next send.

    >>> p = Partials()
    >>> p.add(3, 41, "a", 10.0, [("payment_fingerprint:pf", True)], "standard")
    >>> p.add(3, 42, "b", 11.0, [("payment_fingerprint:pf", True)], "startup")
    >>> [(m["partition"], m["seq"], len(m["obs"]), sorted(m["members"])) for m in p.drain(lambda a, t: None)]
    [(3, 42, 2, [])]
    >>> p.drain(lambda a, t: None)
    []
    """

    def __init__(self) -> None:
        self._obs: dict[int, list[list[Any]]] = {}
        self._seq: dict[int, int] = {}
        self._touched: dict[int, dict[str, str]] = {}  # partition -> account -> account type

    def add(self, partition: int, seq: int, account: str, ts: float, targets: list[tuple[str, bool]],
            account_type: str) -> None:  # fmt: skip
        touched = self._touched.get(partition)
        if touched is None:
            touched = self._touched[partition] = {}
            self._obs[partition] = []
        touched[account] = account_type
        if targets:
            self._obs[partition].append([account, ts, targets])
        if seq > self._seq.get(partition, -1):
            self._seq[partition] = seq

    def drain(self, summary: Callable[[str, str], Sequence[Any] | None] | None,
              now: float = 0.0) -> list[dict[str, Any]]:  # fmt: skip
        """One message per source partition with everything since the last drain (JSON-ready: plain
        lists, no tuples of our own, when ``summary`` gives lists); empties the buffer. ``at`` is the event
        time of the drain. Without ``summary`` (a stage in the same process), the message names the
        touched accounts and their types instead, for the stage to read only those it finds in a cluster."""
        out = []
        for partition, touched in self._touched.items():
            message = {"partition": partition, "seq": self._seq[partition], "at": now, "obs": self._obs[partition]}
            if summary is None:
                message |= {"members": {}, "touched": touched}
            else:
                message["members"] = {a: s for a, t in touched.items() if (s := summary(a, t)) is not None}
            out.append(message)
        self._obs, self._touched = {}, {}
        return out


class _Unread(NamedTuple):
    """In process only, a member whose summary is not read yet: its account type and the drain time it is
    due at. The stage reads it from the account's state (``ClusterStage.resolve``) only when the member is
    in a cluster at a tick — few are. It reads what an eager summary would have: every later touch of the
    account is drained, as a newer one, before the next tick."""

    account_type: str
    at: float


_KNOWN_REASONS = frozenset(CLUSTER_REASON_CODES.values()) | frozenset(REASON_CODES.values())

#: How many fields a member summary in a partial may have (the last ones have defaults).
_SUMMARY_FIELDS = (len(MemberSummary._fields) - len(MemberSummary._field_defaults), len(MemberSummary._fields))


class ClusterVerdict(NamedTuple):
    """A cluster decision for one member, to be applied by the stage that owns the member's state."""

    account: str
    cluster_id: str
    level: int
    score: float
    reasons: tuple[str, ...]
    evidence: dict[str, Any]
    at: float

    def to_record(self) -> dict[str, Any]:
        return {**self._asdict(), "reasons": list(self.reasons)}

    @classmethod
    def from_record(cls, record: Any) -> ClusterVerdict:
        """A verdict read back from its topic, checked (``ValueError``): whoever can write the topic must
        not be able to turn a crafted record into a block for a millennium or an unknown reason code.

        >>> v = ClusterVerdict("a", "c1", 3, 0.97, ("CLUSTER_SIZE",), {}, 1_800_000_000.0)
        >>> ClusterVerdict.from_record(v.to_record()) == v
        True
        >>> ClusterVerdict.from_record({**v.to_record(), "level": 9})
        Traceback (most recent call last):
        ...
        ValueError: cluster verdict: level must be 1..3
        """
        if not isinstance(record, dict) or set(record) != set(cls._fields):
            raise ValueError(f"cluster verdict: fields must be {cls._fields}")
        checks = (
            ("account", isinstance(record["account"], str) and 0 < len(record["account"]) <= 256, "an id"),
            ("cluster_id", isinstance(record["cluster_id"], str) and len(record["cluster_id"]) <= 256, "an id"),
            ("level", type(record["level"]) is int and 1 <= record["level"] <= 3, "1..3"),
            ("score", type(record["score"]) in (int, float) and 0.0 <= record["score"] <= 1.0, "in [0, 1]"),
            ("reasons", isinstance(record["reasons"], list) and len(record["reasons"]) <= 16
             and set(record["reasons"]) <= _KNOWN_REASONS, "known reason codes"),
            ("evidence", isinstance(record["evidence"], dict), "an object"),
            ("at", type(record["at"]) in (int, float) and 0.0 < record["at"] < 1e11, "Unix seconds"),
        )  # fmt: skip
        for name, ok, wants in checks:
            if not ok:
                raise ValueError(f"cluster verdict: {name} must be {wants}")
        return cls(**{**record, "reasons": tuple(record["reasons"])})


class _Held:
    """The stage's own view of the action in force on a member, so that it sends only escalations and
    renewals (the account side checks again against the account's real state), and the extraction
    evidence its cluster gathered since the rung was set (escalation on persistence)."""

    __slots__ = ("action_level", "action_expires", "rung_since", "evidence", "seen")

    def __init__(self) -> None:
        self.action_level = 0
        self.action_expires = 0.0
        self.rung_since = 0.0
        self.evidence = 0.0  # the cluster's CoT-eliciting requests since the rung was set (estimated)
        self.seen = 0.0  # the tick that last added to it

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        """Checkpoints from before escalation hold only the action: the rest starts at zero."""
        self.__init__()  # type: ignore[misc]
        for name, value in state[1].items():
            setattr(self, name, value)

    def gather(self, now: float, per_hour: float) -> None:
        """Add the evidence of the time since the last tick at the cluster's current rate."""
        if self.seen and now > self.seen:
            self.evidence += per_hour * (now - self.seen) / 3600.0
        self.seen = now


def _fresh(seen: dict[int, tuple[int, int]], source: int, seq: tuple[int, int]) -> bool:
    """Whether ``seq`` is past the highest merged from ``source`` (and now it is the highest)."""
    if seq <= seen.get(source, (-1, 0)):
        return False
    seen[source] = seq
    return True


def _checked(account: str, summary: Any) -> Any:
    """A member summary as a partial carries it, refused (``ValueError``) if it has the wrong shape."""
    if not isinstance(summary, list) or not _SUMMARY_FIELDS[0] <= len(summary) <= _SUMMARY_FIELDS[1]:
        raise ValueError(f"member summary of {account!r} has {len(summary)} fields")
    return summary


def split_partial(message: dict[str, Any], shards: int) -> list[tuple[int, dict[str, Any]]]:
    """A drained partial as the ``(shard, message)`` pieces the link shards take: each shard the
    observations of the targets it owns and the summaries of the members it forwards (by account); a
    shard with neither gets nothing. Every piece keeps the source partition and sequence.

    >>> msg = {"partition": 1, "seq": 9, "at": 5.0, "obs": [["a", 1.0, [["ip24:x", False]]]], "members": {"a": [0]}}
    >>> split_partial(msg, 1) == [(0, msg)]
    True
    >>> sum(len(piece["obs"]) + len(piece["members"]) for _, piece in split_partial(msg, 8))
    2
    """
    obs = split_obs(message["obs"], shards)
    members: list[dict[str, Any]] = [{} for _ in range(max(1, shards))]
    for account, summary in message["members"].items():
        members[target_shard(account, shards)][account] = summary
    return [(shard, {**message, "obs": obs[shard], "members": members[shard]})
            for shard in range(max(1, shards)) if obs[shard] or members[shard]]  # fmt: skip


class LinkShard:
    """One shard of the worker's cluster stage: partials' observations of the targets it owns in (one
    partition of ``cluster-partials``), the links they formed and its members' summaries out to the
    merging :class:`ClusterStage` (on ``cluster-links``). Linking is the per-event work, so it is the
    part that scales out; the merge sees links, which change far less often than targets are hit.

    >>> from detectors.clusters import load_clusters
    >>> shard = LinkShard(load_clusters(), 0)
    >>> obs = [[f"a{i}", 1.0 + i, [["payment_fingerprint:pf", True]]] for i in range(3)]
    >>> piece = {"partition": 4, "seq": 7, "at": 3.0, "obs": obs, "members": {}}
    >>> shard.merge(piece), shard.merge(piece)
    (True, False)
    >>> out = shard.drain(seq=120)
    >>> out["shard"], out["seq"], out["at"], len(out["links"]), shard.drain(seq=121)["links"]
    (0, 120, 3.0, 3, [])
    """

    def __init__(self, cfg: ClusterConfig, shard: int) -> None:
        self.shard = shard
        self.linker = Linker(cfg)
        self.seen: dict[int, tuple[int, int]] = {}  # source partition -> highest (sequence, part) merged
        self.members: dict[str, Any] = {}  # summaries to forward with the next drain
        self.latest = 0.0

    def merge(self, message: dict[str, Any]) -> bool:
        """Fold one piece of a partial in; ``False`` (and nothing changed) when it was merged before."""
        if not _fresh(self.seen, int(message["partition"]), (int(message["seq"]), int(message.get("part", 0)))):
            return False
        for account, summary in message["members"].items():
            self.members[account] = _checked(account, summary)
        self.linker.observe_many(message["obs"])
        self.latest = max(self.latest, float(message.get("at") or 0.0))
        return True

    def drain(self, seq: int) -> dict[str, Any]:
        """The links formed and summaries received since the last drain, as the merging stage's message;
        ``seq`` orders this shard's messages (the worker uses the partial's offset, so a message rebuilt
        from partials replayed after a crash is recognised as merged)."""
        members, self.members = self.members, {}
        return {"shard": self.shard, "seq": seq, "at": self.latest, "links": self.linker.drain_links(),
                "members": members}  # fmt: skip


class ClusterStage:
    """Merges partials (dropping duplicates by source partition and sequence), links, scores clusters.

    >>> from detectors.clusters import load_clusters
    >>> from detectors.config import load_scoring
    >>> stage = ClusterStage(load_clusters(), load_scoring().policy, load_scoring().anomaly)
    >>> msg = {"partition": 0, "seq": 7, "obs": [["a", 1.0, [["payment_fingerprint:pf", True]]]], "members": {}}
    >>> stage.merge(msg), stage.merge(msg), stage.merge({**msg, "seq": 8})
    (True, False, True)
    """

    def __init__(self, cfg: ClusterConfig, policy: PolicyConfig, anomaly: AnomalyConfig, *, shards: int = 1,
                 merging: bool = False) -> None:  # fmt: skip
        self.cfg, self.policy = cfg, policy.with_thresholds(cfg.thresholds)  # the cluster score's own rungs
        # Observations folded here (one linker, or ``shards`` of them in process), or, ``merging``, the
        # link deltas of :class:`LinkShard` s elsewhere (the worker's sharded stage).
        self.linker: Linker | ShardedLinker | LinkMerge = (
            LinkMerge(cfg) if merging else ShardedLinker(cfg, shards) if shards > 1 else Linker(cfg)
        )
        # River HalfSpaceTrees over cluster vectors: how unusual a cluster is among clusters seen so far
        # (0 for the first two windows of cluster scorings, like the accounts' cohort models).
        self.anomaly = CohortAnomaly(anomaly)
        # account -> its latest summary as sent (a MemberSummary's fields; built into one at a tick only
        # for accounts in a cluster, which are few) or, in process, an _Unread until a tick reads it
        self.members: OrderedDict[str, Sequence[Any]] = OrderedDict()
        #: Reads an unread member's summary fields from its state (set by an in-process engine):
        #: its fields, or None where the account's state is gone (evicted: the member drops out).
        self.resolve: Callable[[str, str, float], list[Any] | None] | None = None
        self.held: OrderedDict[str, _Held] = OrderedDict()
        self.seen: dict[int, tuple[int, int]] = {}  # source partition -> highest (sequence, part) merged
        self.seen_shards: dict[int, tuple[int, int]] = {}  # link shard -> highest (sequence, part) merged
        self.duplicates = 0
        self.last_tick = 0.0
        self.latest = 0.0  # newest event time merged
        self.pending = False  # merged something since the last tick

    def merge(self, message: dict[str, Any]) -> bool:
        """Fold one partial in (or, on a merging stage, one link shard's message); ``False`` (and nothing
        changed) when it was merged before."""
        if "links" in message:  # from a link shard: deltas of links, sequenced per shard
            if not isinstance(self.linker, LinkMerge):
                raise ValueError("link deltas reach a merging stage only")
            shard, seq = int(message["shard"]), (int(message["seq"]), int(message.get("part", 0)))
            if not _fresh(self.seen_shards, shard, seq):
                self.duplicates += 1
                return False
        elif not _fresh(self.seen, int(message["partition"]), (int(message["seq"]), int(message.get("part", 0)))):
            self.duplicates += 1
            return False
        self.latest, self.pending = max(self.latest, float(message.get("at") or 0.0)), True
        members = self.members
        for account, summary in message["members"].items():
            members[account] = _checked(account, summary)  # refused here, not at a tick
            members.move_to_end(account)
        if touched := message.get("touched"):  # a partial from this process: summaries read at a tick
            if self.resolve is None:
                raise ValueError("touched accounts are read in process only; a partial carries summaries")
            at = float(message.get("at") or 0.0)
            for account, account_type in touched.items():
                members[account] = _Unread(account_type, at)
                members.move_to_end(account)
        while len(members) > self.cfg.max_targets:
            members.popitem(last=False)
        if isinstance(self.linker, LinkMerge):
            if message.get("obs"):
                raise ValueError("a merging stage takes link deltas, not observations")
            self.linker.add(message.get("links", ()))
        else:
            self.linker.observe_many(message["obs"])
        return True

    def snapshot(self) -> dict[str, Any]:
        """Everything learned so far, for the engine's checkpoint (configs are not part of it)."""
        for account, summary in list(self.members.items()):
            if type(summary) is _Unread:
                self._resolved(account, summary)
        return {"linker": self.linker, "members": self.members, "held": self.held, "seen": self.seen,
                "seen_shards": self.seen_shards, "last_tick": self.last_tick, "anomaly": self.anomaly}  # fmt: skip

    def load(self, snapshot: dict[str, Any]) -> None:
        self.linker, self.members, self.held = snapshot["linker"], snapshot["members"], snapshot["held"]
        seen, self.last_tick, self.anomaly = snapshot["seen"], snapshot["last_tick"], snapshot["anomaly"]
        # checkpoints before parts held a bare sequence per partition
        self.seen = {p: s if isinstance(s, tuple) else (s, 0) for p, s in seen.items()}
        self.seen_shards = snapshot.get("seen_shards", {})
        self.latest = self.last_tick

    def due(self, now: float) -> bool:
        return now - self.last_tick >= self.cfg.tick_seconds

    def tick(self, now: float) -> list[ClusterVerdict]:
        """Score every cluster of at least ``min_members``; a verdict per member whose action would rise
        or needs renewing. An account linked to a throttled cluster later gets one at the next tick."""
        self.last_tick, self.pending = now, False
        verdicts = []
        for cluster_id, (members, hubs, strong) in self.linker.clusters(now).items():
            summaries = {m: s for m in members if (s := self._member(m)) is not None}
            if len(summaries) < self.cfg.min_members:
                continue
            x = cluster_vector(list(summaries.values()), len(strong), now)
            # Only the unusual tail counts: a cluster as anomalous as the typical one adds nothing.
            scaled = {k: v for k, v in x.items() if k in self.cfg.weights}  # HST wants [0, 1] inputs
            a = self.anomaly.score_one(scaled)
            self.anomaly.learn_one(scaled)
            x["anomaly"] = max(0.0, (a - self.cfg.anomaly_floor) / (1.0 - self.cfg.anomaly_floor))
            score, parts = score_cluster(x, self.cfg.weights)
            evidence_requests = sum(s.requests for s in summaries.values())
            # Evidence shared through the cards only: soft-linked members' CoT never escalates card-linked ones.
            carded = (s for m, s in summaries.items() if m in strong)
            extraction_per_hour = extraction_rate(carded, self.cfg.member_min_cot_share)
            tops = Counter(s.top_template for s in summaries.values() if s.top_template is not None).most_common(1)
            cluster_top = tops[0][0] if tops else None
            evidence: dict[str, Any] | None = None  # built for the cluster's first verdict, if any
            reasons: tuple[str, ...] = ()
            # The highest rung in force on a member: accounts joined to the fleet by its cards inherit it.
            rung = max((in_force(h, now) for m in summaries if (h := self.held.get(m)) is not None), default=0)
            for member, summary in summaries.items():
                level = level_for_score(score, evidence_requests, summary.account_type, self.policy)
                # The fleet's persistence and rung reach only members joined to it by its cards: a member
                # linked by co-occurrence alone (a shared exit IP, a common template) is judged on the
                # cluster's score, never escalated on other members' evidence.
                # Only a member new to the stage inherits: members already judged keep their own rung, or the
                # fleet would hold itself at whatever rung one member once reached.
                if member in strong:
                    if (held := self.held.get(member)) is None:
                        level = inherited(level, rung, evidence_requests, summary.account_type, self.policy)
                    elif in_force(held, now):
                        held.gather(now, extraction_per_hour)
                        level = escalated(held, level, now, int(held.evidence), evidence_requests,
                                          summary.account_type, self.policy)  # fmt: skip
                if level > 1 and not self._resembles(summary, cluster_top):
                    level = 1  # its own traffic unlike its cluster's: challenge at most, however linked
                if level == 0 and member not in self.held:
                    continue  # nothing in force and nothing to say: no need to hold a slot
                held = self._held(member)
                if needs_decision(held, level, now, self.policy):
                    if level != in_force(held, now):  # a new rung: its persistence counts from now
                        held.rung_since, held.evidence, held.seen = now, 0.0, now
                    held.action_level, held.action_expires = level, now + self.policy.ttl_seconds
                    if evidence is None:
                        evidence = cluster_evidence(cluster_id, members, hubs, x, parts, evidence_requests)
                        reasons = reason_codes(parts, CLUSTER_REASON_CODES)
                    verdicts.append(ClusterVerdict(member, cluster_id, level, score, reasons, evidence, now))
        return verdicts

    def _resembles(self, member: MemberSummary, cluster_top: int | None) -> bool:
        """Whether a member's own traffic looks like its cluster's: same top template, or mostly CoT."""
        if member.top_template is not None and member.top_template == cluster_top:
            return True
        return member.requests > 0 and member.cot / member.requests >= self.cfg.member_min_cot_share

    def _member(self, account: str) -> MemberSummary | None:
        summary = self.members.get(account)
        if type(summary) is _Unread:
            summary = self._resolved(account, summary)
        return None if summary is None else MemberSummary(*summary)

    def _resolved(self, account: str, pending: _Unread) -> list[Any] | None:
        """A pending summary read, and kept in its place (least recently merged stays first)."""
        fields = None if self.resolve is None else self.resolve(account, pending.account_type, pending.at)
        if fields is None:
            del self.members[account]
        else:
            self.members[account] = fields
        return fields

    def _held(self, account: str) -> _Held:
        return lru_slot(self.held, account, _Held, self.cfg.max_targets)


def extraction_rate(members: Iterable[MemberSummary], min_cot_share: float) -> float:
    """CoT-eliciting requests per hour from the members whose own traffic is mostly that (a share of at
    least ``min_cot_share``, the same bar as guilt by association). A cluster held at a rung while this
    adds up climbs (``policy.escalated``), however slowly each member sends; the stray CoT-like requests
    of a big benign cluster (a labelling vendor's justifications) add nothing.

    >>> m = MemberSummary(last_ts=0.0, requests_last_hour=10.0, requests=20.0, cot=12.0, new_model=0.0,
    ...                   top_template=None, account_type="standard")
    >>> extraction_rate([m, m._replace(cot=2.0)], 0.5)
    6.0
    """
    return sum(m.requests_last_hour * m.cot / m.requests for m in members
               if m.requests > 0 and m.cot / m.requests >= min_cot_share)  # fmt: skip


def cluster_evidence(cluster_id: str, members: list[str], hubs: list[str], x: dict[str, float],
                     parts: dict[str, float], requests: float) -> dict[str, Any]:  # fmt: skip
    """What a cluster verdict carries for the people who triage it: the cluster, its features and the
    five largest parts of its score."""
    ranked = sorted(parts.items(), key=lambda p: p[1], reverse=True)
    return {
        "cluster": {
            "id": cluster_id,
            "members": len(members),
            "member_sample": members[:20],
            "shared_infrastructure": [masked_hub(h) for h in hubs[:5]],
        },  # fmt: skip
        "features": {k: round(v, 4) for k, v in x.items()},
        "explanation": [{"feature": n, "value": round(x[n], 3), "contribution": round(p, 3)} for n, p in ranked[:5]],
        "requests": round(requests, 1),
    }


def masked_hub(hub: str) -> str:
    """A shared target as records that leave the detector show it: its kind and a hash of its value, so
    analysts can match it across alerts without the fingerprint itself travelling to gateways and pages.

    >>> masked_hub("payment_fingerprint:card-4242")
    'payment_fingerprint:#bb5636c12f74'
    """
    kind, _, value = hub.partition(":")
    return f"{kind}:#{hashlib.sha256(value.encode('utf-8', 'replace')).hexdigest()[:12]}"


def partial_key(partition: int) -> bytes:
    """Message key of a source partition's partials, so that one partition's partials stay in order."""
    return f"p{partition}".encode()
