"""``make demo``: start Kafka and a worker, send a small mixed stream, print decisions as they arrive.

A first look for newcomers; the full simulator and evaluation replace the traffic here later.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"


def traffic(seed: int = 7) -> list[tuple[bytes, bytes]]:
    """A day of twenty people, a step-by-step researcher and a coding agent, plus one hour of a CoT
    harvester and one malformed record; time-ordered, ending now."""
    from sim import personas as P

    rng = random.Random(seed)
    start = time.time() - 86_400
    streams = [P.chat_user(f"user-{i:02d}", rng, start, days=1) for i in range(20)]
    streams.append(P.cot_researcher("researcher-1", rng, start, days=1))
    streams.append(P.coding_agent("agent-ci-3", rng, start + 80_000, days=0.05))
    streams.append(P.cot_harvester("harvester-7", rng, start + 82_000, hours=1))
    records = [(str(e["account_id"]).encode(), orjson.dumps(e)) for e in P.merged(streams)]
    records.insert(len(records) // 2, (b"broken-gateway", b'{"event_id": 17, "ts": "yesterday"}'))
    return records


def main() -> int:
    from kafka import KafkaConsumer, KafkaProducer

    from stream.topics import REQUESTS, THROTTLE, wait_for_topics

    port = os.environ.get("KAFKA_PORT", "9092")
    bootstrap = f"127.0.0.1:{port}"
    run = REPO / ".run" / "demo"
    env = {**os.environ, "KAFKA_PORT": port, "KAFKA_RUN_DIR": str(run / "kafka")}
    subprocess.run(["rm", "-rf", str(run)], check=True)
    print(f"[1/4] starting Apache Kafka on {bootstrap} …", flush=True)
    subprocess.run([str(KAFKA_SH), "up"], env=env, check=True)
    worker = None
    try:
        print("[2/4] starting the distillguard worker …", flush=True)
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stream.cli",
                "worker",
                "--broker",
                f"kafka://{bootstrap}",
                "--data-dir",
                str(run / "worker"),
                "--metrics-port",
                "0",
            ],
            cwd=REPO,
            stdout=open(run / "worker.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        wait_for_topics(bootstrap, {REQUESTS.name, THROTTLE.name}, timeout=120)
        records = traffic()
        print(
            f"[3/4] sending {len(records)} request events (20 people, a researcher, a coding agent, "
            "1 harvester, 1 broken record) …"
        )
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        for i, (key, value) in enumerate(records, 1):
            producer.send(REQUESTS.name, key=key, value=value)
            if i % 200 == 0 or i == len(records):
                print(f"      {i}/{len(records)} sent", end="\r", flush=True)
        producer.flush()
        print("\n[4/4] decisions on distillguard.throttle (waiting 20 s):")
        print(f"      {'account':<14} {'action':<10} {'score':>6}  reasons / evidence")
        consumer = KafkaConsumer(
            THROTTLE.name,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=20_000,
        )
        for message in consumer:
            d = orjson.loads(message.value) if message.value else None
            if d is None:
                continue  # a tombstone: a decision lifted
            print(f"      {d['subject']['id']:<14} {d['action']:<10} {d['score']:>6.2f}  {', '.join(d['reason'])}",
                  flush=True)  # fmt: skip
        consumer.close()
        print(
            "done: the people, the researcher and the agent got no enforcing decision; the broken record "
            "is on llm.requests.dlq."
        )
        return 0
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=60)
        subprocess.run([str(KAFKA_SH), "down"], env=env)


if __name__ == "__main__":
    sys.exit(main())
