"""Where the extraction-intent model stands: held-out quality beside the phrase lists, and what it costs.

    python -m bench.bench_intent [--events 120000] [--rounds 3]

1. On the corpus's held-out test split (``sim/intent_corpus.py``: sources, phrasings and base prompts the
   fit never saw), per source and per language: ROC-AUC and recall at the model's threshold, beside the
   phrase lists (the figures ``sim.intent_fit`` writes into ``detectors/rules/intent.toml``).
2. The model's cost per request as deployed (text cut and normalization, hashing, the logit), in µs.
3. Replay throughput with the model and with the phrase lists alone, alternating in one process on the
   same stream (the first ``--events`` events of the acceptance world), so the two see the same machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

from detectors.config import load_scoring
from detectors.engine import Engine, MemoryStore
from detectors.events import decode_event
from detectors.features import load_phrasebook
from detectors.intent import intent_text, load_intent
from sim.intent_corpus import examples
from sim.intent_fit import phrase_lists, report, table


def cost_us(prompts: list[tuple[str, str]]) -> float:
    model = load_intent()
    started = time.perf_counter()
    for prompt, system in prompts:
        model.score_text(intent_text(prompt, system))
    return (time.perf_counter() - started) / len(prompts) * 1e6


def replay_rate(lines: list[bytes], with_model: bool) -> float:
    book = load_phrasebook()
    engine = Engine(MemoryStore(), load_scoring(), book=book if with_model else dataclasses.replace(book, intent=None))
    started = time.perf_counter()
    for raw in lines:
        engine.process(decode_event(raw))
    return len(lines) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    test = [e for e in examples() if e.split == "test"]
    print("## Held-out quality (test split)\n")
    print(table(report(test, load_intent(), phrase_lists(test))))

    prompts = [(e.prompt, e.system) for e in test]
    print(f"\n## Cost: {statistics.median(cost_us(prompts) for _ in range(3)):.1f} µs per request "
          f"(median of 3 passes over {len(prompts)} held-out requests, mean length "
          f"{sum(len(p) + len(s) for p, s in prompts) / len(prompts):.0f} characters)")  # fmt: skip

    from sim.family import load_families, world
    from sim.scenario import write
    from stream.replay import read_lines

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.jsonl.gz"
        write(world(load_families()), path, Path(tmp) / "l.jsonl")
        lines = list(itertools.islice(read_lines(path), args.events))
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for with_model in (False, True):
            rates[with_model].append(replay_rate(lines, with_model))
    print(f"\n## Replay throughput, {len(lines):,} events of the acceptance world, {args.rounds} alternating rounds\n")
    for with_model, label in ((False, "phrase lists alone"), (True, "with the intent model")):
        runs = ", ".join(f"{r:,.0f}" for r in rates[with_model])
        print(f"- {label}: median {statistics.median(rates[with_model]):,.0f} events/s ({runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
