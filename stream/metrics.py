"""Prometheus metrics of the worker: namespace ``distillguard``, base units, no per-account labels.

Every label has a small, fixed set of values (reason codes, actions, detectors, partitions), exported
as zeros from the start so that ``rate()`` and the alert rules in ``deploy/prometheus`` see them.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from detectors.config import PolicyConfig
from detectors.events import OPTIONAL_FIELDS, REASONS
from detectors.pipeline import DETECTOR_ERROR
from detectors.policy import REASON_CODES
from detectors.types import ACTIONS

__all__ = ["DETECTORS", "WorkerMetrics", "scrape", "score_buckets"]

_NS = "distillguard"
#: Score sources with a histogram each: the fused score and the two learned inputs to it.
DETECTORS = ("fused", "anomaly", "supervised")
_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # seconds; p99 target 2 s
_PROCESSING_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.025)  # seconds per event


def score_buckets(policy: PolicyConfig) -> tuple[float, ...]:
    """Histogram edges that include the decision thresholds, so dashboards read "share above limit".

    >>> from detectors.config import load_scoring
    >>> policy = load_scoring().policy.with_thresholds({"challenge": 0.5, "limit": 0.75, "block": 0.92})
    >>> score_buckets(policy)
    (0.1, 0.25, 0.5, 0.75, 0.92, 1.0)
    """
    return tuple(sorted({0.1, 0.25, policy.challenge, policy.limit, policy.block, 1.0}))


@dataclass
class WorkerMetrics:
    """The worker's metrics, registered on ``registry`` (tests pass a fresh ``CollectorRegistry()``).

    >>> from prometheus_client import CollectorRegistry
    >>> from detectors.config import load_scoring
    >>> registry = CollectorRegistry()
    >>> m = WorkerMetrics.create(load_scoring().policy, registry)
    >>> m.dlq_records.labels(reason="not_json").inc()
    >>> registry.get_sample_value("distillguard_dlq_records_total", {"reason": "not_json"})
    1.0
    """

    events_consumed: Counter
    events_replayed: Counter
    dlq_records: Counter
    dlq_send_failures: Counter
    fields_dropped: Counter
    future_events: Counter
    control_rejected: Counter
    decisions: Counter
    decisions_lifted: Counter
    active_throttles: Gauge
    scores: Histogram
    processing_seconds: Histogram
    decision_latency_seconds: Histogram
    consumer_lag: Gauge
    last_event_timestamp: Gauge
    tracked_accounts: Gauge
    state_bytes: Gauge
    evicted_accounts: Counter
    model_updated_timestamp: Gauge
    feedback_verdicts: Counter
    cluster_partials: Counter
    cluster_links: Counter
    checkpoints: Counter
    cluster_stage_members: Gauge
    worker_stalled: Gauge

    @classmethod
    def create(cls, policy: PolicyConfig, registry: CollectorRegistry = REGISTRY) -> WorkerMetrics:
        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, namespace=_NS, registry=registry)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(name, doc, labels, namespace=_NS, registry=registry)

        def histogram(name: str, doc: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
            return Histogram(name, doc, labels, namespace=_NS, registry=registry, buckets=buckets)

        m = cls(
            events_consumed=counter("events_consumed", "Request events read from llm.requests, valid or not."),
            events_replayed=counter(
                "events_replayed",
                "Events read again after a crash whose account state already held them: not counted twice.",
            ),
            dlq_records=counter("dlq_records", "Events sent to llm.requests.dlq, by reason code.", "reason"),
            dlq_send_failures=counter(
                "dlq_send_failures", "DLQ records the broker refused (the event is logged by source offset)."
            ),
            control_rejected=counter(
                "control_records_rejected",
                "Control records ignored: unsigned, signed by an untrusted key, or older than the one in force.",
                "topic",
            ),
            future_events=counter(
                "future_events", "Events stamped beyond the wall clock plus the allowed skew, scored at that limit."
            ),
            fields_dropped=counter(
                "event_fields_dropped",
                "Optional fields removed (or text cut) so that an event breaking the contract is still scored.",
                "field",
            ),
            decisions=counter(
                "decisions", "Throttle decisions published, by action and by each reason code.", "action", "reason"
            ),
            decisions_lifted=counter(
                "decisions_lifted", "Decisions lifted by a tombstone (TTL passed or allowlisted)."
            ),
            active_throttles=gauge(
                "active_throttles", "Decisions in force on this worker's partitions, by action.", "action"
            ),  # fmt: skip
            scores=histogram(
                "score",
                "Scores of accounts at each scoring tick, by detector; edges include the thresholds.",
                score_buckets(policy),
                "detector",
            ),  # fmt: skip
            processing_seconds=histogram(
                "event_processing_seconds",
                "Detector time per event (decode, features, state, scoring, policy).",
                _PROCESSING_BUCKETS,
            ),  # fmt: skip
            decision_latency_seconds=histogram(
                "decision_latency_seconds",
                "From the event time of the deciding event to the decision published.",
                _LATENCY_BUCKETS,
            ),  # fmt: skip
            consumer_lag=gauge(
                "consumer_lag_records", "llm.requests records not yet committed, by partition.", "partition"
            ),  # fmt: skip
            last_event_timestamp=gauge(
                "last_event_processed_timestamp_seconds", "Wall-clock time when this worker last processed an event."
            ),  # fmt: skip
            tracked_accounts=gauge("tracked_accounts", "Accounts with state held by this process."),
            state_bytes=gauge("state_bytes", "Bytes of packed account state held by this process."),
            evicted_accounts=counter("evicted_accounts", "Accounts forgotten after the idle horizon (event time)."),
            model_updated_timestamp=gauge(
                "model_updated_timestamp_seconds", "When each model last learned or was checkpointed.", "model"
            ),  # fmt: skip
            feedback_verdicts=counter(
                "feedback_verdicts", "Triage verdicts read from distillguard.feedback, by verdict.", "verdict"
            ),
            cluster_partials=counter(
                "cluster_partials",
                "Cluster partials read by this worker's link shards: merged, duplicate (replayed) or invalid.",
                "outcome",
            ),
            cluster_links=counter(
                "cluster_links",
                "Link shards' messages merged into this worker's copy of the link graph (every worker keeps one):"
                " merged, duplicate (replayed) or invalid.",
                "outcome",
            ),
            checkpoints=counter(
                "checkpoints",
                "Checkpoints (name: models or cluster-stage) written to or restored from the checkpoint topic.",
                "name",
                "outcome",
            ),
            cluster_stage_members=gauge(
                "cluster_stage_members", "Accounts the cluster stage in this worker knows (0: it runs elsewhere)."
            ),
            worker_stalled=gauge("worker_stalled", "1 while the worker's own health check (/healthz) reports a stall."),
        )
        for reason in (*REASONS, DETECTOR_ERROR):
            m.dlq_records.labels(reason=reason)
        for name in OPTIONAL_FIELDS:
            m.fields_dropped.labels(field=name)
        for topic in ("allowlist", "feedback", "cluster-partials", "cluster-links", "cluster-verdicts"):
            m.control_rejected.labels(topic=topic)
        for action in ACTIONS[1:]:
            m.active_throttles.labels(action=action)
            for code in REASON_CODES.values():
                m.decisions.labels(action=action, reason=code)
        for detector in DETECTORS:
            m.scores.labels(detector=detector)
        for model in ("anomaly", "supervised", "checkpoint"):
            m.model_updated_timestamp.labels(model=model)
        for verdict in ("confirmed", "false_positive", "invalid"):
            m.feedback_verdicts.labels(verdict=verdict)
        for outcome in ("merged", "duplicate", "invalid"):
            m.cluster_partials.labels(outcome=outcome)
            m.cluster_links.labels(outcome=outcome)
        return m


def scrape(port: int, name: str, **labels: str) -> float:
    """The sum of a worker's samples called ``name`` with these labels, read from its ``/metrics`` on
    127.0.0.1 (benchmarks and end-to-end tests ask a running worker this way)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))  # fmt: skip
