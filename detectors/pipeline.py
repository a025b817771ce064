"""One event through the detector, as the worker and offline replay both run it.

bytes → decoded event (repaired where the contract allows, its time pulled back if it claims the
future) → the engine → decisions → the records and alerts they publish. The worker adds Kafka around
it (dead letters, signing, delivery, the wall clock a published decision lives on); replay adds files.
One sequence, so that what replay says the worker would do is what the worker does.

>>> from detectors.engine import Engine, MemoryStore
>>> engine = Engine(MemoryStore())
>>> handle(b'{"not": "an event"}', engine).refused.reason
'missing_field'
>>> done = handle(b'{"event_id": "e1", "ts": 1800000000, "account_id": "a", "model": "m", '
...               b'"input_tokens": 10, "output_tokens": 90, "asn": -1}', engine)
>>> done.refused, done.repaired, done.decisions, done.ts
(None, ['asn'], [], 1800000000)
"""

from __future__ import annotations

from typing import Any, NamedTuple

from detectors.alerts import alert_record, should_alert
from detectors.config import PolicyConfig
from detectors.engine import Engine
from detectors.events import InvalidEvent, clamp_event_time, decode_event
from detectors.policy import record_mode
from detectors.types import Decision

__all__ = ["DETECTOR_ERROR", "Handled", "handle", "published"]

#: The refusal reason of an event the detector itself failed on (a bug: dead-lettered, never a crash).
DETECTOR_ERROR = "detector_error"


class Handled(NamedTuple):
    """What became of one event."""

    decisions: list[Decision]
    repaired: list[str]  # optional fields dropped or cut so that the event could be scored
    refused: InvalidEvent | None  # why it was not scored: the contract, or DETECTOR_ERROR
    ts: float  # its event time as scored (0 when refused)
    clamped: bool = False  # stamped beyond ``latest_allowed_ts``, scored at it
    error: BaseException | None = None  # the detector's exception, for the log's traceback


def handle(
    raw: bytes, engine: Engine, *, partition: int = 0, offset: int | None = None,
    latest_allowed_ts: float | None = None,
) -> Handled:  # fmt: skip
    """Decode ``raw`` and run it through ``engine``; never raises on what a client sent, nor on a
    detector bug (that event is refused with :data:`DETECTOR_ERROR`, the stream goes on)."""
    repaired: list[str] = []
    try:
        event = decode_event(raw, repaired)
    except InvalidEvent as exc:
        return Handled([], repaired, exc, 0.0)
    clamped = latest_allowed_ts is not None and clamp_event_time(event, latest_allowed_ts)
    try:
        decisions = engine.process(event, partition, offset)
    except Exception as exc:  # noqa: BLE001 - a detector bug must not stop the stream
        refused = InvalidEvent(DETECTOR_ERROR, f"{type(exc).__name__}: {exc}"[:500])
        return Handled([], repaired, refused, 0.0, clamped, exc)
    return Handled(decisions, repaired, None, event["ts"], clamped)


def published(decision: Decision, mode: str, policy: PolicyConfig) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The throttle record a decision publishes (enforced, or shadow for actions in shadow mode) and its
    alert for people, if it warrants one."""
    record = decision.to_record(mode=record_mode(decision.action, mode, policy))
    return record, alert_record(decision, record["mode"]) if should_alert(decision) else None
