"""The framework's own ceiling: a Faust agent with the worker's settings that does (almost) nothing.

    python -m bench.faust_ceiling --broker kafka://127.0.0.1:9092 --events 200000 [--table-writes]

It takes batches of ``llm.requests`` exactly as the ``detect`` agent does (``take_events``, raw bytes,
the worker's :func:`stream.app.app_options`) and only decodes each event. With ``--table-writes`` it
also writes one 866-byte value per distinct account per batch to a changelogged table, as the worker
flushes account state. It prints ``events_per_second=<rate>`` once ``--events`` have been taken after
the first batch, then keeps running until stopped: ``bench.bench_e2e`` reads the line and stops it.

The gap between this and the aiokafka ceiling is Faust's; the gap between this and the worker is ours.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from typing import Any

import faust

from detectors.events import InvalidEvent, decode_event
from stream.app import app_options
from stream.faust_patches import queue_whole_batches, warm_partitioner
from stream.settings import WorkerSettings
from stream.topics import REQUESTS

_STATE = b"\0" * 866  # the size of one packed account state


def build(settings: WorkerSettings, events: int, table_writes: bool) -> faust.App:
    app = faust.App(settings.app_id, **app_options(settings))
    requests = app.topic(REQUESTS.name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=settings.partitions, internal=True)  # fmt: skip
    table = app.Table("ceiling-state", key_type=bytes, value_type=bytes, partitions=settings.partitions,
                      use_partitioner=True)  # fmt: skip

    @app.agent(requests, name="take")
    async def take(stream: Any) -> None:
        await warm_partitioner(app, (table,))
        queue_whole_batches(app, settings.batch_size)
        seen, started = 0, 0.0
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_seconds):
            if not started:  # the clock starts once fetching is under way, after the first batch
                started = time.perf_counter()
                continue
            accounts = set()
            for event in batch:
                try:
                    accounts.add(decode_event(event.value)["account_id"])
                except InvalidEvent:
                    continue
            if table_writes:
                for account in accounts:
                    table[account.encode()] = _STATE
            seen += len(batch)
            if seen >= events:
                print(f"events_per_second={seen / (time.perf_counter() - started):.0f}", flush=True)
                seen, started = 0, time.perf_counter()

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--data-dir", default=".run/faust-ceiling")
    parser.add_argument("--table-writes", action="store_true")
    args = parser.parse_args(argv)
    settings = WorkerSettings(broker=args.broker, app_id=f"ceiling-{uuid.uuid4().hex[:6]}",
                              partitions=args.partitions, data_dir=args.data_dir)  # fmt: skip
    sys.argv = sys.argv[:1]  # Faust's worker parses the command line too
    faust.Worker(
        build(settings, args.events, args.table_writes), loglevel="warning", quiet=True, redirect_stdouts=False
    ).execute_from_commandline()


if __name__ == "__main__":
    main()
