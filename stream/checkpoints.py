"""Named checkpoints (the worker writes its models) on a compacted topic, so that they move with the work.

A checkpoint on a worker's disk stays with that disk: the worker that takes over its partitions (or a
pod rescheduled with an empty volume) starts with fresh models. Here a checkpoint is written to
``<app id>-checkpoints`` (compacted, one partition) and every worker follows that topic, so the latest
one is in memory wherever it is needed.

A checkpoint is a pickle, and unpickling crafted bytes runs code: every record is signed (HMAC, the
control-record keys) and a checkpoint is assembled only from signed parts whose digest matches its
signed manifest. Big checkpoints are cut into parts under Kafka's record size:

- ``<name>/<generation>/<i>``: part ``i`` of a generation (zlib-compressed bytes);
- ``<name>``: the manifest, written after its parts: ``{"generation", "parts", "sha256", "bytes"}``;
- the previous generation's parts get tombstones once the new manifest is written, so compaction keeps
  one generation.

>>> book = Checkpoints()
>>> for key, value in checkpoint_records("models", b"x" * 10, generation=7, part_bytes=4):
...     book.apply(key, value, trusted=True)
>>> book.latest("models"), book.generation("models")
(b'xxxxxxxxxx', 7)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import orjson

from stream.compacted import CompactedReader
from stream.signing import verify

__all__ = ["CHECKPOINT_PART_BYTES", "CheckpointTopic", "Checkpoints", "checkpoint_records", "stale_parts"]

log = logging.getLogger("distillguard.checkpoints")

#: Under Kafka's default 1 MB record limit with room for headers.
CHECKPOINT_PART_BYTES = 512 * 1024


def checkpoint_records(
    name: str, blob: bytes, generation: int, part_bytes: int = CHECKPOINT_PART_BYTES
) -> list[tuple[bytes, bytes]]:
    """The records of one checkpoint: its parts, then its manifest (keys and values, to sign and send)."""
    packed = zlib.compress(blob, 3)
    parts = [packed[i : i + part_bytes] for i in range(0, len(packed), part_bytes)] or [b""]
    records = [(f"{name}/{generation}/{i}".encode(), part) for i, part in enumerate(parts)]
    manifest = {"generation": generation, "parts": len(parts), "sha256": hashlib.sha256(packed).hexdigest(),
                "bytes": len(blob)}  # fmt: skip
    return [*records, (name.encode(), orjson.dumps(manifest))]


def stale_parts(name: str, generation: int, parts: int) -> list[bytes]:
    """The keys of an older generation's parts, to tombstone once a newer manifest is written."""
    return [f"{name}/{generation}/{i}".encode() for i in range(parts)]


class _Manifest(NamedTuple):
    generation: int
    parts: int
    sha256: str


class Checkpoints:
    """The latest complete checkpoint per name, assembled from the records of the checkpoint topic.

    Only records the caller found ``trusted`` (validly signed) are kept; parts are held for the
    generations at or after each name's latest manifest (at most a couple), so memory stays bounded.
    """

    def __init__(self) -> None:
        self._manifests: dict[str, _Manifest] = {}
        self._parts: dict[tuple[str, int], dict[int, bytes]] = {}
        self.refused = 0  # unsigned or unreadable records

    def apply(self, key: bytes | None, value: bytes | None, *, trusted: bool) -> None:
        """Take one record of the topic (a tombstone has value None)."""
        if not trusted or key is None:
            self.refused += 1
            return
        name, slash, rest = key.decode(errors="replace").partition("/")
        if not slash:  # a manifest
            manifest = self._manifest(value)
            if manifest is None:
                self.refused += 1
                return
            self._manifests[name] = manifest
            self._drop_before(name, manifest.generation)
            return
        gen_text, _, index_text = rest.partition("/")
        if not (gen_text.isdigit() and index_text.isdigit()):
            self.refused += 1
            return
        generation, index = int(gen_text), int(index_text)
        if value is None:
            self._parts.get((name, generation), {}).pop(index, None)
            return
        current = self._manifests.get(name)
        if current is not None and generation < current.generation:
            return  # older than what is complete already
        self._parts.setdefault((name, generation), {})[index] = value

    def manifest(self, name: str) -> tuple[int, int] | None:
        """(generation, parts) of the latest manifest of ``name``, if any."""
        manifest = self._manifests.get(name)
        return None if manifest is None else (manifest.generation, manifest.parts)

    def generation(self, name: str) -> int | None:
        manifest = self._manifests.get(name)
        return None if manifest is None else manifest.generation

    def latest(self, name: str) -> bytes | None:
        """The newest checkpoint of ``name`` whose parts are all here and match its digest, else None."""
        manifest = self._manifests.get(name)
        if manifest is None:
            return None
        parts = self._parts.get((name, manifest.generation), {})
        if any(i not in parts for i in range(manifest.parts)):
            return None
        packed = b"".join(parts[i] for i in range(manifest.parts))
        if hashlib.sha256(packed).hexdigest() != manifest.sha256:
            return None
        try:
            return zlib.decompress(packed)
        except zlib.error:
            return None

    @staticmethod
    def _manifest(value: bytes | None) -> _Manifest | None:
        try:
            doc = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            return None
        if not isinstance(doc, dict):
            return None
        generation, parts, digest = doc.get("generation"), doc.get("parts"), doc.get("sha256")
        if type(generation) is not int or type(parts) is not int or parts < 1 or not isinstance(digest, str):
            return None
        return _Manifest(generation, parts, digest)

    def _drop_before(self, name: str, generation: int) -> None:
        for held_name, held_generation in list(self._parts):
            if held_name == name and held_generation < generation:
                del self._parts[(held_name, held_generation)]


#: Sends one record (key, value or None, headers) and returns once the broker has it.
Send = Callable[[bytes, bytes | None, list[tuple[str, bytes]]], Awaitable[None]]


class CheckpointTopic:
    """A worker's side of its checkpoint topic: follows all of it, reads the latest checkpoints from it,
    writes new ones to it. ``sign`` gives a record's signature headers; ``keys`` verify what is read."""

    def __init__(
        self, bootstrap: str, topic: str, send: Send, sign: Callable[[bytes, bytes | None], list[tuple[str, bytes]]],
        keys: Mapping[str, bytes],
    ) -> None:  # fmt: skip
        self.book = Checkpoints()
        self.reader = CompactedReader(bootstrap, topic, self._on_record)
        self._send, self._sign, self._keys = send, sign, keys

    def _on_record(self, key: bytes | None, value: bytes | None, headers: Any) -> None:
        signed = key is not None and verify(key, value, headers, self._keys) is not None
        self.book.apply(key, value, trusted=signed)

    async def latest(self, name: str, wait_seconds: float = 60.0) -> bytes | None:
        """The latest complete checkpoint of ``name``, once the topic has been read to its end (or after
        ``wait_seconds``, with a warning: a worker must not wait forever on a topic to start)."""
        try:
            await asyncio.wait_for(self.reader.caught_up.wait(), timeout=wait_seconds)
        except TimeoutError:
            log.warning("going on without the checkpoint topic: not read in full in %.0f s", wait_seconds)
        return self.book.latest(name)

    async def write(self, name: str, blob: bytes) -> int:
        """Parts, then the manifest, then tombstones for the generation it replaces, each awaited; returns
        the generation written (above any on the topic, so the newest write wins everywhere)."""
        previous = self.book.manifest(name)
        generation = max(time.time_ns() // 1000, (previous[0] + 1) if previous else 0)
        sends: list[tuple[bytes, bytes | None]] = [*checkpoint_records(name, blob, generation)]
        if previous is not None:
            sends += [(key, None) for key in stale_parts(name, *previous)]
        for key, value in sends:
            await self._send(key, value, self._sign(key, value))
        return generation
