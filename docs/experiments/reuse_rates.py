import tempfile
from pathlib import Path

import numpy as np

from sim.family import load_families
from sim.fusion_fit import INPUTS, world_ticks

with tempfile.TemporaryDirectory() as d:
    _, _, n, t = world_ticks(load_families(), 7, Path(d))
j = list(INPUTS).index("reuse_rate")
lab = t.label()
acc = t.account
rows = {}
for fam in sorted(set(t.family)):
    sel = np.array([t.family[a] == fam for a in acc]) & (lab != -1)
    if sel.sum() == 0:
        continue
    kind = t.kind[acc[sel][0]]
    x = t.x[sel, j]
    rows[fam] = (kind, float(x.mean()), float((x > 0.3).mean()))
for fam, (k, m, f) in sorted(rows.items(), key=lambda r: (r[1][0], -r[1][1])):
    print(f"{k:7s} {fam:28s} mean {m:.3f}  ticks>0.3 {f:.3f}")
