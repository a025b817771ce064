"""Instructions per event of the detector core, counted by valgrind's callgrind: the same figure on every
run, however busy or slow the (virtual) machine is, so a change's effect can be read off one pair of runs.

    python -m bench.bench_instructions [--events 30000]

The first ``--events`` events of ``bench_detector``'s stream (200,000 events of 100,000 accounts over a
day) are written to a temporary file. Two runs under callgrind, side by side (counts do not depend on
what else runs), load them with a fixed hash seed and build an engine; one also processes them. The
difference, divided by the events, is the core's work per event: decode, features, state, scoring ticks,
decisions and the in-process cluster stage. It does not see what instructions cost (cache misses, a slow
spell of the VM), which is what ``bench_detector`` measures. Like it, this reads the corpora through
``sim.realdata`` (the samples shipped in ``sim/data`` unless ``DISTILLGUARD_DATA`` names a larger copy,
which makes a different mix and a different count).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.bench_detector import make_events, run


def instructions(events_file: str, process: bool) -> int:
    """Instructions callgrind counts for a child that loads ``events_file`` and, if ``process``, runs it."""
    child = [sys.executable, "-m", "bench.bench_instructions", "--child", events_file] + (
        ["--process"] if process else []
    )
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *child],
        env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"I\s+refs:\s*([\d,]+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        events = pickle.loads(Path(args.child).read_bytes())  # noqa: S301 - the file this module just wrote
        run(events if args.process else [])  # both build an engine (compiling the phrase book is ~0.9e9)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian package valgrind)")
    events = make_events(200_000, 100_000)[: args.events]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.pickle"
        path.write_bytes(pickle.dumps(events))
        with ThreadPoolExecutor(2) as pool:
            base, total = pool.map(lambda process: instructions(str(path), process), (False, True))
    per_event = (total - base) / len(events)
    print(json.dumps({"events": len(events), "instructions_per_event": round(per_event)}))
    print(f"detector core: {per_event:,.0f} instructions per event (callgrind, the first {len(events):,} events)")


if __name__ == "__main__":
    main()
