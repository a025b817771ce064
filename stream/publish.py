"""The last step of the data flow: a worker's decisions and dead letters onto their topics.

A decision goes to ``distillguard.throttle`` signed (HMAC over key, value and its issue time), lives on
the wall clock from there (``enforceable``), is noted in the ``active-decisions`` table so that it is
lifted on time, and alerts people once. A dead letter is a bounded, redacted copy of what a client sent,
with the reason and the source in its headers; a broker refusing it is counted and logged, never a crash.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from typing import Any

import faust
import orjson

from detectors.config import ScoringConfig
from detectors.events import dlq_value
from detectors.pipeline import published
from detectors.types import ACTIONS, Decision, enforceable
from stream.faust_patches import warm_partitioner
from stream.metrics import WorkerMetrics
from stream.settings import WorkerSettings
from stream.signing import signature_headers
from stream.topics import ALERTS, DLQ, THROTTLE

__all__ = ["Publisher", "active_entry", "dlq_headers"]

log = logging.getLogger("distillguard.worker")

_ACTIVE = "<dBd"  # active-decisions value: expiry, action level, signed issue time of the decision in force


class Publisher:
    """Where one worker's decisions and dead letters go: the topics, and the table of decisions in force.

    Sends return once queued; a delivery is awaited here, or by the caller that collects it in
    ``pending`` (one round trip per batch, not one per decision).
    """

    def __init__(
        self, app: faust.App, settings: WorkerSettings, cfg: ScoringConfig, metrics: WorkerMetrics,
        topics: dict[str, Any], active: Any,
    ) -> None:  # fmt: skip
        self.app, self.settings, self.cfg, self.metrics, self.active = app, settings, cfg, metrics, active
        self.throttle, self.alerts, self.dlq = topics[THROTTLE.name], topics[ALERTS.name], topics[DLQ.name]
        self._secret = settings.signing_secret.encode()

    async def send_throttle(
        self, key: bytes, value: bytes | None, issued: float, pending: list[Any] | None = None
    ) -> Any:
        """Sign and send; ``issued`` is the decision's issue time (a tombstone: that of the decision it
        lifts), which gateways use to refuse a replayed older record. Returns the delivery future."""
        headers = signature_headers(key, value, self.settings.signing_key_id, self._secret, issued)
        fut = await self.throttle.send(key=key, value=value, headers=headers)
        if pending is None:
            await fut
        else:
            pending.append(fut)
        return fut

    async def decision(self, decision: Decision, pending: list[Any] | None = None) -> Any:
        """Send the decision (and its alert), note it in force; returns its delivery future. One clock per
        lifecycle: the engine decides on event time; what is published lives on the wall clock, so a
        decision made while catching up on a backlog is not expired on arrival (``enforceable``)."""
        policy = self.cfg.policy
        decision = enforceable(decision, time.time(), policy.ttl_seconds)
        record, alert = published(decision, self.settings.mode, policy)
        key = decision.key.encode()
        # Signed issue times never go back for a key (a cluster verdict can carry an event time a little
        # older than the account's last decision): a gateway refuses a record older than the one in force.
        in_force = self.active.get(key)
        issued = max(decision.issued_at, active_entry(in_force)[2] if in_force is not None else 0.0)
        delivery = await self.send_throttle(key, orjson.dumps(record), issued, pending)
        await warm_partitioner(self.app, (self.active,))  # the awaits above may have let a failover clear it
        self.active[key] = struct.pack(_ACTIVE, decision.expires_at, ACTIONS.index(decision.action), issued)
        if alert is not None:
            await self.alerts.send(key=key, value=orjson.dumps(alert))
        for code in decision.reason:
            self.metrics.decisions.labels(action=decision.action, reason=code).inc()
        self.metrics.decision_latency_seconds.observe(max(0.0, time.time() - decision.issued_at))
        return delivery

    async def dead_letter(self, event: Any, reason: str, detail: str, pending: list[Any]) -> None:
        """A bounded, redacted record (``dlq_value``) with the reason in headers. A send the broker refuses
        is counted and logged with the source offset; it never stops the agent or the batch's other acks."""
        msg = event.message
        raw = event.value if isinstance(event.value, bytes) else b""
        keep_text = self.settings.dlq_keep_text
        headers = dlq_headers(reason, detail, msg.topic, msg.partition, msg.offset) + [
            ("dlq.original.bytes", str(len(raw)).encode()),
            ("dlq.original.sha256", hashlib.sha256(raw).hexdigest().encode()),
            ("dlq.value", b"original" if keep_text else b"redacted"),
        ]
        key = event.key[:256] if isinstance(event.key, bytes) else None
        self.metrics.dlq_records.labels(reason=reason).inc()
        try:
            fut = await self.dlq.send(key=key, value=dlq_value(raw, keep_text), headers=headers)
        except Exception as exc:  # noqa: BLE001 - a refused dead letter must not stop detection
            self._refused(exc, msg)
            return
        pending.append(self._guarded(fut, msg))

    def _refused(self, exc: BaseException, msg: Any) -> None:
        self.metrics.dlq_send_failures.inc()
        log.error("dead letter for %s[%d]@%d refused by the broker: %s", msg.topic, msg.partition, msg.offset,
                  type(exc).__name__)  # fmt: skip

    async def _guarded(self, fut: Any, msg: Any) -> None:
        try:
            await fut
        except Exception as exc:  # noqa: BLE001
            self._refused(exc, msg)


def dlq_headers(reason: str, detail: str, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """Headers of a DLQ record, named like Kafka Connect's ``__connect.errors.*`` context headers."""
    return [
        ("dlq.reason", reason.encode()),
        ("dlq.error", detail.encode()[:500]),
        ("dlq.source.topic", topic.encode()),
        ("dlq.source.partition", str(partition).encode()),
        ("dlq.source.offset", str(offset).encode()),
    ]


def active_entry(value: bytes) -> tuple[float, int, float]:
    """(expiry, action level, issue time) of an active-decisions value; unreadable values count as
    expired; an entry written before issue times were kept reads as issued at 0.

    >>> active_entry(struct.pack(_ACTIVE, 12.5, 3, 7.0)), active_entry(struct.pack("<dB", 12.5, 3))
    ((12.5, 3, 7.0), (12.5, 3, 0.0))
    >>> active_entry(b"junk")
    (0.0, 0, 0.0)
    """
    if len(value) == struct.calcsize("<dB"):
        expires, level = struct.unpack("<dB", value)
        return float(expires), int(level), 0.0
    if len(value) != struct.calcsize(_ACTIVE):
        return 0.0, 0, 0.0
    expires, level, issued = struct.unpack(_ACTIVE, value)
    return float(expires), int(level), float(issued)
