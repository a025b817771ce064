"""HMAC signatures on throttle records, so a gateway can refuse records a rogue producer wrote.

The signature covers the record key and value (``key || 0x00 || value``; a tombstone signs an empty
value), so a signed decision cannot be replayed under another account's key. Headers:
``distillguard-key-id`` names the key (rotation: gateways may trust several ids at once) and
``distillguard-signature`` is the hex HMAC-SHA256.

>>> keys = {"k1": b"secret"}
>>> headers = signature_headers(b"account:a", b'{"action":"block"}', "k1", b"secret")
>>> verify(b"account:a", b'{"action":"block"}', headers, keys)
True
>>> verify(b"account:b", b'{"action":"block"}', headers, keys)  # moved to another key
False
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

__all__ = ["KEY_ID_HEADER", "SIGNATURE_HEADER", "parse_keys", "sign", "signature_headers", "verify"]

KEY_ID_HEADER = "distillguard-key-id"
SIGNATURE_HEADER = "distillguard-signature"


def sign(key: bytes, value: bytes | None, secret: bytes) -> str:
    return hmac.new(secret, key + b"\0" + (value or b""), hashlib.sha256).hexdigest()


def signature_headers(key: bytes, value: bytes | None, key_id: str, secret: bytes) -> list[tuple[str, bytes]]:
    return [(KEY_ID_HEADER, key_id.encode()), (SIGNATURE_HEADER, sign(key, value, secret).encode())]


def verify(
    key: bytes, value: bytes | None, headers: Iterable[tuple[str, bytes]] | None, keys: Mapping[str, bytes]
) -> bool:
    """True when the record carries a valid signature by one of ``keys`` (id -> secret)."""
    found = dict(headers or ())
    key_id = found.get(KEY_ID_HEADER, b"").decode(errors="replace")
    signature = found.get(SIGNATURE_HEADER, b"").decode(errors="replace")
    secret = keys.get(key_id)
    if secret is None or not signature:
        return False
    return hmac.compare_digest(signature, sign(key, value, secret))


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
