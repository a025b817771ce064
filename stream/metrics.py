"""Prometheus metrics of the worker: namespace ``distillguard``, no per-account labels."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from detectors.events import REASONS
from detectors.types import ACTIONS

__all__ = ["WorkerMetrics"]

_NS = "distillguard"


@dataclass
class WorkerMetrics:
    """The worker's metrics, registered on ``registry`` (tests pass a fresh ``CollectorRegistry()``).

    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> m = WorkerMetrics.create(registry)
    >>> m.dlq_records.labels(reason="not_json").inc()
    >>> registry.get_sample_value("distillguard_dlq_records_total", {"reason": "not_json"})
    1.0
    """

    events_consumed: Counter
    dlq_records: Counter
    decisions: Counter
    tracked_accounts: Gauge
    evicted_accounts: Counter
    feedback_verdicts: Counter
    decisions_lifted: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry = REGISTRY) -> WorkerMetrics:
        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, namespace=_NS, registry=registry)

        metrics = cls(
            events_consumed=counter("events_consumed", "Request events read from llm.requests, valid or not."),
            dlq_records=counter("dlq_records", "Events sent to llm.requests.dlq, by reason code.", "reason"),
            decisions=counter("decisions", "Throttle decisions published, by action.", "action"),
            tracked_accounts=Gauge(
                "tracked_accounts", "Accounts with state held by this process.", namespace=_NS, registry=registry
            ),
            evicted_accounts=counter("evicted_accounts", "Accounts forgotten after the idle horizon (event time)."),
            decisions_lifted=counter("decisions_lifted", "Decisions lifted by a tombstone when their TTL passed."),
            feedback_verdicts=counter(
                "feedback_verdicts", "Triage verdicts read from distillguard.feedback, by verdict.", "verdict"
            ),
        )
        # Export every bounded label value from the start, so that rate() and alerts see zeros.
        for reason in (*REASONS, "detector_error"):
            metrics.dlq_records.labels(reason=reason)
        for action in ACTIONS:
            metrics.decisions.labels(action=action)
        for verdict in ("confirmed", "false_positive", "invalid"):
            metrics.feedback_verdicts.labels(verdict=verdict)
        return metrics
