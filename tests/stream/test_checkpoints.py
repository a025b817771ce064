"""Checkpoints on a compacted topic: assembled only when complete, intact and signed; one generation kept."""

from __future__ import annotations

import os

from stream.checkpoints import Checkpoints, checkpoint_records, stale_parts


def fed(records: list[tuple[bytes, bytes | None]], trusted: bool = True) -> Checkpoints:
    book = Checkpoints()
    for key, value in records:
        book.apply(key, value, trusted=trusted)
    return book


def test_a_checkpoint_bigger_than_a_record_is_cut_into_parts_and_assembled_whole() -> None:
    blob = os.urandom(300_000)  # incompressible: several 64 KB parts
    records = checkpoint_records("cluster-stage", blob, generation=5, part_bytes=65_536)
    assert len(records) == 6 and records[-1][0] == b"cluster-stage"  # five parts, then the manifest
    assert fed(list(records)).latest("cluster-stage") == blob


def test_an_unsigned_record_is_refused_and_never_assembled() -> None:
    book = fed(list(checkpoint_records("models", b"payload", generation=1)), trusted=False)
    assert book.latest("models") is None and book.refused == 2


def test_a_checkpoint_missing_a_part_or_with_a_part_changed_is_not_loaded() -> None:
    records = checkpoint_records("models", os.urandom(10_000), generation=1, part_bytes=4096)
    assert fed(records[:1] + records[2:]).latest("models") is None  # a part missing
    changed = [records[0], (records[1][0], b"x" + records[1][1][1:]), *records[2:]]
    assert fed(changed).latest("models") is None  # the digest in the manifest does not match


def test_the_newest_manifest_wins_and_the_generation_it_replaces_is_dropped() -> None:
    old = checkpoint_records("models", b"old", generation=1)
    new = checkpoint_records("models", b"new", generation=2)
    tombstones: list[tuple[bytes, bytes | None]] = [(k, None) for k in stale_parts("models", 1, 1)]
    book = fed([*old, *new, *tombstones])
    assert book.latest("models") == b"new" and book.manifest("models") == (2, 1)
    assert book._parts.keys() == {("models", 2)}  # bounded: the old generation's parts are gone
    late = fed([*new, *old[:-1]])  # an older generation's part read after the newer manifest: ignored
    assert late.latest("models") == b"new" and late._parts.keys() == {("models", 2)}


def test_a_crash_between_parts_and_manifest_leaves_the_previous_checkpoint_in_force() -> None:
    old = checkpoint_records("models", b"old", generation=1)
    half_written = checkpoint_records("models", b"new" * 5000, generation=2, part_bytes=16)[:-1]
    assert fed([*old, *half_written]).latest("models") == b"old"


def test_crafted_keys_and_manifests_are_refused_without_raising() -> None:
    book = fed([(b"models/x/1", b"a"), (b"models", b"{"), (b"models", b'{"generation": 1, "parts": 0, "sha256": ""}'),
                (b"models", b"[]"), (b"models/1/", b"b")])  # fmt: skip
    assert book.refused == 5 and book.latest("models") is None
