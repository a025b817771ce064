"""Read the real prompt corpora from ``../shared/data/real`` at run time (never copied into the repo)."""

from __future__ import annotations

import json
import os
from functools import cache
from itertools import pairwise
from pathlib import Path

__all__ = [
    "DATA_DIR",
    "MISSING",
    "available",
    "azure_gaps",
    "azure_minute_profile",
    "azure_tokens",
    "azure_trace",
    "benign_prompts",
    "distill_prompts",
]

DATA_DIR = Path(os.environ.get("DISTILLGUARD_REAL_DATA",
                               Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))  # fmt: skip
MISSING = f"real data folder {DATA_DIR} is absent (set DISTILLGUARD_REAL_DATA)"


def available() -> bool:
    return (DATA_DIR / "benign_instructionwild_twitter.jsonl").exists()


def _jsonl_field(name: str, field: str) -> list[str]:
    """One string field of a JSONL file; lines that are not valid JSON (a few have bad escapes) are skipped."""
    out = []
    for line in (DATA_DIR / name).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            value = json.loads(line, strict=False).get(field)
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(value, str) and value.strip():
            out.append(value)
    return out


@cache
def benign_prompts() -> tuple[str, ...]:
    """Prompts real users wrote (InstructionWild: Twitter and cookup.ai shares)."""
    return tuple(_jsonl_field("benign_instructionwild_twitter.jsonl", "instruction")
                 + _jsonl_field("benign_instructionwild_cookup.jsonl", "instruction"))  # fmt: skip


@cache
def distill_prompts() -> tuple[str, ...]:
    """Content used to harvest a teacher model: GPTeacher codegen instructions (+ input) and Alpaca seeds."""
    rows = json.loads((DATA_DIR / "distill_gpteacher_codegen.json").read_text())
    prompts = [f"{r['instruction']}\n{r['input']}".strip() for r in rows if r.get("instruction")]
    return tuple(prompts + _jsonl_field("distill_alpaca_seed_tasks.jsonl", "instruction"))


@cache
def azure_trace() -> tuple[tuple[float, int, int], ...]:
    """(seconds since the first request, context tokens, generated tokens) of the Azure LLM trace."""
    from datetime import datetime

    rows = []
    lines = (DATA_DIR / "trace_azure_llm_conv_2023.csv").read_text().splitlines()[1:]
    for line in lines:
        stamp, ctx, gen = line.split(",")
        when = datetime.fromisoformat(stamp[:26]).timestamp()
        rows.append((when, int(ctx), int(gen)))
    t0 = rows[0][0]
    return tuple((t - t0, c, g) for t, c, g in rows)


@cache
def azure_gaps() -> tuple[float, ...]:
    """Inter-arrival gaps of the Azure trace scaled to mean 1: multiply by a mean gap to get gaps with the
    real trace's burstiness (its spread and long tail) instead of a textbook exponential."""
    times = [t for t, _, _ in azure_trace()]
    gaps = [b - a for a, b in pairwise(times) if b > a]
    mean = sum(gaps) / len(gaps)
    return tuple(g / mean for g in gaps)


@cache
def azure_minute_profile() -> tuple[float, ...]:
    """Requests per minute over the trace's hour, scaled so the busiest minute is 1 (for thinning)."""
    counts = [0] * 60
    for t, _, _ in azure_trace():
        if t < 3600:
            counts[int(t // 60)] += 1
    peak = max(counts)
    return tuple(max(c, 1) / peak for c in counts)


@cache
def azure_tokens() -> tuple[tuple[int, int], ...]:
    """(context tokens, generated tokens) pairs of real conversation requests."""
    return tuple((c, g) for _, c, g in azure_trace() if c > 0)
