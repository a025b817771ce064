"""A reference LLM API gateway: fronts a stub model, publishes request events, enforces decisions.

    python -m gateway.server --broker 127.0.0.1:9092 --port 8080 [--fail-mode open|closed]

``POST /v1/messages`` with ``Authorization: Bearer <key>`` (``--api-keys``: the account is the key's, from
the operator's registry) or, behind an authenticating edge, its ``X-Account-Id``, and a JSON body
``{"model", "prompt", "system", "max_tokens", "n_tools", "n_messages", "conversation_id", "temperature",
"stream", "thinking"}``, each field
checked (a bad one is a 400, never an event that breaks the contract); account attributes (type, age,
fingerprints, client IP) come only from a trusted edge's headers (``--trust-edge-headers``):

- block → 429 with ``Retry-After`` (seconds until the decision expires);
- limit → a token bucket per account (requests/min and tokens/min from the decision) → 429 when empty;
- challenge → 403 ``{"error": "verification_required"}``;
- a decision in ``shadow`` mode is logged and not enforced;
- when the decision stream is unavailable (not yet caught up, or disconnected), ``--fail-mode open``
  (default) serves the request and ``closed`` answers 503.

Every request, served or refused (with its status), is published to ``llm.requests`` in the documented
contract (prompt text included, as the detector reads it in memory; the gateway itself never logs it).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import time
import tomllib
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from gateway.client import ThrottleTable, Verdict
from stream.connection import aiokafka_config
from stream.settings import DEV_SECRET
from stream.signing import parse_keys

__all__ = ["EDGE_HEADERS", "ApiKey", "GatewayConfig", "TokenBucket", "create_app", "key_digest", "load_api_keys",
           "stub_model"]  # fmt: skip

log = logging.getLogger("distillguard.gateway")


@dataclass
class TokenBucket:
    """Requests and tokens per minute for one limited account (refilled continuously).

    >>> b = TokenBucket(requests_per_minute=2, tokens_per_minute=1000, now=0.0)
    >>> b.take(100, now=0.0), b.take(100, now=0.0), b.take(100, now=0.0), b.take(100, now=30.0)
    (True, True, False, True)
    """

    requests_per_minute: int
    tokens_per_minute: int
    now: float
    requests: float = field(init=False)
    tokens: float = field(init=False)

    def __post_init__(self) -> None:
        self.requests, self.tokens = float(self.requests_per_minute), float(self.tokens_per_minute)

    def take(self, tokens: int, now: float) -> bool:
        elapsed, self.now = max(0.0, now - self.now), now
        self.requests = min(self.requests_per_minute, self.requests + elapsed * self.requests_per_minute / 60)
        self.tokens = min(self.tokens_per_minute, self.tokens + elapsed * self.tokens_per_minute / 60)
        if self.requests < 1 or self.tokens < tokens:
            return False
        self.requests -= 1
        self.tokens -= tokens
        return True


def stub_model(prompt: str, max_tokens: int) -> int:
    """Output tokens the stub upstream 'generates': deterministic in the prompt, at most ``max_tokens``."""
    return min(max_tokens, 200 + zlib.crc32(prompt.encode()) % 1800)


@dataclass(frozen=True)
class ApiKey:
    """Who an API key belongs to, as the operator registered it (never what the client says)."""

    account_id: str
    account_type: str | None = None
    org_id: str | None = None


def key_digest(key: str) -> str:
    """The registry stores keys by SHA-256 only: a leaked registry file reveals no key.

    >>> key_digest("sk-test")[:12]
    'f3abf2a6cc4f'
    """
    return hashlib.sha256(key.encode()).hexdigest()


def load_api_keys(path: str) -> dict[str, ApiKey]:
    """An API-key registry (TOML): ``[keys.<sha256 of the key>]`` with ``account_id`` and optionally
    ``account_type`` and ``org_id``. A malformed entry fails start-up, naming it."""
    doc = tomllib.loads(Path(path).read_text())
    keys = {}
    for digest, entry in doc.get("keys", {}).items():
        account = entry.get("account_id") if isinstance(entry, dict) else None
        if len(digest) != 64 or _account_problem(account if isinstance(account, str) else ""):
            raise ValueError(f"{path}: [keys.{digest[:16]}…] needs a SHA-256 hex digest and an account_id")
        if entry.get("account_type") not in (None, *ACCOUNT_TYPES):
            raise ValueError(f"{path}: [keys.{digest[:16]}…] account_type must be one of {sorted(ACCOUNT_TYPES)}")
        keys[digest.lower()] = ApiKey(str(account), entry.get("account_type"), entry.get("org_id"))
    return keys


@dataclass(frozen=True)
class GatewayConfig:
    broker: str = "127.0.0.1:9092"
    fail_mode: str = "open"  # what to do while the decision stream is unavailable: open | closed
    verify_keys: str = f"dev:{DEV_SECRET}"
    # Take the client IP, fingerprints and account age from X-* headers set by a trusted edge (see
    # EDGE_HEADERS). Off by default: a client could otherwise choose its own payment fingerprint.
    trust_edge_headers: bool = False
    # Who is calling: with a registry, the account comes from the caller's API key (Authorization: Bearer)
    # and a client's X-Account-Id is never read; without one, X-Account-Id must be set by an edge that
    # authenticated the caller (the command line refuses to start without either, outside --dev).
    api_keys: Mapping[str, ApiKey] | None = None

    def __post_init__(self) -> None:
        if self.fail_mode not in ("open", "closed"):
            raise ValueError(f"fail_mode must be 'open' or 'closed', got {self.fail_mode!r}")


def create_app(cfg: GatewayConfig, clock: Callable[[], float] = time.time) -> web.Application:
    registry = CollectorRegistry()
    responses = Counter("gateway_responses", "Responses by HTTP status and enforcement reason.",
                        ["status", "reason"], namespace="distillguard", registry=registry)  # fmt: skip
    rejected = Counter("gateway_rejected_signatures", "Throttle records refused for a bad or missing signature.",
                       namespace="distillguard", registry=registry)  # fmt: skip
    lag = Gauge("gateway_decision_lag_records", "Throttle records not yet applied by this gateway.",
                namespace="distillguard", registry=registry)  # fmt: skip
    served_tokens = Counter("gateway_output_tokens", "Output tokens served to clients.",
                            namespace="distillguard", registry=registry)  # fmt: skip
    unpublished = Counter("gateway_unpublished_events", "Request events not published because Kafka was unreachable.",
                          namespace="distillguard", registry=registry)  # fmt: skip

    table = ThrottleTable(cfg.broker, parse_keys(cfg.verify_keys), clock=clock, on_reject=rejected.inc)
    buckets: dict[str, tuple[str, TokenBucket]] = {}  # account -> (decision id, bucket)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app["table"] = table

    def enforce(account: str, verdict: Verdict | None, want_tokens: int) -> web.Response | None:
        """A refusal for this request, or None to serve it."""
        if verdict is None or verdict.mode == "shadow":
            if verdict is not None:
                log.info("shadow %s for account %s (decision %s)", verdict.action, account, verdict.decision_id)
            return None
        retry_after = str(max(1, int(verdict.expires_at - clock())))
        if verdict.action == "block":
            return _refuse(429, "blocked", verdict, {"Retry-After": retry_after})
        if verdict.action == "challenge":
            return _refuse(403, "verification_required", verdict, {})
        if verdict.action == "limit":
            held = buckets.get(account)
            if held is None or held[0] != verdict.decision_id:
                held = buckets[account] = (
                    verdict.decision_id,
                    TokenBucket(verdict.requests_per_minute, verdict.tokens_per_minute, now=clock()),
                )
            if not held[1].take(want_tokens, clock()):
                return _refuse(429, "rate_limited", verdict, {"Retry-After": "60"})
        return None

    def fail_closed() -> web.Response | None:
        """The 503 of fail-closed mode while decisions are unavailable, or None to go on (fail-open)."""
        if table.ready or cfg.fail_mode == "open":
            return None
        return web.json_response({"error": "decision stream unavailable"}, status=503)

    def identify(request: web.Request) -> tuple[str, ApiKey | None] | web.Response:
        """The caller's account (and its registered key), or the 401/400 that refuses the request."""
        if cfg.api_keys is None:
            account = request.headers.get("X-Account-Id", "")
            if problem := _account_problem(account):
                responses.labels(status="400", reason="bad_request").inc()
                return web.json_response({"error": problem}, status=400)
            return account, None
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        record = cfg.api_keys.get(key_digest(key.strip())) if scheme.lower() == "bearer" and key.strip() else None
        if record is None:
            responses.labels(status="401", reason="unknown_key").inc()
            return web.json_response({"error": "a registered API key is required (Authorization: Bearer <key>)"},
                                     status=401, headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        return record.account_id, record

    async def messages(request: web.Request) -> web.Response:
        who = identify(request)
        if isinstance(who, web.Response):
            return who
        account, key = who
        try:
            body = await request.json(loads=orjson.loads)
        except ValueError:  # not JSON (a body over MAX_BODY_BYTES is refused with 413 before this)
            body = None
        problem = client_fields(body)[1]
        if problem:
            responses.labels(status="400", reason="bad_request").inc()
            return web.json_response({"error": problem}, status=400)
        if (closed := fail_closed()) is not None:
            responses.labels(status="503", reason="decisions_unavailable").inc()
            return closed
        fields, _ = client_fields(body)
        prompt, max_tokens = fields.get("prompt", ""), fields.get("max_tokens", 1024)
        refusal = enforce(account, table.check(account), max_tokens)
        output_tokens = 0 if refusal is not None else stub_model(prompt, max_tokens)
        status = refusal.status if refusal is not None else 200
        # Refused requests are published too: an account hammering a 429 is evidence that it persists.
        event = _event(request, account, body, output_tokens, status, clock(), trust_edge=cfg.trust_edge_headers)
        if key is not None:  # the operator's registry is a trusted source of the account's attributes
            event.update({k: v for k, v in (("account_type", key.account_type), ("org_id", key.org_id)) if v})
        await publish(event)
        if refusal is not None:
            responses.labels(status=str(status), reason=refusal.reason or "").inc()
            return refusal
        responses.labels(status="200", reason="served").inc()
        served_tokens.inc(output_tokens)
        return web.json_response({"id": event["event_id"], "output_tokens": output_tokens, "text": "stub"})

    async def publish(event: dict[str, Any]) -> None:
        """Send the request event; while Kafka is unreachable the request is still answered (counted)."""
        producer = app.get("producer")
        try:
            if producer is None:
                raise ConnectionError("producer not connected")
            await producer.send_and_wait("llm.requests", key=event["account_id"].encode(), value=orjson.dumps(event))
        except Exception as exc:  # noqa: BLE001 - a broker outage must not fail the API call
            unpublished.inc()
            log.warning("request event not published: %s", type(exc).__name__)

    async def authz(request: web.Request) -> web.Response:
        """Envoy ext_authz (HTTP service): 200 allows, 429/403 deny; see deploy/envoy/."""
        who = identify(request)
        if isinstance(who, web.Response):
            return who
        account, want = who[0], request.headers.get("X-Max-Tokens", "1024")
        if not (want.isdigit() and 0 < int(want) <= MAX_TOKENS):
            return web.json_response({"error": "X-Max-Tokens must be an integer in 1..1000000"}, status=400)
        if (closed := fail_closed()) is not None:
            return closed
        refusal = enforce(account, table.check(account), int(want))
        return refusal if refusal is not None else web.Response(status=200)

    async def metrics(_: web.Request) -> web.Response:
        lag.set(table.lag)
        return web.Response(body=generate_latest(registry), content_type="text/plain")

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"decisions_ready": table.ready, "lag": table.lag}, status=200 if table.ready else 503)

    async def connect_producer() -> None:
        while True:  # retried in the background: the gateway serves (fail-open) while Kafka is down
            producer = AIOKafkaProducer(bootstrap_servers=cfg.broker, acks="all", **aiokafka_config())
            try:
                await producer.start()
                app["producer"] = producer
                return
            except Exception as exc:  # noqa: BLE001
                log.warning("cannot reach Kafka at %s (%s); retrying", cfg.broker, type(exc).__name__)
                await producer.stop()
                await asyncio.sleep(2.0)

    async def on_startup(app: web.Application) -> None:
        app["connect"] = asyncio.create_task(connect_producer())
        await table.start()

    async def on_cleanup(app: web.Application) -> None:
        app["connect"].cancel()
        await table.stop()
        if producer := app.get("producer"):
            await producer.stop()

    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/authz/{tail:.*}", authz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", health)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def _refuse(status: int, reason: str, verdict: Verdict, headers: dict[str, str]) -> web.Response:
    body = {"error": reason, "decision_id": verdict.decision_id, "expires_at": verdict.expires_at}
    return web.json_response(body, status=status, headers=headers, reason=reason.replace("_", " ").title())


#: Event field → the header a trusted edge (load balancer, auth service) sets it in.
EDGE_HEADERS = {
    "account_type": "X-Account-Type",
    "account_created_ts": "X-Account-Created",
    "ip": "X-Forwarded-For",
    "payment_fingerprint": "X-Payment-Fingerprint",
    "device_fingerprint": "X-Device-Fingerprint",
    "tls_fingerprint": "X-TLS-Fingerprint",
    "user_agent": "User-Agent",
}


#: A request body bigger than this is refused (413) before it is read: with text cut to
#: ``MAX_TEXT_CHARS`` an event always fits the contract's 256 KiB, far under the producer's limit.
MAX_BODY_BYTES = 512 * 1024
MAX_TEXT_CHARS = 16_000
MAX_TOKENS = 1_000_000
ACCOUNT_TYPES = frozenset({"standard", "enterprise", "education", "research", "startup", "trial"})


def _account_problem(account: str) -> str | None:
    if not 0 < len(account) <= 256 or not account.isprintable():
        return "X-Account-Id header is required: 1 to 256 printable characters"
    return None


def _int_in(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: type(v) is int and low <= v <= high


def _text(limit: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and len(v) <= limit


#: What a client may send in the body, and what each value must be; nothing else is forwarded.
CLIENT_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model": (lambda v: isinstance(v, str) and 0 < len(v) <= 256, "a model name of 1 to 256 characters"),
    "prompt": (lambda v: isinstance(v, str), "a string"),
    "system": (lambda v: isinstance(v, str), "a string"),
    "max_tokens": (_int_in(1, MAX_TOKENS), f"an integer in 1..{MAX_TOKENS}"),
    "n_tools": (_int_in(0, 10_000), "an integer in 0..10000"),
    "n_messages": (_int_in(0, 100_000), "an integer in 0..100000"),
    "conversation_id": (_text(256), "a string of at most 256 characters"),
    "temperature": (lambda v: type(v) in (int, float) and 0 <= v <= 10, "a number in 0..10"),
    "stream": (lambda v: type(v) is bool, "a boolean"),
    "thinking": (lambda v: type(v) is bool, "a boolean"),
}


def client_fields(body: Any) -> tuple[dict[str, Any], str | None]:
    """The body's fields the gateway forwards, each checked, or the first problem (a 400 for the client).

    >>> client_fields({"prompt": "hi", "n_tools": -1})[1]
    'n_tools must be an integer in 0..10000'
    >>> client_fields({"prompt": "hi", "temperature": 0.2, "colour": "red"})
    ({'prompt': 'hi', 'temperature': 0.2}, None)
    """
    if not isinstance(body, dict):
        return {}, "a JSON object body is required"
    fields = {}
    for name, (ok, wants) in CLIENT_FIELDS.items():
        value = body.get(name)
        if value is None:
            continue
        if not ok(value):
            return {}, f"{name} must be {wants}"
        fields[name] = value
    return fields, None


def _event(
    request: web.Request,
    account: str,
    body: dict[str, Any],
    output_tokens: int,
    status: int,
    now: float,
    *,
    trust_edge: bool = False,
) -> dict[str, Any]:
    """The request event in the contract of ``schemas/request-event.schema.json``: only fields the gateway
    checked (client_fields), text cut to ``MAX_TEXT_CHARS``, and account attributes only from a trusted edge."""
    fields, _ = client_fields(body)
    prompt = fields.pop("prompt", "")
    event: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "ts": now,
        "account_id": account,
        "model": fields.pop("model", "frontier-1"),
        "input_tokens": max(1, len(prompt) // 4),
        "output_tokens": output_tokens,
        "endpoint": "/v1/messages",
        "status": status,
        "ip": request.remote or "",
        "user_agent": request.headers.get("User-Agent", "")[:256],  # the contract's bound on identity strings
        "prompt": prompt[:MAX_TEXT_CHARS],
    }
    if "system" in fields:
        fields["system"] = fields["system"][:MAX_TEXT_CHARS]
    event.update(fields)
    if trust_edge:  # a client's own X-Account-Type or fingerprint headers are never read otherwise
        if (account_type := request.headers.get("X-Account-Type")) in ACCOUNT_TYPES:
            event["account_type"] = account_type
        for field_name in ("ip", "payment_fingerprint", "device_fingerprint", "tls_fingerprint"):
            if value := request.headers.get(EDGE_HEADERS[field_name]):
                event[field_name] = value.split(",")[0].strip()[:256]
        try:
            created = float(request.headers["X-Account-Created"])
            if 0 < created < 1e11:
                event["account_created_ts"] = created
        except (KeyError, ValueError):
            pass
    return event


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default=os.environ.get("DISTILLGUARD_BROKER_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 in a container")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--fail-mode", choices=("open", "closed"), default="open")
    parser.add_argument(
        "--trust-edge-headers",
        action="store_true",
        help="take client IP, fingerprints and account age from X-* headers of a trusted edge",
    )
    parser.add_argument("--api-keys", help="API-key registry (TOML): the account comes from the caller's key")
    parser.add_argument("--dev", action="store_true", help="allow the development verify key (local trials only)")
    args = parser.parse_args()
    keys = os.environ.get("DISTILLGUARD_VERIFY_KEYS", GatewayConfig.verify_keys)
    if DEV_SECRET.encode() in parse_keys(keys).values() and not args.dev:
        parser.exit(2, "distillguard gateway: DISTILLGUARD_VERIFY_KEYS holds the development secret, which anyone "
                       "can read in the source; set your own keys, or pass --dev for a local trial\n")  # fmt: skip
    if not (args.api_keys or args.trust_edge_headers or args.dev):
        parser.exit(2, "distillguard gateway: say how callers are identified: --api-keys FILE (the account from "
                       "the caller's API key), or --trust-edge-headers (an authenticating edge sets X-Account-Id "
                       "and strips the client's); --dev for a local trial\n")  # fmt: skip
    cfg = GatewayConfig(
        broker=args.broker,
        fail_mode=args.fail_mode,
        trust_edge_headers=args.trust_edge_headers,
        verify_keys=keys,
        api_keys=load_api_keys(args.api_keys) if args.api_keys else None,
    )
    logging.basicConfig(level=logging.INFO)
    web.run_app(create_app(cfg), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
