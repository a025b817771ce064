"""Real prompt corpora and a real arrival trace, read at run time.

By default from the samples shipped in ``sim/data`` (permissively licensed, rebuilt by
``python -m sim.data.build``), so a fresh clone simulates the same traffic as CI. ``DISTILLGUARD_DATA``
points at a larger copy of the same files (such as ``../shared/data/real``) for bigger simulations.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import tomllib
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

__all__ = [
    "DATA_DIR",
    "azure_gaps",
    "azure_minute_profile",
    "azure_tokens",
    "azure_trace",
    "benign_prompts",
    "by_language",
    "distill_prompts",
    "eval_sources",
    "extraction_rows",
    "library_prompts",
    "math_questions",
    "rows",
]

SHIPPED = Path(__file__).parent / "data"
DATA_DIR = Path(os.environ.get("DISTILLGUARD_DATA") or SHIPPED)


def _path(name: str) -> Path:
    """A corpus file by its name in the full corpus; the shipped copy is gzipped, share-alike ones apart."""
    for candidate in (DATA_DIR / name, DATA_DIR / f"{name}.gz", DATA_DIR / "cc-by-sa" / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{name} is in neither {DATA_DIR} nor its cc-by-sa/ folder (DISTILLGUARD_DATA)")


def _text(path: Path) -> str:
    raw = path.read_bytes()
    return (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8", errors="replace")


@cache
def rows(name: str) -> tuple[dict[str, Any], ...]:
    """Every JSON object of a JSONL corpus file; lines that do not parse (a few have bad escapes) skipped."""
    out = []
    for line in _text(_path(name)).splitlines():
        try:
            row = json.loads(line, strict=False)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("text", row.get("instruction")), str):
            out.append(row)
    return tuple(out)


def _texts(name: str) -> list[str]:
    return [r["text"] for r in rows(name) if r["text"].strip()]


@cache
def benign_prompts() -> tuple[str, ...]:
    """What people ask a chat model: Arena-Hard and MT-bench prompts, search queries, homework questions."""
    return tuple(_texts("benign_arena_hard_prompts.jsonl") + _texts("benign_mtbench_vicuna_questions.jsonl")
                 + _texts("benign_nq_open_queries.jsonl") + _texts("benign_gsm8k_questions.jsonl")
                 + [r["text"] for r in rows("benign_xquad_questions.jsonl") if r["lang"] == "en"])  # fmt: skip


@cache
def library_prompts() -> tuple[str, ...]:
    """Prompt-library entries people paste ("I want you to act as …"), English and Chinese."""
    return tuple(_texts("benign_awesome_chatgpt_prompts.jsonl") + _texts("benign_awesome_chatgpt_prompts_zh.jsonl"))


@cache
def by_language() -> dict[str, tuple[str, ...]]:
    """Benign questions people wrote or translated, by ISO 639-1 language."""
    out: dict[str, list[str]] = {}
    for name in ("benign_mgsm_questions.jsonl", "benign_xquad_questions.jsonl", "benign_ja_questions.jsonl",
                 "benign_awesome_chatgpt_prompts_zh.jsonl"):  # fmt: skip
        for r in rows(name):
            out.setdefault(r.get("lang", "en"), []).append(r["text"])
    return {lang: tuple(texts) for lang, texts in sorted(out.items())}


@cache
def math_questions() -> dict[str, tuple[str, ...]]:
    """Grade-school maths word problems by language (GSM8K in English, MGSM's human translations)."""
    out: dict[str, list[str]] = {"en": _texts("benign_gsm8k_questions.jsonl")}
    for r in rows("benign_mgsm_questions.jsonl"):
        out.setdefault(r["lang"], []).append(r["text"])
    return {lang: tuple(texts) for lang, texts in sorted(out.items())}


@cache
def distill_prompts() -> tuple[str, ...]:
    """Coding instructions generated to harvest a teacher model (GPTeacher codegen, instruction + input)."""
    path = _path("distill_gpteacher_codegen.json") if (DATA_DIR / "distill_gpteacher_codegen.json").exists() \
        else _path("distill_gpteacher_codegen.jsonl")  # fmt: skip
    text = _text(path)
    records = json.loads(text) if path.name.endswith(".json") else [json.loads(x) for x in text.splitlines() if x]
    return tuple(f"{r['instruction']}\n{r.get('input', '')}".strip() for r in records if r.get("instruction"))


def extraction_rows(name: str, role: str | None = None, **match: str) -> tuple[dict[str, Any], ...]:
    """Rows of an ``extraction_*`` file whose fields equal ``match`` (e.g. ``kind="cot_trigger"``); with
    ``role`` "eval" or "train", only rows of that side of ``sim/data/split.toml``."""
    held = eval_sources()
    return tuple(r for r in rows(name) if all(r.get(k) == v for k, v in match.items())
                 and (role is None or (_repo(r) in held) == (role == "eval")))  # fmt: skip


def _repo(row: dict[str, Any]) -> str:
    return str(row.get("source", "")).split(":")[0]


@cache
def eval_sources() -> frozenset[str]:
    """Source repositories reserved for the held-out evaluation (``sim/data/split.toml``)."""
    return frozenset(tomllib.loads((SHIPPED / "split.toml").read_text())["eval"]["sources"])


@cache
def azure_trace() -> tuple[tuple[float, int, int], ...]:
    """(seconds since the first request, context tokens, generated tokens) of the Azure LLM trace."""
    from datetime import datetime

    out = []
    for row in csv.DictReader(io.StringIO(_text(_path("trace_azure_llm_conv_2023.csv")))):
        when = datetime.fromisoformat(row["TIMESTAMP"][:26]).timestamp()
        out.append((when, int(row["ContextTokens"]), int(row["GeneratedTokens"])))
    t0 = out[0][0]
    return tuple((t - t0, c, g) for t, c, g in out)


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
