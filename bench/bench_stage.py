"""Benchmark of the sharded cluster stage: what each link shard and the merging stage cost, by shards.

    python -m bench.bench_stage [--scenario sim/scenarios/hydra.toml] [--shards 1 2 4]

The account side runs once, as the worker's ``detect`` agents would on 8 partitions (partials drained
every second of event time); its partials are then fed, as JSON (as they travel over Kafka), to ``S``
link shards and their links to one merging stage, which ticks as the worker's does. Printed per ``S``:
the busiest shard's seconds and target hits (linking is the per-event work a shard takes), the merging
stage's seconds and link deltas (what is left on one process), and its ticks (scoring clusters: per
minute of event time, not per event, and the same with or without shards). The stage scales out when the
busiest shard's share falls with ``S`` and the merge stays small beside it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import orjson

from detectors.cluster_stage import ClusterStage, LinkShard, split_partial
from detectors.clusters import load_clusters
from detectors.config import load_scoring
from detectors.engine import Engine, MemoryStore
from sim.scenario import generate, load_scenario
from stream.runtime import tune_gc

ROOT = Path(__file__).resolve().parents[1]


def partials(events: list[dict[str, Any]], batch: int = 0, partitions: int = 8) -> list[bytes]:
    """The account stages' partials as the worker sends them (JSON): drained once a second of event time,
    or, with ``batch``, once every ``batch`` events (a busy worker's batches, whatever the simulated rate)."""
    engine = Engine(MemoryStore(), local_clusters=False)
    out: list[bytes] = []
    offsets = [0] * partitions
    drained_at = events[0]["ts"] if events else 0.0
    for event in events:
        p = hash(event["account_id"]) % partitions
        offsets[p] += 1
        engine.process(event, partition=p, offset=offsets[p])
        if (offsets[p] % batch == 0) if batch else (event["ts"] - drained_at >= 1.0):
            drained_at = event["ts"]
            out += [orjson.dumps(m) for m in engine.drain_partials(event["ts"])]
    return out


def run(messages: list[bytes], shards: int) -> dict[str, float]:
    cfg, scoring = load_clusters(), load_scoring()
    links = [LinkShard(cfg, k) for k in range(shards)]
    stage = ClusterStage(cfg, scoring.policy, scoring.anomaly, merging=True)
    shard_seconds, hits, offsets = [0.0] * shards, [0] * shards, [0] * shards
    to_merge: list[bytes] = []
    merge_seconds, tick_seconds, deltas, verdicts = 0.0, 0.0, 0, 0
    for raw in messages:
        for k, piece in split_partial(orjson.loads(raw), shards):  # the account side's split (not timed)
            encoded = orjson.dumps(piece)
            offsets[k] += 1
            started = time.perf_counter()
            message = orjson.loads(encoded)
            links[k].merge(message)
            to_merge.append(orjson.dumps(links[k].drain(seq=offsets[k])))
            shard_seconds[k] += time.perf_counter() - started
            hits[k] += sum(len(targets) for _, _, targets in message["obs"])
        started = time.perf_counter()
        for out in to_merge:
            message = orjson.loads(out)
            deltas += len(message["links"])
            stage.merge(message)
        to_merge.clear()
        merge_seconds += time.perf_counter() - started
        if stage.due(stage.latest):
            started = time.perf_counter()
            verdicts += len(stage.tick(stage.latest))
            tick_seconds += time.perf_counter() - started
    busiest = max(range(shards), key=lambda k: shard_seconds[k])
    return {"busiest_shard_s": shard_seconds[busiest], "busiest_shard_hits": hits[busiest],
            "all_shards_s": sum(shard_seconds), "merge_s": merge_seconds, "link_deltas": deltas,
            "tick_s": tick_seconds, "verdicts": verdicts}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(ROOT / "sim" / "scenarios" / "hydra.toml"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch", type=int, default=0, help="drain the account side every N events (0: every second)")
    args = parser.parse_args()
    tune_gc()
    events, _ = generate(load_scenario(args.scenario, seed=args.seed))
    recorded = list(events)
    messages = partials(recorded, args.batch)
    print(f"{len(recorded)} events, {len(messages)} partials from 8 account partitions")
    print("| shards | busiest shard s (target hits) | all shards s | merge s (link deltas) | ticks s (verdicts) |")
    print("|---|---|---|---|---|")
    for shards in args.shards:
        r = run(messages, shards)
        busiest = f"{r['busiest_shard_s']:.2f} ({int(r['busiest_shard_hits']):,})"
        merge, ticks = f"{r['merge_s']:.2f} ({int(r['link_deltas']):,})", f"{r['tick_s']:.2f} ({int(r['verdicts']):,})"
        print(f"| {shards} | {busiest} | {r['all_shards_s']:.2f} | {merge} | {ticks} |")


if __name__ == "__main__":
    main()
