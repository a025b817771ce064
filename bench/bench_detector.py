"""Benchmark of the detector core in offline replay: events/s on one core and bytes per tracked account.

    python -m bench.bench_detector [--events 200000] [--accounts 100000] [--profile]

Traffic: a realistic mix built from the real corpora (``sim.realdata``: ``sim/data``, or ``DISTILLGUARD_DATA``):
prompts of a few hundred words (a real prompt plus real context around it); 85% of events from
benign accounts whose activity is heavy-tailed (account rank ~ U^3: a few busy accounts, a long tail
of accounts with one or two requests a day, as API usage is), 15% from templated CoT harvesters.
Events are pre-encoded to JSON bytes, so the figure covers decode + validate + features + state +
scoring + policy, as in the worker.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import statistics
import time
import tracemalloc

import orjson

from detectors.engine import Engine, MemoryStore
from detectors.events import decode_event
from detectors.features import extract, load_phrasebook
from sim.personas import COT_TEMPLATES, benign_pool, distill_pool
from stream.runtime import tune_gc

T0 = 1_800_000_000.0 - 1_800_000_000.0 % 86_400


def long_prompt(rng: random.Random, pool: tuple[str, ...], words: int) -> str:
    """A real prompt with real context around it, until it has about ``words`` words."""
    parts = [rng.choice(pool)]
    while sum(len(p.split()) for p in parts) < words:
        parts.insert(0, f'Context: "{rng.choice(pool)}"')
    return "\n".join(parts)


def make_events(n_events: int, n_accounts: int, seed: int = 1, span_hours: float = 24.0) -> list[bytes]:
    rng = random.Random(seed)
    benign, distill = benign_pool(), distill_pool()
    n_attackers = max(1, n_accounts // 500)
    events: list[bytes] = []
    t = T0
    for i in range(n_events):
        t += rng.expovariate(n_events / (3600 * span_hours))  # a day of traffic unless told otherwise
        if rng.random() < 0.15:
            account = f"attacker-{rng.randrange(n_attackers)}"
            prompt = rng.choice(COT_TEMPLATES).format(content=long_prompt(rng, distill, rng.randint(100, 300)))
            extra = {"max_tokens": 8192, "user_agent": "python-httpx/0.27"}
        else:
            account = f"user-{int(n_accounts * rng.random() ** 3)}"
            prompt = long_prompt(rng, benign, rng.randint(100, 400))
            extra = {"n_messages": rng.choice((1, 3, 5)), "user_agent": "Mozilla/5.0"}
        event = {
            "event_id": f"e{i}", "ts": round(t, 3), "account_id": account, "model": "frontier-1",
            "input_tokens": len(prompt) // 4, "output_tokens": rng.randint(50, 3000), "prompt": prompt,
            "ip": f"198.51.{rng.randrange(256)}.{rng.randrange(256)}", **extra,
        }  # fmt: skip
        events.append(orjson.dumps(event))
    return events


def run(events: list[bytes], local_clusters: bool = True) -> tuple[float, Engine]:
    """Seconds to process ``events``. ``local_clusters``: the cluster stage in process, as replay runs
    it; else the per-account path as the worker's ``detect`` agent runs it, handing its cluster
    partials over once per batch (the stage is another agent there)."""
    engine = Engine(MemoryStore(), local_clusters=local_clusters)
    tune_gc()
    started = time.perf_counter()
    for i, raw in enumerate(events, 1):
        event = decode_event(raw)
        engine.process(event)
        if i % 5000 == 0:
            engine.flush()
            if not local_clusters:
                engine.drain_partials(float(event["ts"]))
    engine.flush()
    return time.perf_counter() - started, engine


def stages(events: list[bytes]) -> dict[str, float]:
    """µs per event of each stage, cumulative: decode; + features; + state, scoring and policy. Each
    event is decoded and dropped as in the engine's loop (a list of 200,000 decoded events would time the
    allocator and the cache misses instead)."""
    book = load_phrasebook()
    tune_gc()
    started = time.perf_counter()
    for raw in events:
        decode_event(raw)
    decode_us = (time.perf_counter() - started) / len(events) * 1e6
    started = time.perf_counter()
    for raw in events:
        extract(decode_event(raw), book)
    features_us = (time.perf_counter() - started) / len(events) * 1e6 - decode_us
    return {"decode_us": round(decode_us, 1), "features_us": round(features_us, 1)}


def bytes_per_account(n_accounts: int, events_per_account: int = 2, pool: int = 20) -> dict[str, float]:
    """Memory with ``n_accounts`` tracked: packed and heap bytes per account, and the cluster stage's
    share. One account in ten belongs to a pool of ``pool`` sharing a payment fingerprint (a cluster)."""
    rng = random.Random(2)
    prompts = [orjson.dumps({"event_id": f"p{i}", "ts": T0, "account_id": "x", "model": "frontier-1",
                             "input_tokens": 100, "output_tokens": 500, "prompt": rng.choice(benign_pool()),
                             "ip": f"203.0.113.{i % 256}"}) for i in range(64)]  # fmt: skip
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = MemoryStore()
    engine = Engine(store)
    for a in range(n_accounts):
        for j in range(events_per_account):
            event = decode_event(prompts[(a + j) % 64])
            event["account_id"], event["event_id"], event["ts"] = f"acct-{a}", f"{a}-{j}", T0 + a * 0.01 + j
            if a % 10 == 0:
                event["payment_fingerprint"] = f"card-{a // (10 * pool)}"
            engine.process(event)
        if a % 5000 == 0:
            engine.flush()
    engine.flush()
    heap = tracemalloc.get_traced_memory()[0] - before
    clusters_heap = sum(
        stat.size
        for stat in tracemalloc.take_snapshot()
        .filter_traces(
            [
                tracemalloc.Filter(True, "*/detectors/clusters.py"),
                tracemalloc.Filter(True, "*/detectors/cluster_stage.py"),
            ]
        )  # fmt: skip
        .statistics("filename")
    )
    tracemalloc.stop()
    clusters = engine.cluster_stage.linker.clusters(T0 + n_accounts * 0.01 + events_per_account)
    return {
        "packed_bytes_per_account": store.nbytes() / len(store),
        "heap_bytes_per_account": heap / len(store),
        "cluster_stage_bytes_per_account": clusters_heap / len(store),
        "clusters": len(clusters),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--state-accounts", default="", help="also measure memory at these counts, e.g. 1000000")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each mode (median reported)")
    parser.add_argument(
        "--span-hours", type=float, default=24.0,
        help="event time the events cover: the default day makes every request of a quiet account a scoring tick",
    )  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="print where the time goes")
    args = parser.parse_args()

    events = make_events(args.events, args.accounts, span_hours=args.span_hours)
    words = sum(len(orjson.loads(e)["prompt"].split()) for e in events[:2000]) / 2000
    # Modes alternate, so that a slow spell of the (virtual) machine hits both alike; medians are reported,
    # and the best runs: interference only ever slows a run down, so the quickest is nearest the code's own
    # speed on a core of its own (why timeit reports its minimum). On our shared VM, 20,000-event stretches
    # of one run of identical work range from 21,000 to 37,000 events/s, with no pattern from run to run.
    core_runs, account_runs = [], []
    for _ in range(args.repeat):
        core_runs.append(len(events) / run(events)[0])
        account_runs.append(len(events) / run(events, local_clusters=False)[0])
    rate, rate_account_path = statistics.median(core_runs), statistics.median(account_runs)
    seconds = len(events) / rate
    split = stages(events)
    split["state_scoring_policy_us"] = round(1e6 / rate - split["decode_us"] - split["features_us"], 1)
    memory = bytes_per_account(args.accounts)
    packed, heap = memory["packed_bytes_per_account"], memory["heap_bytes_per_account"]
    result = {
        "events": len(events), "mean_prompt_words": round(words), "seconds": round(seconds, 2),
        "events_per_second": round(rate), "us_per_event": round(1e6 / rate, 1),
        "events_per_second_account_path": round(rate_account_path),
        "runs_events_per_second": [round(r) for r in core_runs],
        "runs_events_per_second_account_path": [round(r) for r in account_runs],
        "best_events_per_second": round(max(core_runs)),
        "best_events_per_second_account_path": round(max(account_runs)),
        "accounts_tracked_for_memory": args.accounts, "packed_bytes_per_account": round(packed),
        "heap_bytes_per_account": round(heap),
        **split,
    }  # fmt: skip
    print(json.dumps(result))
    print(
        f"detector core: {rate:,.0f} events/s on one core, median of {args.repeat}, best {max(core_runs):,.0f} (runs "
        f"{', '.join(f'{r:,.0f}' for r in core_runs)}; {1e6 / rate:.1f} µs/event, prompts ~{words:.0f} words); "
        f"memory at {args.accounts:,} accounts: {packed:.0f} B packed state, {heap:.0f} B on the heap per "
        f"account (state + keys + store)"
    )
    print(
        f"per-account path alone (as the worker's detect agent runs it; the cluster stage is another "
        f"agent): {rate_account_path:,.0f} events/s, median of {args.repeat}, best {max(account_runs):,.0f} (runs "
        f"{', '.join(f'{r:,.0f}' for r in account_runs)}; {1e6 / rate_account_path:.1f} µs/event)"
    )
    print(
        f"per event: decode {split['decode_us']} µs, features from prompt text {split['features_us']} µs, "
        f"state + scoring + policy {split['state_scoring_policy_us']} µs"
    )
    for n in [args.accounts] + [int(x) for x in args.state_accounts.split(",") if x]:
        m = memory if n == args.accounts else bytes_per_account(n)
        print(f"memory at {n:,} accounts: {m['packed_bytes_per_account']:.0f} B packed state and "
              f"{m['heap_bytes_per_account']:.0f} B on the heap per account, of which the cluster stage "
              f"{m['cluster_stage_bytes_per_account']:.0f} B; {m['clusters']:,} clusters")  # fmt: skip
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(events[:50_000])
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue())


if __name__ == "__main__":
    main()
