"""Specification of the worker's pieces that need no broker."""

from __future__ import annotations

import asyncio

import pytest
from faust.exceptions import NotReady

from stream.app import skipped_once_stopped


def test_a_timer_cut_short_by_a_stopped_producer_ends_quietly_and_other_errors_still_raise() -> None:
    sent: list[int] = []

    @skipped_once_stopped
    async def tick() -> None:
        sent.append(1)
        raise NotReady("Producer service not yet started")  # what Faust raises once it stopped the producer

    asyncio.run(tick())
    assert sent == [1] and tick.__name__ == "tick"

    @skipped_once_stopped
    async def broken() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        asyncio.run(broken())
