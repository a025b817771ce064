"""The gateway's view of ``distillguard.throttle``: a signed, compacted topic read into a dict.

A gateway asks :meth:`ThrottleTable.check` on every request; that is one dict lookup and one
comparison against the decision's expiry, which is honoured locally even if the tombstone is late.
A background task consumes the topic from the beginning (it is compacted: the latest record per
account is the state), verifies each record's HMAC and reconnects by itself after broker outages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from stream.compacted import CompactedReader
from stream.signing import verify

__all__ = ["Verdict", "ThrottleTable"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the gateway must do for one account right now."""

    action: str  # challenge | limit | block
    mode: str  # enforce | shadow
    expires_at: float
    decision_id: str
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    cluster_id: str | None = None


def verdict_from_record(value: bytes) -> Verdict:
    """Parse a throttle record's value (raises ``ValueError`` on anything off-contract)."""
    record = orjson.loads(value)
    if not isinstance(record, dict) or record.get("action") not in ("observe", "challenge", "limit", "block"):
        raise ValueError("not a throttle decision")
    limit = record.get("limit") or {}
    return Verdict(
        action=record["action"],
        mode=record.get("mode", "enforce"),
        expires_at=float(record["expires_at"]),
        decision_id=str(record["decision_id"]),
        requests_per_minute=int(limit.get("requests_per_minute", 0)),
        tokens_per_minute=int(limit.get("tokens_per_minute", 0)),
        cluster_id=record.get("cluster_id"),
    )


class ThrottleTable:
    """In-memory table of the decisions in force, kept current from the throttle topic.

    Parameters
    ----------
    bootstrap
        ``host:port`` of the Kafka cluster.
    keys
        Trusted signing keys, id -> secret; records signed otherwise (or not at all) are refused.
    clock
        Wall clock for expiry, injectable for tests.
    on_reject
        Called for every refused record, e.g. a Prometheus counter's ``inc``.
    """

    def __init__(
        self,
        bootstrap: str,
        keys: Mapping[str, bytes],
        *,
        topic: str = "distillguard.throttle",
        clock: Callable[[], float] = time.time,
        on_reject: Callable[[], object] | None = None,
    ) -> None:
        self.keys = dict(keys)
        self.on_reject = on_reject  # e.g. a Prometheus counter's inc
        self.clock = clock
        self.table: dict[str, Verdict] = {}
        self.issued: dict[str, float] = {}  # subject -> signed issue time of the newest record applied
        self.rejected = 0  # records refused for a missing or bad signature
        self.stale = 0  # signed records older than the one in force (a replayed tombstone or decision)
        self.invalid = 0  # signed records whose value is off-contract
        self.applied = 0
        self.reader = CompactedReader(bootstrap, topic, self.apply)

    # -- the hot path ----------------------------------------------------------------------------

    def check(self, account_id: str) -> Verdict | None:
        """The decision in force for ``account_id``, or ``None``. Expired decisions count as lifted."""
        verdict = self.table.get("account:" + account_id)
        if verdict is None or verdict.expires_at <= self.clock():
            return None
        return verdict

    # -- keeping it current ------------------------------------------------------------------------

    def apply(self, key: bytes | None, value: bytes | None, headers: Any) -> None:
        """Fold one record in: verify, refuse one older than the record in force, then set or (null
        value) lift."""
        issued = None if key is None else verify(key, value, headers, self.keys)
        if key is None or issued is None:
            self.rejected += 1
            if self.on_reject is not None:
                self.on_reject()
            return
        subject = key.decode(errors="replace")
        if issued < self.issued.get(subject, float("-inf")):
            self.stale += 1
            return
        self.issued[subject] = issued
        if value is None:
            self.table.pop(subject, None)
        else:
            try:
                self.table[subject] = verdict_from_record(value)
            except (ValueError, KeyError, TypeError):
                self.invalid += 1
                return
        self.applied += 1

    @property
    def lag(self) -> int:
        return self.reader.lag

    @property
    def ready(self) -> bool:
        """Connected and caught up: decisions can be trusted (else the gateway's fail mode applies)."""
        return self.reader.ready

    async def start(self) -> None:
        await self.reader.start()

    async def stop(self) -> None:
        await self.reader.stop()
