"""HMAC signatures on throttle records, so a gateway can refuse records a rogue producer wrote.

The signature covers the record key, its issue time and its value (``key || 0x00 || issued || 0x00 ||
value``; a tombstone signs an empty value and the issue time of the decision it lifts), so a signed
decision cannot be replayed under another account's key, and a reader can refuse a record older than the
one in force (an old tombstone replayed to lift a current block). Headers: ``distillguard-key-id`` names
the key (rotation: gateways may trust several ids at once), ``distillguard-issued-at`` the issue time and
``distillguard-signature`` the hex HMAC-SHA256. Header bytes are compared as bytes: no header value,
however crafted, can make a check raise.

>>> keys = {"k1": b"secret"}
>>> headers = signature_headers(b"account:a", b'{"action":"block"}', "k1", b"secret", issued=100.0)
>>> verify(b"account:a", b'{"action":"block"}', headers, keys)
100.0
>>> verify(b"account:b", b'{"action":"block"}', headers, keys) is None  # moved to another key
True
>>> verify(b"account:a", b"x", [("distillguard-key-id", b"k1"), ("distillguard-signature", "é".encode())], keys)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["ISSUED_HEADER", "KEY_ID_HEADER", "SIGNATURE_HEADER", "ControlGate", "parse_keys", "sign",
           "signature_headers", "verify"]  # fmt: skip

log = logging.getLogger("distillguard.worker")

KEY_ID_HEADER = "distillguard-key-id"
ISSUED_HEADER = "distillguard-issued-at"
SIGNATURE_HEADER = "distillguard-signature"


def _issued(issued: float) -> bytes:
    return repr(float(issued)).encode()


def sign(key: bytes, value: bytes | None, secret: bytes, issued: float) -> str:
    return hmac.new(secret, key + b"\0" + _issued(issued) + b"\0" + (value or b""), hashlib.sha256).hexdigest()


def signature_headers(
    key: bytes, value: bytes | None, key_id: str, secret: bytes, issued: float
) -> list[tuple[str, bytes]]:
    return [
        (KEY_ID_HEADER, key_id.encode()),
        (ISSUED_HEADER, _issued(issued)),
        (SIGNATURE_HEADER, sign(key, value, secret, issued).encode()),
    ]


def verify(
    key: bytes, value: bytes | None, headers: Iterable[tuple[str, bytes | None]] | None, keys: Mapping[str, bytes]
) -> float | None:
    """The signed issue time when the record carries a valid signature by one of ``keys`` (id -> secret),
    else None. Never raises on crafted headers (non-ASCII, missing, null or repeated values)."""
    found = {name: raw for name, raw in headers or () if isinstance(raw, bytes)}
    secret = keys.get(found.get(KEY_ID_HEADER, b"").decode(errors="replace"))
    signature, issued_raw = found.get(SIGNATURE_HEADER, b""), found.get(ISSUED_HEADER, b"")
    if secret is None or not signature or not issued_raw:
        return None
    try:
        issued = float(issued_raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if issued != issued or _issued(issued) != issued_raw:  # NaN, or not the canonical form that was signed
        return None
    return issued if hmac.compare_digest(signature, sign(key, value, secret, issued).encode()) else None


def parse_keys(spec: str) -> dict[str, bytes]:
    """``"id1:secret1,id2:secret2"`` (e.g. from ``DISTILLGUARD_VERIFY_KEYS``) as a dict.

    >>> parse_keys("k1:abc, k2:def")
    {'k1': b'abc', 'k2': b'def'}
    """
    keys = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key_id, sep, secret = part.partition(":")
        if not sep or not key_id or not secret:
            raise ValueError(f"signing key {part!r} must look like id:secret")
        keys[key_id] = secret.encode()
    return keys


class ControlGate:
    """Whether a control record (allowlist, feedback, the cluster stage's hops) may be acted on: only when
    one of ``keys`` signed it. Anything else is counted (``on_rejected(topic)``) and logged, never acted
    on: whoever can write these topics must not be able to allowlist, block or teach.

    >>> gate = ControlGate({"k1": b"secret"}, lambda topic: print("rejected on", topic))
    >>> gate.record(b"p0", b"{}", signature_headers(b"p0", b"{}", "k1", b"secret", issued=1.0), "cluster-links")
    True
    >>> gate.record(b"p0", b"{}", [], "cluster-links")
    rejected on cluster-links
    False
    """

    def __init__(self, keys: Mapping[str, bytes], on_rejected: Callable[[str], None]) -> None:
        self.keys, self.on_rejected = keys, on_rejected

    def record(self, key: Any, value: Any, headers: Any, topic: str) -> bool:
        key = key if isinstance(key, bytes) else b""
        value = value if isinstance(value, bytes) else None
        if verify(key, value, headers, self.keys) is not None:
            return True
        self.on_rejected(topic)
        log.warning("ignored an unsigned or badly signed %s record", topic)
        return False

    def event(self, event: Any, topic: str) -> bool:
        """:meth:`record` of a Faust event."""
        return self.record(event.key, event.value, (event.headers or {}).items(), topic)
