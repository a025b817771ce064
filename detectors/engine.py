"""The detector pipeline: decoded event → features → account state → score → decision.

The Faust worker and offline replay both drive :class:`Engine`; only where packed state lives
differs (a Faust table or a dict). Per event the engine only folds features into the account's
state; it scores an account at most once per tick of event time (BRIEF §4).
"""

from __future__ import annotations

import math
import pickle
from collections import OrderedDict
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from detectors.account_state import AccountState, Counters, to_evict
from detectors.anomaly import CohortAnomaly
from detectors.cluster_stage import ClusterStage, ClusterVerdict, Partials
from detectors.clusters import ClusterConfig, cluster_targets, load_clusters, member_fields
from detectors.config import ScoringConfig, load_scoring
from detectors.drift import page_hinkley_update
from detectors.features import PhraseBook, extract, load_phrasebook, masked_sample
from detectors.fusion import Explanation, LinearFusion, fuse
from detectors.policy import decide, in_force, needs_decision, reason_codes, tick_level
from detectors.scoring import VECTOR_FEATURES, PopulationNorms, vector_params, window_vector
from detectors.state_cache import CACHE_SIZE, StateCache
from detectors.supervised import SupervisedModel
from detectors.types import Decision, RequestEvent, StateStore

_RIVER_VERSION = version("river")  # checkpoints load only under the version that wrote them

__all__ = ["Engine", "MemoryStore", "ModelRegistry"]

_MAX_MODELS = 1024  # distinct model names remembered; a flood of junk names cannot grow memory
_LAUNCH_GRACE = 3600.0  # models seen in the first hour of a stream are not "new": they were already there
_TOP_EXPLANATIONS = 5


def window_summary(state: AccountState, now: float, cfg: ScoringConfig) -> dict[str, float]:
    """Raw (unscaled) figures of an account's window for the people who triage its alert."""
    hour = state.window(now, cfg.window)
    return {
        "requests_last_hour": hour.requests,
        "output_tokens_last_hour": hour.tokens,
        "cot_rate": round(state.share(Counters.COT), 3),
        "top_template_share": round(state.template_top_share(), 3),
        "distinct_templates": round(state.distinct_templates(), 1),
        "distinct_ips": round(state.distinct_ips(), 1),
        "active_hours_24h": state.active_hours(now),
        "gap_cv": round(state.gap_cv(), 3),
    }


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1.0 - p))


class MemoryStore:
    """A dict of packed states, for replay and tests.

    >>> from detectors.account_state import _packed
    >>> store = MemoryStore()
    >>> store.put("a", _packed(last_ts=10.0, requests=3)); store.put("b", _packed(last_ts=20.0, requests=3))
    >>> store.evict(before=15.0, keep=100)
    ['a']
    >>> store.get("a") is None, len(store)
    (True, 1)
    """

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self._data.get(key)

    def put(self, key: str, value: bytes) -> None:
        self._data[key] = value

    def evict(self, before: float, keep: int) -> list[str]:
        """Forget states idle since ``before`` and, beyond ``keep``, those with least evidence."""
        evicted = to_evict(self._data.items(), before, keep)
        for key in evicted:
            del self._data[key]
        return evicted

    def __len__(self) -> int:
        return len(self._data)

    def nbytes(self) -> int:
        """Bytes of packed state held (values only)."""
        return sum(map(len, self._data.values()))


class ModelRegistry:
    """When each model name was first seen (event time), to tell traffic on a newly released model.

    >>> r = ModelRegistry(new_for_seconds=86400)
    >>> r.is_new("m-old", 0.0), r.is_new("m-new", 7200.0), r.is_new("m-new", 7200.0 + 90000)
    (False, True, False)
    """

    def __init__(self, new_for_seconds: float) -> None:
        self.new_for_seconds = new_for_seconds
        self.first_seen: OrderedDict[str, float] = OrderedDict()  # least recently seen first
        self.stream_start: float | None = None

    def is_new(self, model: str, ts: float) -> bool:
        """Whether ``model`` appeared recently. Names are remembered least-recently-seen first and the
        registry is bounded: a flood of client-chosen junk names pushes out junk, not the models in use,
        and a model released after a flood is still seen as new (it used to be refused for good)."""
        if self.stream_start is None:
            self.stream_start = ts
        first_seen = self.first_seen
        first = first_seen.get(model)
        if first is None:
            first = first_seen[model] = ts
            if len(first_seen) > _MAX_MODELS:
                first_seen.popitem(last=False)
        else:
            first_seen.move_to_end(model)
        return first - self.stream_start > _LAUNCH_GRACE and ts - first < self.new_for_seconds


class Engine:
    """Runs the per-account detector over events in event-time order; returns decisions to publish.

    Parameters
    ----------
    store
        Where packed account states live between flushes (:class:`MemoryStore` in replay, a Faust
        table in the worker). States being worked on are writable copies in ``cache`` until :meth:`flush`.
    cfg, book
        The detector's numbers (``rules/scoring.toml`` and the fitted ``rules/fusion.toml``) and phrase families
        (``rules/phrases.toml``).
    cache_size
        How many accounts keep a writable copy between flushes (least recently used beyond that go back
        to the store).
    local_clusters
        Run the cluster stage in this process (replay, tests). The worker sets it off: it sends
        :meth:`drain_partials` to the link shards over Kafka, its ``cluster_stage`` merges what the
        shards send on, and it applies the verdicts that come back with :meth:`apply_verdict`. In
        process, partials are handed over when the stage is due to tick (it reads them only then), not
        after every batch as the worker sends them, and a member's summary is read from its state only if
        the tick finds it in a cluster.
    stage_shards
        In process, link the cluster stage's targets in this many shards and merge their links, as the
        worker's sharded stage does (the same clusters as one linker; replay and tests check that).
    """

    def __init__(
        self,
        store: StateStore,
        cfg: ScoringConfig | None = None,
        book: PhraseBook | None = None,
        *,
        clusters: ClusterConfig | None = None,
        cache_size: int = CACHE_SIZE,
        local_clusters: bool = True,
        stage_shards: int = 1,
    ) -> None:
        self.cfg = cfg or load_scoring()
        self.book = book or load_phrasebook()
        self.states = StateCache(store, self.cfg.window, cache_size)  # hot accounts' states, in front of the store
        self.anomaly: dict[str, CohortAnomaly] = {}
        self.norms: dict[str, PopulationNorms] = {}
        self.supervised = SupervisedModel(self.cfg.supervised)
        self.models = ModelRegistry(self.cfg.window.new_model_seconds)
        self.clusters_cfg = clusters or load_clusters()
        self.partials = Partials()
        # Out of process (the worker), this one is the merging stage: link shards send it links, not targets.
        self.cluster_stage = ClusterStage(self.clusters_cfg, self.cfg.policy, self.cfg.anomaly, shards=stage_shards,
                                          merging=not local_clusters)  # fmt: skip
        self.cluster_stage.resolve = self._member_fields
        self.local_clusters = local_clusters
        self._seq = 0
        #: Events not folded because their account's state already held them (a replay after a crash).
        self.replayed = 0
        self._ticks = 0
        #: Called with {"fused", "anomaly", "supervised"} scores at every scoring tick (metrics hook).
        self.on_score: Callable[[dict[str, float]], object] | None = None
        #: Called at every scoring tick with (account, its state, cohort, now, window vector): what the
        #: fusion fit learns from (``sim/fusion_fit.py``).
        self.on_tick: Callable[[str, AccountState, str, float, tuple[float, ...]], object] | None = None
        #: Subjects exempt from automatic decisions ("account:<id>", "org:<id>"); state is still kept.
        #: subject -> until (event time; ``inf`` for permanent). A dismissed alert allowlists its
        #: subject until the decision would have expired, so the decision is not renewed.
        self.allowlist: dict[str, float] = {}
        self._challenge_logit = _logit(self.cfg.policy.challenge)
        self._vector_params = vector_params(self.cfg)
        self._fusion = LinearFusion.of(self.cfg.weights)

    def process(self, event: RequestEvent, partition: int = 0, offset: int | None = None) -> list[Decision]:
        """Fold one event in; score its account if a tick has passed since its last score.

        ``partition`` and ``offset`` say where the event came from: they sequence the cluster partials,
        and an event at or before the offset its account's state last folded from that partition is a
        replay (the worker crashed after writing the state, before committing the offsets) and is not
        folded again. Counts are exact across crashes: at-least-once delivery, idempotent folds.
        """
        cfg = self.cfg
        ts = float(event["ts"])
        account_id: str = event["account_id"]
        features = extract(event, self.book)
        created = event.get("account_created_ts")
        state = self.states.writable(account_id, float(created) if created else None, ts)
        # Replayed after a crash when the state already holds it (the offset is stored with the state, in one
        # changelog record): not counted twice. Its cluster partial goes again: the stage keeps the first of
        # each offset.
        replayed = offset is not None and state.source_partition == partition and offset <= state.source_offset
        if offset is None:
            offset = self._seq = self._seq + 1
        elif not replayed:
            state.source_partition, state.source_offset = partition, offset
        cohort = event.get("account_type") or "standard"
        self.partials.add(
            partition, offset, account_id, ts, cluster_targets(event, features, self.clusters_cfg), cohort
        )
        if replayed:
            self.replayed += 1
            return []
        requests = state.add(
            features, ts, cfg.window,
            output_tokens=event["output_tokens"],
            new_model=self.models.is_new(event["model"], ts),
            ip=event.get("ip"),
            user_agent=event.get("user_agent"),
        )  # fmt: skip
        if page_hinkley_update(state.data, features.cot, cfg.drift):
            state.drift_ts = ts
        decisions = []
        if requests >= cfg.window.min_requests_to_score and ts - state.last_scored >= cfg.window.tick_seconds:
            state.last_scored = ts
            if not (self.allowlist and self.is_allowlisted(account_id, event.get("org_id"), ts)):
                decision = self._score(account_id, state, cohort, ts, event)
                if decision is not None:
                    decisions.append(decision)
        if self.local_clusters and self.cluster_stage.due(ts):
            decisions += self._run_cluster_stage(ts)
        return decisions

    def _run_cluster_stage(self, now: float) -> list[Decision]:
        """In-process cluster stage: the same partials, merge, tick and verdicts as over Kafka; members'
        summaries are read from their state only if the tick needs them (``resolve``)."""
        stage = self.cluster_stage
        for message in self._local_partials(now):
            stage.merge(message)
        return [d for v in stage.tick(now) if (d := self.apply_verdict(v)) is not None]

    def _local_partials(self, now: float) -> list[dict[str, Any]]:
        """The partials the in-process stage merges: the touched accounts named, no summary read yet."""
        return self.partials.drain(None, now)

    def drain_partials(self, now: float) -> list[dict[str, Any]]:
        """The cluster partials gathered since the last drain, one per source partition (JSON-ready)."""
        return self.partials.drain(lambda account, account_type: self._member_fields(account, account_type, now), now)

    def _member_fields(self, account: str, account_type: str, now: float) -> list[Any] | None:
        """A member summary's fields at ``now``, or None when the account has no state (evicted)."""
        state = self.states.read(account)
        return None if state is None else member_fields(state, now, self.cfg.window, account_type)

    def apply_verdict(self, verdict: ClusterVerdict) -> Decision | None:
        """A cluster verdict on one of this engine's accounts → its decision (or none: the action in
        force is already as high, or the account is allowlisted)."""
        if self.allowlist and self.is_allowlisted(verdict.account, None, verdict.at):
            return None
        state = self.states.writable(verdict.account, None, verdict.at)
        return decide(state, subject_id=verdict.account, level=verdict.level, score=verdict.score, now=verdict.at,
                      trigger_event_id=f"{verdict.cluster_id}@{int(verdict.at)}", cfg=self.cfg.policy,
                      reasons=verdict.reasons, evidence=verdict.evidence, cluster_id=verdict.cluster_id)  # fmt: skip

    def is_allowlisted(self, account_id: str, org_id: str | None = None, now: float = 0.0) -> bool:
        """True when the account, or its organisation, is on the operators' allowlist at ``now``.

        >>> e = Engine(MemoryStore()); e.allowlist["org:acme"] = math.inf; e.allowlist["account:b"] = 100.0
        >>> e.is_allowlisted("a1", "acme"), e.is_allowlisted("a1", "other"), e.is_allowlisted("b", None, 99.0)
        (True, False, True)
        >>> e.is_allowlisted("b", None, 100.0)
        False
        """
        until = max(self.allowlist.get(f"account:{account_id}", 0.0), self.allowlist.get(f"org:{org_id}", 0.0))
        return until > now

    def _score(
        self, account_id: str, state: AccountState, cohort: str, now: float, trigger: RequestEvent
    ) -> Decision | None:
        values = window_vector(state, now, self._vector_params)
        x = dict(zip(VECTOR_FEATURES, values, strict=True))
        # The cohort's "typical" values (explanations) come from accounts under no decision: a cohort
        # that is mostly attackers must not make an attacker look typical (issue 24).
        benign_typical = in_force(state, now) == 0
        score, inputs = self._fused(x, values, cohort, learn=True, learn_norms=benign_typical)
        if self.on_score is not None:
            self.on_score({"fused": score, "anomaly": inputs.get("anomaly", 0.0), "supervised": inputs["p_supervised"]})
        requests = state.counters[Counters.REQUESTS]
        policy = self.cfg.policy
        window = self.cfg.window
        level = tick_level(state, score, requests, cohort, now, lambda s: state.recent_requests(now, s, window), policy)
        if self.on_tick is not None:
            self.on_tick(account_id, state, cohort, now, values)
        if not needs_decision(state, level, now, policy):
            return None  # nothing new to say: skip building the explanation
        _, parts = fuse(inputs, self.cfg.weights)
        norms = self.norms[cohort]
        weights = self.cfg.weights
        explanation = [  # value = part / weight: exact for product terms too, which are not in ``inputs``
            Explanation(name, part / weights[name], part, norms.typical(name)).as_dict()
            for name, part in sorted(parts.items(), key=lambda p: p[1], reverse=True)[:_TOP_EXPLANATIONS]
        ]
        return decide(
            state,
            subject_id=account_id,
            level=level,
            score=score,
            now=now,
            trigger_event_id=trigger["event_id"],
            cfg=self.cfg.policy,
            reasons=reason_codes(parts),
            evidence={
                "requests": round(requests, 1),
                "cohort": cohort,
                "explanation": explanation,
                "features": {k: round(v, 4) for k, v in x.items()},
                "window": window_summary(state, now, self.cfg),
                # The deciding request's template frame: content words masked. Never the prompt itself.
                "template_sample": masked_sample(trigger, self.book),
            },
        )

    def _fused(
        self, x: dict[str, float], values: tuple[float, ...], cohort: str, *, learn: bool, learn_norms: bool = True
    ) -> tuple[float, dict[str, float]]:
        """Fuse the window vector (``x``, its ``values`` in order) with the supervised and (when it could matter)
        anomaly inputs: the score, and the inputs that :func:`fuse` turns into each one's part."""
        model = self.anomaly.get(cohort)
        if model is None:
            model = self.anomaly[cohort] = CohortAnomaly(self.cfg.anomaly)
            self.norms[cohort] = PopulationNorms()
        if learn:
            if learn_norms:
                self.norms[cohort].update(x)
            self._ticks += 1
            if self._ticks % self.cfg.anomaly.learn_every == 0:
                model.learn_one(x)
        p_supervised = self.supervised.score_one(x)
        inputs = {**x, "supervised": (p_supervised - 0.5) * 2.0 * self.supervised.confidence}
        z = self._fusion.logit(values, inputs["supervised"])
        # The trees can add at most weights["anomaly"] to the logit: ask them only when that could
        # lift the account to "challenge" (HST is the most expensive step of a tick).
        w_anomaly = self.cfg.weights["anomaly"]
        if z + w_anomaly >= self._challenge_logit:
            inputs["anomaly"] = a = model.score_one(x)
            z += w_anomaly * a
        inputs["p_supervised"] = p_supervised  # for metrics; not a fusion input (no weight)
        return 1.0 / (1.0 + math.exp(-z)), inputs

    def learn_verdict(self, features: dict[str, float], confirmed: bool) -> bool:
        """A triage verdict on a decision whose evidence carried ``features``: teach the classifier
        (False: refused, its features are not window features in [0, 1])."""
        return self.supervised.learn_one(features, confirmed)

    def flush(self) -> int:
        """Pack every state changed since the last flush into the store; returns how many."""
        return self.states.flush()

    def evict(self, before: float) -> int:
        """Forget idle and, over the account cap, least-evidence accounts (:meth:`StateCache.evict`)."""
        return self.states.evict(before)

    def forget_cache(self) -> None:
        """Drop hot states (after a flush): partitions are moving to or from another worker."""
        self.states.forget()

    # -- model checkpoints ---------------------------------------------------------------------

    def checkpoint(self, *, models: bool = True, stage: bool = True) -> bytes:
        """The models and/or the cluster stage as bytes, stamped with River's version: a checkpoint only
        loads under the same one. The worker writes them apart (every worker has models; one runs the
        stage). The supervised model is not in it: every worker rebuilds it from the whole feedback log."""
        parts: dict[str, Any] = {}
        if models:
            parts |= {"anomaly": self.anomaly, "norms": self.norms, "first_seen": self.models.first_seen,
                      "stream_start": self.models.stream_start}  # fmt: skip
        if stage:
            parts["cluster_stage"] = self.cluster_stage.snapshot()
        return pickle.dumps({"river": _RIVER_VERSION, "models": parts})

    def restore(self, data: bytes) -> bool:
        """Load a checkpoint (what it holds of the models and the stage); ``False`` (and nothing loaded)
        when River's version differs. Only our own signed checkpoints reach this (it unpickles)."""
        loaded: dict[str, Any] = pickle.loads(data)  # noqa: S301 - signed checkpoints only (stream/checkpoints.py)
        if loaded.get("river") != _RIVER_VERSION:
            return False
        models = loaded["models"]
        if "anomaly" in models:  # supervised: rebuilt from the feedback log
            self.anomaly, self.norms = models["anomaly"], models["norms"]
            self.models.first_seen = OrderedDict(models["first_seen"])
            self.models.stream_start = models["stream_start"]
        if "cluster_stage" in models:
            self.cluster_stage.load(models["cluster_stage"])
        return True
