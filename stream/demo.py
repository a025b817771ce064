"""``make demo``: the whole system on one machine, for a newcomer, in about five minutes.

It starts Kafka, a distillguard worker and the reference gateway; simulates ``sim/scenarios/demo.toml``
(twenty hours of people, agents, an aggregator, a proxy reseller's customers and three campaigns);
backfills the history straight to Kafka; sends the last minutes live through the gateway with a progress
line; prints decisions as they arrive on ``distillguard.throttle``; and ends with the evaluation
summary (detector decisions against the ground-truth labels) and what the gateway actually served to
the attackers. Everything it started is stopped at the end; its files stay in ``.run/demo``.

    make demo                       # DEMO_LIVE_SECONDS=150 by default
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import orjson

from stream.runtime import free_port

REPO = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"
SCENARIO = REPO / "sim" / "scenarios" / "demo.toml"
HISTORY_HOURS = 20.0
MAX_ROWS = 40  # decision rows printed live; the rest are counted
ORDER = ("observe", "challenge", "limit", "block")


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    out: IO[bytes] = open(log, "wb")
    return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def _row(d: dict[str, Any]) -> str:
    where = f" [{d['cluster_id'][:11]}]" if d.get("cluster_id") else ""
    return f"  {d['subject']['id']:<26} {d['action']:<10} {d['score']:>5.2f}  {', '.join(d['reason'][:3])}{where}"


async def _watch_decisions(
    bootstrap: str, decisions: list[dict[str, Any]], live: asyncio.Event, stop: asyncio.Event
) -> None:
    """Once ``live`` is set, print each account's first decision of each action as it arrives (those of
    the backfill are summarised instead); keep every decision for the evaluation."""
    from aiokafka import AIOKafkaConsumer

    from stream.topics import THROTTLE

    consumer = AIOKafkaConsumer(THROTTLE.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    shown: set[tuple[str, str]] = set()
    printed = 0
    try:
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.value is None:
                        continue  # a tombstone: a decision lifted
                    d = orjson.loads(record.value)
                    decisions.append(d)
                    key = (d["subject"]["id"], d["action"])
                    if key in shown:
                        continue
                    shown.add(key)
                    if live.is_set():
                        printed += 1
                        if printed <= MAX_ROWS:
                            print(_row(d), flush=True)
                        elif printed == MAX_ROWS + 1:
                            print(f"  … further new decisions are counted, not printed (see {THROTTLE.name})")
    finally:
        await consumer.stop()


async def _live(bootstrap: str, url: str, backfill: list[dict[str, Any]], live: list[dict[str, Any]],
                decisions: list[dict[str, Any]], seconds: float) -> Any:  # fmt: skip
    from sim.send import Delivery, to_gateway, to_kafka

    stop, going_live = asyncio.Event(), asyncio.Event()
    watcher = asyncio.create_task(_watch_decisions(bootstrap, decisions, going_live, stop))
    print(f"[4/6] backfilling {len(backfill):,} events of history straight to Kafka …", flush=True)
    await asyncio.to_thread(to_kafka, backfill, bootstrap)
    await asyncio.sleep(10)  # the worker catches up with the history
    strongest: dict[str, str] = {}
    for d in decisions:
        now = strongest.get(d["subject"]["id"], "observe")
        strongest[d["subject"]["id"]] = max(now, d["action"], key=ORDER.index)
    print(f"      the history gave {len(decisions):,} decisions on {len(strongest)} accounts; strongest action "
          f"per account: {dict(Counter(strongest.values()))}", flush=True)  # fmt: skip
    going_live.set()
    offset = time.time() - live[0]["ts"] if live else 0.0
    for event in live:  # the live part starts now; the evaluation sees the times the gateway stamps
        event["ts"] = round(event["ts"] + offset, 3)
    print(f"[5/6] {len(live):,} requests live through the gateway over {seconds:.0f} s:", flush=True)
    print(f"  {'account':<26} {'action':<10} {'score':>5}  top reasons [cluster]", flush=True)
    last = [time.monotonic()]

    def progress(d: Delivery) -> None:
        if time.monotonic() - last[0] >= 15:
            last[0] = time.monotonic()
            print(f"  ~ {d.sent:,}/{len(live):,} requests sent; responses {dict(sorted(d.statuses.items()))}; "
                  f"{len(decisions)} decisions", flush=True)  # fmt: skip

    delivery = await to_gateway(live, url, progress=progress)
    await asyncio.sleep(10)  # decisions on the last requests
    stop.set()
    await watcher
    return delivery


def main() -> int:
    from sim.scenario import load_scenario, write
    from stream.evaluate import evaluate, format_report
    from stream.topics import REQUESTS, THROTTLE, wait_for_topics

    seconds = float(os.environ.get("DEMO_LIVE_SECONDS", "150"))
    port = os.environ.get("KAFKA_PORT", "9092")
    bootstrap = f"127.0.0.1:{port}"
    run = REPO / ".run" / "demo"
    env = {**os.environ, "KAFKA_PORT": port, "KAFKA_RUN_DIR": str(run / "kafka")}
    subprocess.run(["rm", "-rf", str(run)], check=True)
    run.mkdir(parents=True)
    print(f"[1/6] starting Apache Kafka on {bootstrap} …", flush=True)
    subprocess.run([str(KAFKA_SH), "up"], env=env, check=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        gateway_port = free_port()
        print(f"[2/6] starting the worker and the reference gateway on :{gateway_port} (logs in {run}) …")
        procs.append(_start(["stream.cli", "worker", "--dev", "--broker", f"kafka://{bootstrap}", "--data-dir",
                             str(run / "worker"), "--metrics-port", "0"], run / "worker.log"))  # fmt: skip
        wait_for_topics(bootstrap, {REQUESTS.name, THROTTLE.name}, timeout=120)
        procs.append(_start(["gateway.server", "--dev", "--broker", bootstrap, "--port", str(gateway_port),
                             "--trust-edge-headers"], run / "gateway.log"))  # fmt: skip

        now = time.time()
        scenario = dataclasses.replace(load_scenario(SCENARIO), start=now - HISTORY_HOURS * 3600)
        events_path, labels_path = run / "events.jsonl", run / "labels.jsonl"
        write(scenario, events_path, labels_path)
        events = [orjson.loads(line) for line in events_path.read_bytes().splitlines()]
        backfill = [e for e in events if e["ts"] < now]
        live = [e for e in events if now <= e["ts"] < now + seconds]
        kinds = Counter(orjson.loads(line)["population"] for line in labels_path.read_bytes().splitlines())
        print(f"[3/6] simulated {len(events):,} events of {sum(kinds.values())} accounts: "
              + ", ".join(f"{n} {k}" for k, n in kinds.items()), flush=True)  # fmt: skip

        decisions: list[dict[str, Any]] = []
        url = f"http://127.0.0.1:{gateway_port}/v1/messages"
        delivery = asyncio.run(_live(bootstrap, url, backfill, live, decisions, seconds))

        print("[6/6] evaluation: every decision against the ground-truth labels", flush=True)
        seen = run / "events-seen.jsonl"  # what the detector saw: history, then the live part as sent
        seen.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in backfill + live))
        decided = run / "decisions.jsonl"
        decided.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in decisions))
        print(format_report(evaluate(seen, labels_path, decided)))
        labels = [orjson.loads(line) for line in labels_path.read_bytes().splitlines()]
        attackers = {r["account_id"] for r in labels if r["kind"] == "attack"}
        wanted = sum(v for a, v in delivery.wanted_tokens.items() if a in attackers)
        served = sum(v for a, v in delivery.served_tokens.items() if a in attackers)
        print(f"\nthrough the gateway (live part): attackers asked for {wanted:,} output tokens and were served "
              f"{served:,}; responses {dict(sorted(delivery.statuses.items()))}")  # fmt: skip
        print(f"files: {run} (events, labels, decisions, worker.log, gateway.log)")
        return 0
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run([str(KAFKA_SH), "down"], env=env)


if __name__ == "__main__":
    sys.exit(main())
