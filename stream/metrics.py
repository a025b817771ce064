"""Prometheus metrics of the worker: namespace ``distillguard``, no per-account labels."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from detectors.events import REASONS
from detectors.types import ACTIONS

__all__ = ["WorkerMetrics"]


@dataclass
class WorkerMetrics:
    """The worker's metrics, registered on ``registry`` (tests pass a fresh ``CollectorRegistry()``)."""

    events_consumed: Counter
    dlq_records: Counter
    decisions: Counter
    tracked_accounts: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry = REGISTRY) -> WorkerMetrics:
        metrics = cls(
            events_consumed=Counter(
                "events_consumed",
                "Request events read from llm.requests, valid or not.",
                namespace="distillguard",
                registry=registry,
            ),
            dlq_records=Counter(
                "dlq_records",
                "Events sent to llm.requests.dlq, by reason code.",
                ["reason"],
                namespace="distillguard",
                registry=registry,
            ),
            decisions=Counter(
                "decisions",
                "Throttle decisions published, by action.",
                ["action"],
                namespace="distillguard",
                registry=registry,
            ),
            tracked_accounts=Gauge(
                "tracked_accounts",
                "Accounts with state held by this process.",
                namespace="distillguard",
                registry=registry,
            ),
        )
        for reason in (*REASONS, "detector_error"):  # export zeros so rate() works from the start
            metrics.dlq_records.labels(reason=reason)
        for action in ACTIONS:
            metrics.decisions.labels(action=action)
        return metrics
