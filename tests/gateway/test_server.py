"""The reference gateway without a reachable broker: fail-open vs fail-closed, and bad requests."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from gateway.server import GatewayConfig, create_app

NOWHERE = "127.0.0.1:1"  # nothing listens here: the decision stream is unavailable


async def call(fail_mode: str, path: str = "/v1/messages", **kwargs: Any) -> tuple[int, dict[str, Any] | str]:
    app = create_app(GatewayConfig(broker=NOWHERE, fail_mode=fail_mode))
    async with TestClient(TestServer(app)) as client:
        method = client.post if path.startswith("/v1") else client.get
        response = await method(path, **kwargs)
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, body


def test_fail_closed_refuses_while_decisions_are_unavailable() -> None:
    status, body = asyncio.run(call("closed", json={"prompt": "hi"}, headers={"X-Account-Id": "a"}))
    assert status == 503 and body == {"error": "decision stream unavailable"}


def test_fail_open_serves_while_decisions_are_unavailable() -> None:
    status, body = asyncio.run(call("open", json={"prompt": "hi"}, headers={"X-Account-Id": "a"}))
    assert status == 200 and isinstance(body, dict) and body["output_tokens"] > 0


def test_requests_without_an_account_are_rejected() -> None:
    status, _ = asyncio.run(call("open", json={"prompt": "hi"}))
    assert status == 400
    status, _ = asyncio.run(call("open", data=b"not json", headers={"X-Account-Id": "a"}))
    assert status == 400


def test_envoy_ext_authz_endpoint_follows_the_fail_mode() -> None:
    assert asyncio.run(call("closed", path="/authz/v1/messages", headers={"X-Account-Id": "a"}))[0] == 503
    assert asyncio.run(call("open", path="/authz/v1/messages", headers={"X-Account-Id": "a"}))[0] == 200


def test_gateway_exports_prometheus_metrics() -> None:
    status, text = asyncio.run(call("open", path="/metrics"))
    assert status == 200 and "distillguard_gateway_rejected_signatures" in str(text)
