"""Model and cluster-stage checkpoints on a compacted topic, so that they move with the work.

A checkpoint on a worker's disk stays with that disk: the worker that takes over its partitions (or a
pod rescheduled with an empty volume) starts with fresh models and an empty cluster stage. Here a
checkpoint is written to ``<app id>-checkpoints`` (compacted, one partition) and every worker follows
that topic, so the latest one is in memory wherever it is needed.

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

import hashlib
import zlib
from typing import NamedTuple

import orjson

__all__ = ["CHECKPOINT_PART_BYTES", "Checkpoints", "checkpoint_records", "stale_parts"]

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
