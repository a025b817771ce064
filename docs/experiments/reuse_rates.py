"""Mean cross-account reuse share per family (the experiment of commit 4cf8bd4; runs at that commit).

    git checkout 4cf8bd4 && make setup && PYTHONHASHSEED=0 PYTHONPATH=. python docs/experiments/reuse_rates.py

Replays every family's world (seed 7) through the engine, as the fusion fit does, and prints per family
the mean of the ``reuse_rate`` window feature over its scored ticks (an attacker's from its first
harvesting request) and the share of ticks above 0.3. The decision it informed is in docs/detector.md.
"""

import tempfile
from pathlib import Path

import numpy as np

from sim.family import load_families
from sim.fusion_fit import INPUTS, world_ticks

with tempfile.TemporaryDirectory() as folder:
    _, _, _, ticks = world_ticks(load_families(), 7, Path(folder))
column, labels = list(INPUTS).index("reuse_rate"), ticks.label()
rows = {}
for family in sorted(set(ticks.family)):
    chosen = np.array([ticks.family[a] == family for a in ticks.account]) & (labels != -1)
    if chosen.any():
        x = ticks.x[chosen, column]
        rows[family] = (ticks.kind[ticks.account[chosen][0]], float(x.mean()), float((x > 0.3).mean()))
for family, (kind, mean, high) in sorted(rows.items(), key=lambda r: (r[1][0], -r[1][1])):
    print(f"{kind:7s} {family:28s} mean {mean:.3f}  ticks>0.3 {high:.3f}")
