"""The worker's metrics follow Prometheus conventions, as promtool checks them."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest

from detectors.config import load_scoring
from gateway.server import GatewayConfig, create_app
from stream.metrics import WorkerMetrics
from tests.promtool import check_metrics

POLICY = load_scoring().policy


def test_worker_metrics_pass_promtool_check_metrics() -> None:
    registry = CollectorRegistry()
    m = WorkerMetrics.create(POLICY, registry)
    m.events_consumed.inc(10)
    m.decisions.labels(action="block", reason="COT_AT_SCALE").inc()
    m.scores.labels(detector="fused").observe(0.93)
    m.decision_latency_seconds.observe(0.4)
    m.consumer_lag.labels(partition="0").set(12)
    assert check_metrics(generate_latest(registry)) == ""


def test_score_histogram_edges_are_the_decision_thresholds() -> None:
    registry = CollectorRegistry()
    m = WorkerMetrics.create(POLICY, registry)
    m.scores.labels(detector="fused").observe((POLICY.limit + POLICY.block) / 2)
    below_block = registry.get_sample_value("distillguard_score_bucket", {"detector": "fused", "le": str(POLICY.block)})
    below_limit = registry.get_sample_value("distillguard_score_bucket", {"detector": "fused", "le": str(POLICY.limit)})
    assert (below_limit, below_block) == (0.0, 1.0)


def test_no_metric_carries_an_account_label() -> None:
    registry = CollectorRegistry()
    WorkerMetrics.create(POLICY, registry)
    labels = {name for family in registry.collect() for sample in family.samples for name in sample.labels}
    assert labels <= {
        "reason",
        "action",
        "detector",
        "le",
        "partition",
        "model",
        "verdict",
        "outcome",
        "field",
        "topic",
    }


def test_gateway_metrics_pass_promtool_check_metrics() -> None:
    async def scrape() -> bytes:
        async with TestClient(TestServer(create_app(GatewayConfig(broker="127.0.0.1:1")))) as client:
            response = await client.get("/metrics")
            return await response.read()

    assert check_metrics(asyncio.run(scrape())) == ""
