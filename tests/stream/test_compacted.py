"""The compacted-topic reader's life cycle (its reading is tested against a broker in tests/integration)."""

from __future__ import annotations

import asyncio

from stream.compacted import CompactedReader


def test_starting_a_reader_twice_follows_the_topic_once() -> None:
    """The detect agent starts the readers it waits for, and so do their tasks: one follower, not two
    (two would apply every record twice, which the feedback log must never do)."""

    async def run() -> tuple[bool, int]:
        reader = CompactedReader("127.0.0.1:1", "distillguard.allowlist", lambda *_: None, reconnect_seconds=60)
        await reader.start()
        await reader.start()
        followers = [t for t in asyncio.all_tasks() if t.get_name() == "compacted:distillguard.allowlist"]
        await reader.stop()
        return reader.ready, len(followers)

    assert asyncio.run(run()) == (False, 1)
