"""End-to-end benchmark on a real broker: the worker against the physical ceiling, and decision latency.

    python -m bench.bench_e2e [--events 200000] [--live-seconds 30] [--live-rate 2000]

It starts its own single-node Kafka (``deploy/kafka/kafka.sh`` in ``.run/bench``), loads the events of
``bench.bench_detector`` (realistic prompts of a few hundred words) onto ``llm.requests``, then measures:

1. **ceiling** — an aiokafka consumer that only fetches and decodes (orjson + contract check) every
   event: the limit for this language, machine and broker; then **Faust's ceiling**
   (``bench.faust_ceiling``): a Faust agent with the worker's settings that only takes and decodes,
   without and with one table write per account per batch — the limit for the framework;
2. **worker** — ``distillguard worker`` with every detector from a cold start over the same backlog,
   timed until its group's committed offsets reach the end (includes start-up and rebalance);
3. **decision latency** — live traffic at ``--live-rate`` events/s stamped with the wall clock, with
   harvesters in it: from the deciding event's timestamp to the decision's record on
   ``distillguard.throttle`` (its broker append time), p50 and p99;
4. **state** — bytes of packed state per tracked account as the worker reports it.

With ``--profile FILE`` the worker runs under py-spy during the backlog and the busiest functions (by
samples where they are on the stack, and by self time) are printed; the collapsed stacks stay in FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from bench.bench_detector import make_events
from detectors.events import decode_event
from sim.personas import COT_TEMPLATES, distill_pool
from stream.metrics import scrape
from stream.runtime import free_port
from stream.topics import group_lag

REPO = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"


async def produce(bootstrap: str, values: list[bytes]) -> None:
    """Load the backlog with aiokafka (kafka-python's producer manages ~2 MB/s of these events)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=50, max_batch_size=1 << 20)
    await producer.start()
    try:
        pending = []
        for value in values:
            key = orjson.loads(value)["account_id"].encode()
            pending.append(await producer.send("llm.requests", key=key, value=value))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def ceiling(bootstrap: str, n: int) -> float:
    """Events/s of an aiokafka consumer that fetches and decodes ``n`` events and does nothing else."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer("llm.requests", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"ceiling-{uuid.uuid4().hex[:6]}", max_partition_fetch_bytes=8 << 20,
                                fetch_max_bytes=64 << 20)  # fmt: skip
    await consumer.start()
    seen, started = 0, None
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if started is None and batches:
                started = time.perf_counter()
            for records in batches.values():
                for record in records:
                    decode_event(record.value)
                    seen += 1
    finally:
        await consumer.stop()
    return n / (time.perf_counter() - (started or time.perf_counter()))


def faust_ceiling(bootstrap: str, n: int, run: Path, *, table_writes: bool) -> float:
    """Events/s of ``bench.faust_ceiling`` (a Faust agent with the worker's settings that only decodes,
    optionally writing one state per account per batch) over ``n`` events of the backlog."""
    command = [sys.executable, "-m", "bench.faust_ceiling", "--broker", f"kafka://{bootstrap}", "--events", str(n),
               "--data-dir", str(run / f"faust-{table_writes}"), *["--table-writes"] * table_writes]  # fmt: skip
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when the agent reports (or the process dies)
            if "events_per_second=" in line:
                return float(line.rsplit("=", 1)[1])
        raise RuntimeError(f"bench.faust_ceiling exited with {proc.wait()} before reporting")
    finally:
        proc.kill()
        proc.wait()


def live_events(rate: float, seconds: float, seed: int = 3) -> list[tuple[float, bytes]]:
    """(send at, value): people plus 50 fast harvesters, stamped with the wall clock when sent."""
    rng = random.Random(seed)
    distill = distill_pool()
    start = time.time() + 2.0
    out = []
    for i in range(int(rate * seconds)):
        at = start + i / rate
        if rng.random() < 0.1:
            account, prompt = (
                f"live-harvester-{rng.randrange(50)}",
                COT_TEMPLATES[0].format(content=rng.choice(distill)),
            )
        else:
            account, prompt = f"live-user-{rng.randrange(20_000)}", rng.choice(distill)
        event = {"event_id": f"live-{i}", "ts": round(at, 3), "account_id": account, "model": "frontier-1",
                 "input_tokens": len(prompt) // 4, "output_tokens": 2000, "prompt": prompt,
                 "max_tokens": 8192}  # fmt: skip
        out.append((at, orjson.dumps(event)))
    return out


def send_live(bootstrap: str, events: list[tuple[float, bytes]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    for at, value in events:
        if (wait := at - time.time()) > 0:
            time.sleep(wait)
        producer.send("llm.requests", key=orjson.loads(value)["account_id"].encode(), value=value)
    producer.flush()
    producer.close()


def latencies(bootstrap: str, since: float) -> list[float]:
    """Seconds from each live decision's deciding event to its record on the throttle topic."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer("distillguard.throttle", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)  # fmt: skip
    out = []
    for record in consumer:
        if record.value is None:
            continue
        d = orjson.loads(record.value)
        if d["issued_at"] >= since and d["subject"]["id"].startswith("live-"):
            out.append(record.timestamp / 1000 - d["issued_at"])
    consumer.close()
    return out


def summarise_profile(path: Path, top: int = 15) -> str:
    """The functions most often on the stack, and most often on top of it, from py-spy's raw output."""
    from collections import Counter

    total, inclusive, own = 0, Counter[str](), Counter[str]()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    lines = [f"profile: {total} samples; on the stack / on top:"]
    for frame, n in inclusive.most_common(top):
        lines.append(f"  {100 * n / total:5.1f}%  {frame}")
    lines.append("  self time:")
    for frame, n in own.most_common(top):
        lines.append(f"  {100 * n / total:5.1f}%  {frame}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--live-seconds", type=float, default=30.0)
    parser.add_argument("--live-rate", type=float, default=2000.0)
    parser.add_argument("--batch-seconds", type=float, default=1.0, help="the worker's --batch-seconds")
    parser.add_argument("--profile", type=Path, help="run the worker under py-spy; collapsed stacks here")
    args = parser.parse_args(argv)

    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    run = Path(tempfile.mkdtemp(prefix="dg-bench-"))
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_RUN_DIR": str(run / "kafka")}
    subprocess.run([str(KAFKA_SH), "up"], env=env, check=True, stdout=subprocess.DEVNULL)
    worker = None
    try:
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic("llm.requests", num_partitions=8, replication_factor=1)])
        admin.close()
        values = make_events(args.events, args.accounts)
        print(f"loading {len(values):,} events ({sum(map(len, values)) / len(values):,.0f} bytes each) …", flush=True)
        asyncio.run(produce(bootstrap, values))

        rate_ceiling = asyncio.run(ceiling(bootstrap, len(values)))
        print(f"ceiling (aiokafka fetch + orjson decode + contract check): {rate_ceiling:,.0f} events/s", flush=True)

        n_faust = int(len(values) * 0.8)  # what is left after the first batch, which starts the clock
        rate_faust = faust_ceiling(bootstrap, n_faust, run, table_writes=False)
        rate_faust_tables = faust_ceiling(bootstrap, n_faust, run, table_writes=True)
        print(f"Faust ceiling (the worker's Faust settings, take_events + decode only): {rate_faust:,.0f} events/s; "
              f"with one table write per account per batch: {rate_faust_tables:,.0f} events/s", flush=True)  # fmt: skip

        app_id, metrics_port = f"bench-{uuid.uuid4().hex[:6]}", free_port()
        started = time.perf_counter()
        command = [
            sys.executable,
            "-m",
            "stream.cli",
            "worker",
            "--dev",
            "--broker",
            f"kafka://{bootstrap}",
            "--app-id",
            app_id,
            "--data-dir",
            str(run / "worker"),
            "--metrics-port",
            str(metrics_port),
            "--triage-port",
            "0",
            "--batch-seconds",
            str(args.batch_seconds),
        ]
        worker = subprocess.Popen(command, cwd=REPO, stdout=open(run / "worker.log", "wb"),
                                  stderr=subprocess.STDOUT)  # fmt: skip
        first, spy = None, None
        while (waiting := group_lag(bootstrap, app_id)) > 0:
            if first is None and waiting < len(values):
                first = time.perf_counter()  # processing has begun: start-up and rebalance are behind
                if args.profile:  # sample the busy worker for 20 s
                    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                                            str(worker.pid), "--duration", "20", "--rate", "50", "--format", "raw",
                                            "-o", str(args.profile)], stdout=subprocess.DEVNULL)  # fmt: skip
            time.sleep(0.5)
        if spy is not None:
            spy.wait(timeout=120)
        done = time.perf_counter()
        rate_worker = len(values) / (done - (first or started))
        print(f"worker, all detectors: {rate_worker:,.0f} events/s once started "
              f"({len(values) / (done - started):,.0f} including start-up); "
              f"ratio to the aiokafka ceiling {rate_worker / rate_ceiling:.2f}, "
              f"to Faust's with table writes {rate_worker / rate_faust_tables:.2f}", flush=True)  # fmt: skip
        tracked, state = (
            scrape(metrics_port, "distillguard_tracked_accounts"),
            scrape(metrics_port, "distillguard_state_bytes"),
        )
        if tracked:
            print(f"state: {tracked:,.0f} accounts tracked, {state / tracked:,.0f} bytes of packed state each")

        live = live_events(args.live_rate, args.live_seconds)
        since = live[0][0]
        send_live(bootstrap, live)
        time.sleep(5)
        lat = sorted(latencies(bootstrap, since))
        if lat:
            p50, p99 = statistics.median(lat), lat[min(len(lat) - 1, int(0.99 * len(lat)))]
            print(f"decision latency under {args.live_rate:,.0f} events/s, batches of up to {args.batch_seconds} s: "
                  f"p50 {p50:.2f} s, p99 {p99:.2f} s "
                  f"over {len(lat)} decisions")  # fmt: skip
        else:
            print("decision latency: no decisions in the live phase")
        if args.profile and args.profile.exists():
            print(summarise_profile(args.profile))
        return 0
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:  # never leave a worker behind the benchmark
                worker.kill()
                worker.wait()
        subprocess.run([str(KAFKA_SH), "down"], env=env, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
