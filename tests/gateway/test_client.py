"""The gateway's throttle table: signed records only, expiry honoured locally, tombstones lift."""

from __future__ import annotations

import orjson
import pytest

from gateway.client import ThrottleTable
from stream.signing import signature_headers

KEYS = {"k1": b"secret-1", "k2": b"secret-2"}
NOW = 1_800_000_000.0


def record(action: str = "block", expires_at: float = NOW + 600, mode: str = "enforce", **extra: object) -> bytes:
    value = {"schema_version": 1, "decision_id": "d1", "subject": {"type": "account", "id": "a"},
             "action": action, "issued_at": NOW, "expires_at": expires_at, "reason": ["COT_AT_SCALE"],
             "score": 0.97, "mode": mode, "origin": "auto", **extra}  # fmt: skip
    return orjson.dumps(value)


def table(now: float = NOW) -> ThrottleTable:
    return ThrottleTable("127.0.0.1:1", KEYS, clock=lambda: now)


def signed(key: bytes, value: bytes | None, key_id: str = "k1") -> tuple[bytes, bytes | None, list[tuple[str, bytes]]]:
    return key, value, signature_headers(key, value, key_id, KEYS[key_id])


def test_signed_decision_is_applied_and_checked() -> None:
    t = table()
    t.apply(*signed(b"account:a", record(limit={"requests_per_minute": 5, "tokens_per_minute": 900})))
    verdict = t.check("a")
    assert verdict is not None and verdict.action == "block" and verdict.decision_id == "d1"
    assert t.check("someone-else") is None


def test_keys_can_rotate_any_trusted_key_id_is_accepted() -> None:
    t = table()
    t.apply(*signed(b"account:a", record(), key_id="k2"))
    assert t.check("a") is not None


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [("distillguard-key-id", b"k1")],
        [("distillguard-key-id", b"k1"), ("distillguard-signature", b"00" * 32)],
        [("distillguard-key-id", b"unknown"), ("distillguard-signature", b"00" * 32)],
    ],
    ids=["no-headers", "empty", "no-signature", "bad-signature", "unknown-key"],
)
def test_unsigned_or_badly_signed_records_are_refused_and_counted(headers: object) -> None:
    t = table()
    t.apply(b"account:a", record(), headers)
    assert t.check("a") is None and t.rejected == 1


def test_a_signature_cannot_be_moved_to_another_account() -> None:
    t = table()
    key, value, headers = signed(b"account:a", record())
    t.apply(b"account:victim", value, headers)
    assert t.check("victim") is None and t.rejected == 1


def test_expired_decision_is_lifted_locally_before_any_tombstone() -> None:
    t = table(now=NOW + 601)
    t.apply(*signed(b"account:a", record(expires_at=NOW + 600)))
    assert t.check("a") is None


def test_tombstone_lifts_a_decision() -> None:
    t = table()
    t.apply(*signed(b"account:a", record()))
    t.apply(*signed(b"account:a", None))
    assert t.check("a") is None and t.applied == 2


def test_signed_garbage_is_counted_not_applied() -> None:
    t = table()
    t.apply(*signed(b"account:a", b"not json"))
    t.apply(*signed(b"account:a", orjson.dumps({"action": "nuke"})))
    assert t.check("a") is None and t.invalid == 2
