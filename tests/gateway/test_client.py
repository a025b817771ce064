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


def signed(
    key: bytes, value: bytes | None, key_id: str = "k1", issued: float = NOW
) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]]:
    return key, value, signature_headers(key, value, key_id, KEYS[key_id], issued)


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


# ---- forged and replayed records (issue 22, item 4) ----


@pytest.mark.parametrize(
    "signature", ["é".encode(), b"\xff\xfe", "ü".encode() * 64], ids=["non-ascii", "not-utf8", "long-non-ascii"]
)
def test_a_crafted_signature_header_is_refused_without_raising(signature: bytes) -> None:
    t = table()
    headers = [("distillguard-key-id", b"k1"), ("distillguard-issued-at", repr(NOW).encode()),
               ("distillguard-signature", signature)]  # fmt: skip
    t.apply(b"account:a", record(), headers)
    assert t.rejected == 1 and t.check("a") is None


def test_an_old_tombstone_replayed_cannot_lift_a_current_block() -> None:
    t = table()
    old_tombstone = signed(b"account:a", None, issued=NOW - 3600)  # lifted an earlier decision, an hour ago
    t.apply(*signed(b"account:a", record(), issued=NOW))
    t.apply(*old_tombstone)
    assert t.check("a") is not None and t.stale == 1
    t.apply(*signed(b"account:a", None, issued=NOW))  # the tombstone of this decision lifts it
    assert t.check("a") is None


def test_an_older_decision_is_not_applied_over_a_newer_one() -> None:
    t = table()
    t.apply(*signed(b"account:a", record("block"), issued=NOW))
    t.apply(*signed(b"account:a", record("challenge"), issued=NOW - 1))
    verdict = t.check("a")
    assert verdict is not None and verdict.action == "block" and t.stale == 1


def test_the_issue_time_is_part_of_what_is_signed() -> None:
    t = table()
    key, value, headers = signed(b"account:a", None, issued=NOW - 3600)
    forged = [(n, repr(NOW + 1).encode() if n == "distillguard-issued-at" else v) for n, v in headers]
    t.apply(*signed(b"account:a", record(), issued=NOW))
    t.apply(key, value, forged)  # an old tombstone re-dated by hand no longer verifies
    assert t.rejected == 1 and t.check("a") is not None


def test_a_record_whose_handler_raises_is_skipped_not_a_restart_from_the_beginning() -> None:
    from types import SimpleNamespace

    from aiokafka import TopicPartition

    from stream.compacted import CompactedReader

    seen: list[bytes] = []

    def handler(key: bytes | None, value: bytes | None, headers: object) -> None:
        if key == b"bad":
            raise TypeError("crafted")
        seen.append(key or b"")

    reader = CompactedReader("127.0.0.1:1", "distillguard.throttle", handler)
    tp = TopicPartition("distillguard.throttle", 0)
    batch = [SimpleNamespace(key=k, value=b"v", headers=[], offset=i) for i, k in enumerate([b"a", b"bad", b"c"])]
    reader._apply({tp: batch})
    assert seen == [b"a", b"c"] and reader.failed == 1 and reader._positions[tp] == 3
