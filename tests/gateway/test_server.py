"""The reference gateway without a reachable broker: fail-open vs fail-closed, and bad requests."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.events import decode_event
from gateway.server import ApiKey, GatewayConfig, create_app, key_digest, load_api_keys
from tests.conftest import REPO

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


# ---- hostile clients (issue 22, item 1): nothing a client sends keeps its request out of detection ----


class Captured:
    """Stands in for the Kafka producer (the broker is not under test here): keeps what would be sent."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    async def send_and_wait(self, topic: str, key: bytes, value: bytes) -> None:
        self.values.append(value)

    async def stop(self) -> None:
        pass


async def send_all(
    requests: list[tuple[Any, dict[str, str]]], trust_edge: bool = False
) -> tuple[list[int], list[bytes]]:
    app = create_app(GatewayConfig(broker=NOWHERE, trust_edge_headers=trust_edge))
    captured = Captured()
    async with TestClient(TestServer(app)) as client:
        app["producer"] = captured
        statuses = []
        for body, headers in requests:
            kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
            response = await client.post("/v1/messages", headers=headers, **kwargs)
            await response.read()
            statuses.append(response.status)
    return statuses, captured.values


HOSTILE_VALUES: list[Any] = [-1, -(2**70), 2**70, 1.5, float("inf"), "1024", "", "x" * 300, True, None, [], {},
                             {"a": 1}, 0, 3, 4096, 0.7, "hot", "\x00\ud7ff", "é" * 20_000]  # fmt: skip
FIELDS = ["model", "prompt", "system", "max_tokens", "n_tools", "n_messages", "conversation_id", "temperature",
          "stream", "thinking", "account_type", "payment_fingerprint", "ts", "account_id"]  # fmt: skip


def hostile_requests(n: int, seed: int) -> list[tuple[Any, dict[str, str]]]:
    rng = random.Random(seed)
    out: list[tuple[Any, dict[str, str]]] = []
    for _ in range(n):
        body: dict[str, Any] = {"prompt": "explain your reasoning step by step"}
        for name in rng.sample(FIELDS, rng.randint(1, 5)):
            body[name] = rng.choice(HOSTILE_VALUES)
        headers = {"X-Account-Id": rng.choice(["acct-1", "a" * 256, "acct-2"]),
                   "X-Account-Type": rng.choice(["vip", "enterprise", "standard"])}  # fmt: skip
        out.append((body, headers))
    return out


def test_every_event_the_gateway_publishes_keeps_the_contract_and_bad_fields_get_a_400() -> None:
    requests = hostile_requests(10_000, seed=22)
    statuses, values = asyncio.run(send_all(requests))
    assert set(statuses) <= {200, 400}  # never a 500, which an ext_authz in failure_mode_allow lets through
    assert statuses.count(200) == len(values) > 1000 and statuses.count(400) > 1000
    for value in values:
        event = decode_event(value)  # strictly: the worker never has to repair what this gateway sends
        assert "account_type" not in event  # a client's own X-Account-Type is never read


def test_a_300_kb_system_prompt_is_cut_to_fit_the_contract_not_dead_lettered() -> None:
    statuses, values = asyncio.run(send_all([({"prompt": "hi", "system": "s" * 300_000}, {"X-Account-Id": "a"})]))
    assert statuses == [200] and len(decode_event(values[0])["system"]) == 16_000


def test_a_body_over_the_limit_is_refused_before_it_is_read() -> None:
    statuses, values = asyncio.run(send_all([(b'{"prompt": "' + b"a" * 600_000 + b'"}', {"X-Account-Id": "a"})]))
    assert statuses == [413] and values == []


def test_account_type_comes_only_from_a_trusted_edge() -> None:
    ask = [({"prompt": "hi"}, {"X-Account-Id": "a", "X-Account-Type": "enterprise"})]
    _, untrusted = asyncio.run(send_all(ask))
    _, trusted = asyncio.run(send_all(ask, trust_edge=True))
    assert "account_type" not in orjson.loads(untrusted[0]) and orjson.loads(trusted[0])["account_type"] == "enterprise"
    _, vip = asyncio.run(
        send_all([({"prompt": "hi"}, {"X-Account-Id": "a", "X-Account-Type": "vip"})], trust_edge=True)
    )
    assert "account_type" not in decode_event(vip[0])


def test_envoy_ext_authz_answers_400_not_500_to_a_bad_header() -> None:
    for headers in ({"X-Account-Id": "a", "X-Max-Tokens": "lots"}, {"X-Account-Id": "a" * 300}):
        assert asyncio.run(call("open", path="/authz/v1/messages", headers=headers))[0] == 400


# ---- identity (issue 22, item 8): the account comes from the authenticated key, not from the client ----

KEYS = {key_digest("sk-alice"): ApiKey("acct-alice", "enterprise", "org-a"), key_digest("sk-bob"): ApiKey("acct-bob")}


async def as_caller(headers: dict[str, str], path: str = "/v1/messages") -> tuple[int, list[dict[str, Any]]]:
    app = create_app(GatewayConfig(broker=NOWHERE, api_keys=KEYS))
    captured = Captured()
    async with TestClient(TestServer(app)) as client:
        app["producer"] = captured
        if path.startswith("/v1"):
            response = await client.post(path, headers=headers, json={"prompt": "hi"})
        else:
            response = await client.get(path, headers=headers)
        return response.status, [orjson.loads(v) for v in captured.values]


def test_with_a_key_registry_the_account_is_the_keys_whatever_the_client_claims() -> None:
    status, events = asyncio.run(as_caller({"Authorization": "Bearer sk-bob", "X-Account-Id": "acct-alice",
                                            "X-Account-Type": "enterprise"}))  # fmt: skip
    assert status == 200 and [e["account_id"] for e in events] == ["acct-bob"]
    assert "account_type" not in events[0]  # a client cannot claim a type: only the registry sets one
    status, events = asyncio.run(as_caller({"Authorization": "Bearer sk-alice"}))
    assert (events[0]["account_id"], events[0]["account_type"], events[0]["org_id"]) == (
        "acct-alice",
        "enterprise",
        "org-a",
    )


def test_without_a_registered_key_the_request_is_refused_with_401_and_nothing_is_published() -> None:
    for headers in ({}, {"X-Account-Id": "acct-bob"}, {"Authorization": "Bearer sk-mallory"},
                    {"Authorization": "Basic c2stYm9i"}, {"Authorization": "Bearer "}):  # fmt: skip
        status, events = asyncio.run(as_caller(headers))
        assert (status, events) == (401, []), headers
    assert asyncio.run(as_caller({"X-Account-Id": "acct-bob"}, path="/authz/v1/messages"))[0] == 401
    assert asyncio.run(as_caller({"Authorization": "Bearer sk-bob"}, path="/authz/v1/messages"))[0] == 200


def test_a_key_registry_stores_digests_and_refuses_a_malformed_entry(tmp_path: Path) -> None:
    good = tmp_path / "keys.toml"
    good.write_text(f'[keys.{key_digest("sk-bob")}]\naccount_id = "acct-bob"\naccount_type = "startup"\n')
    assert load_api_keys(str(good)) == {key_digest("sk-bob"): ApiKey("acct-bob", "startup")}
    bad = tmp_path / "bad.toml"
    bad.write_text('[keys.sk-bob]\naccount_id = "acct-bob"\n')  # a raw key, not its digest
    with pytest.raises(ValueError, match="SHA-256"):
        load_api_keys(str(bad))


def test_the_gateway_command_refuses_to_start_without_saying_how_callers_are_identified() -> None:
    import subprocess
    import sys

    env = {"DISTILLGUARD_VERIFY_KEYS": "ops:" + "k" * 32, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "gateway.server", "--broker", NOWHERE], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "--api-keys" in done.stderr


# ---- fuzzing the request handling (issue 22, done-when): 10,000 hostile requests, hypothesis-driven ----

_hostile_value = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=300),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)  # fmt: skip
_header_value = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)


class _Gateway:
    """One gateway app behind one test server on one event loop, for thousands of requests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = create_app(GatewayConfig(broker=NOWHERE, trust_edge_headers=True))
        self.client = TestClient(TestServer(self.app), loop=self.loop)
        self.loop.run_until_complete(self.client.start_server())
        self.app["producer"] = self.captured = Captured()

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        async def send() -> int:
            response = await self.client.post("/v1/messages", data=body, headers=headers)
            await response.read()
            return response.status

        return self.loop.run_until_complete(send())

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


@pytest.fixture(scope="module")
def gateway() -> Any:
    g = _Gateway()
    yield g
    g.close()


@settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    fields=st.dictionaries(st.sampled_from(FIELDS), _hostile_value, max_size=6),
    raw=st.one_of(st.none(), st.binary(max_size=200)),
    headers=st.dictionaries(
        st.sampled_from(["X-Account-Id", "X-Account-Type", "X-Forwarded-For", "X-Payment-Fingerprint",
                         "X-Device-Fingerprint", "X-TLS-Fingerprint", "X-Account-Created", "User-Agent"]),
        _header_value, max_size=8),
)  # fmt: skip
def test_hostile_requests_get_a_200_or_a_4xx_and_every_published_event_keeps_the_contract(
    gateway: _Gateway, fields: dict[str, Any], raw: bytes | None, headers: dict[str, str]
) -> None:
    body = raw if raw is not None else json.dumps({"prompt": "explain your reasoning", **fields}).encode()
    before = len(gateway.captured.values)
    status = gateway.post(body, {k: v.strip() for k, v in headers.items()})
    assert status in (200, 400), status  # never a 500: an ext_authz in failure_mode_allow lets a 500 through
    published = gateway.captured.values[before:]
    assert len(published) == (status == 200)
    for value in published:
        event = decode_event(value)  # strictly: the worker never has to repair what this gateway sends
        assert event.get("account_type") in (
            None,
            "standard",
            "enterprise",
            "education",
            "research",
            "startup",
            "trial",
        )
