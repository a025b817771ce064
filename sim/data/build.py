"""Rebuild the prompt data shipped in this folder from the full real-data corpus.

    python -m sim.data.build /path/to/shared/data/real

Only files and rows whose license permits redistribution in an Apache-2.0 project are copied (MIT,
Apache-2.0, CC0, CC-BY; CC-BY-SA rows go to ``cc-by-sa/`` under their own license). Rows are sampled
with fixed seeds, so the same corpus gives the same bytes. Research-only, non-commercial, GPL and
"no license" material is never copied: read it at run time with ``DISTILLGUARD_DATA`` instead.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent

#: Licenses (as the corpus writes them, prefix match) that may be copied here.
PERMISSIVE = ("MIT", "Apache-2.0", "CC0", "CC-BY-4.0", "CC BY 4.0")
SHARE_ALIKE = ("CC-BY-SA", "CC BY-SA")
#: Rows the corpus marks with one of these words are never copied, whatever else the license says.
EXCLUDED_WORDS = ("research only", "non-commercial", "GPL", "none stated", "no data license", "Llama 2")

#: file -> (rows to keep at most, per-language cap or None, license files to copy beside it)
BENIGN: dict[str, tuple[int, int | None, tuple[str, ...]]] = {
    "benign_arena_hard_prompts.jsonl": (500, None, ("LICENSE_arena-hard-auto.txt",)),
    "benign_mtbench_vicuna_questions.jsonl": (200, None, ("LICENSE_FastChat.txt",)),
    "benign_ja_questions.jsonl": (
        200,
        None,
        ("LICENSE_ja-vicuna-qa-benchmark.txt", "LICENSE_Stability-AI-FastChat.txt"),
    ),
    "benign_awesome_chatgpt_prompts.jsonl": (400, None, ("LICENSE_awesome-chatgpt-prompts.txt",)),
    "benign_awesome_chatgpt_prompts_zh.jsonl": (250, None, ("LICENSE_awesome-chatgpt-prompts-zh.txt",)),
    "benign_gsm8k_questions.jsonl": (800, None, ("LICENSE_grade-school-math.txt",)),
    "benign_mgsm_questions.jsonl": (1100, 100, ("LICENSE_mgsm.txt",)),
    "benign_nq_open_queries.jsonl": (800, None, ("LICENSE_natural-questions.txt",)),
    "benign_xquad_questions.jsonl": (1200, 100, ("LICENSE_xquad.txt",)),
}
EXTRACTION = {
    "extraction_cot_triggers.jsonl": ("LICENSE_FLAN.txt", "LICENSE_mgsm.txt", "LICENSE_opro.txt"),
    "extraction_cot_templates.jsonl": (
        "LICENSE_FLAN.txt",
        "LICENSE_BIG-Bench-Hard.txt",
        "LICENSE_reasoning-teacher.txt",
        "LICENSE_mgsm.txt",
        "LICENSE_ceval.txt",
        "LICENSE_distilabel.txt",
    ),
    "extraction_datagen_meta_prompts.jsonl": (
        "LICENSE_WizardLM.txt",
        "LICENSE_camel.txt",
        "LICENSE_magicoder.txt",
        "LICENSE_airoboros.txt",
        "LICENSE_distilabel.txt",
        "LICENSE_Chinese-LLaMA-Alpaca.txt",
        "LICENSE_UltraFeedback.txt",
    ),
    "extraction_judge_prompts.jsonl": (
        "LICENSE_FastChat.txt",
        "LICENSE_ja-vicuna-qa-benchmark.txt",
        "LICENSE_Stability-AI-FastChat.txt",
        "LICENSE_arena-hard-auto.txt",
        "LICENSE_prometheus-eval.txt",
        "LICENSE_JudgeLM.txt",
        "LICENSE_PandaLM.txt",
        "LICENSE_WildBench.txt",
        "LICENSE_geval.txt",
        "LICENSE_UltraFeedback.txt",
        "LICENSE_distilabel.txt",
        "LICENSE_airoboros.txt",
    ),
}
CODEGEN = ("distill_gpteacher_codegen.json", 1200, "LICENSE_gpteacher.txt")
TRACE = ("trace_azure_llm_conv_2023.csv", "LICENSE_azure-public-dataset.txt")


def license_class(license: str) -> str | None:
    """'permissive', 'share-alike' or None (not to be copied)."""
    if any(word.lower() in license.lower() for word in EXCLUDED_WORDS):
        return None
    if license.startswith(SHARE_ALIKE):
        return "share-alike"
    if license.startswith(PERMISSIVE):
        return "permissive"
    return None


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(path, "wb", mtime=0) as out:  # mtime 0: the same rows give the same bytes
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True).encode() + b"\n")


def _sample(rows: list[dict[str, Any]], keep: int, per_lang: int | None, seed: str) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    if per_lang:
        by_lang: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_lang.setdefault(row.get("lang", "en"), []).append(row)
        rows = [r for lang in sorted(by_lang) for r in rng.sample(by_lang[lang], min(per_lang, len(by_lang[lang])))]
    return rows if len(rows) <= keep else rng.sample(rows, keep)


def build(source: Path) -> list[str]:
    """Copy the permitted samples; returns one line per file written."""
    done = []
    licenses: dict[str, set[str]] = {"permissive": set(), "share-alike": set()}
    for name, (keep, per_lang, lic) in BENIGN.items():
        rows = [r for r in _rows(source / name) if license_class(r.get("license", "")) is not None]
        kinds = {license_class(r["license"]) for r in rows}
        assert len(kinds) == 1, f"{name}: mixed licenses {kinds}"
        kind = kinds.pop()
        assert kind is not None
        folder = HERE if kind == "permissive" else HERE / "cc-by-sa"
        sample = _sample(rows, keep, per_lang, name)
        _write(folder / f"{name}.gz", sample)
        licenses[kind].update(lic)
        done.append(f"{folder.name}/{name}.gz {len(sample)} rows ({kind})")
    for name, lic in EXTRACTION.items():
        rows = [r for r in _rows(source / name) if license_class(r.get("license", "")) == "permissive"]
        _write(HERE / f"{name}.gz", rows)
        licenses["permissive"].update(lic)
        done.append(f"{name}.gz {len(rows)} rows (permissive rows only)")
    code_name, code_keep, code_license = CODEGEN
    rows = json.loads((source / code_name).read_text(encoding="utf-8"))
    sample = random.Random(code_name).sample(rows, code_keep)
    _write(
        HERE / f"{code_name}l.gz",
        [{**r, "license": "MIT", "source": "teknium1/GPTeacher:Codegen/codegen-instruct.json"} for r in sample],
    )
    licenses["permissive"].add(code_license)
    done.append(f"{code_name}l.gz {len(sample)} rows")
    trace = TRACE[0]
    with gzip.GzipFile(HERE / f"{trace}.gz", "wb", mtime=0) as out:
        out.write((source / trace).read_bytes())
    done.append(f"{trace}.gz (whole trace)")
    for kind, names in licenses.items():
        folder = HERE if kind == "permissive" else HERE / "cc-by-sa"
        (folder / "licenses").mkdir(parents=True, exist_ok=True)
        for lic_name in sorted(names):
            if (source / lic_name).exists():
                shutil.copyfile(source / lic_name, folder / "licenses" / lic_name)
    return done


if __name__ == "__main__":
    for line in build(Path(sys.argv[1])):
        print(line)
