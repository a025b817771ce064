"""The labelled corpus of the extraction-intent model: requests that ask a model to expose its reasoning or
produce training data (1) and ordinary requests on the same content (0), built reproducibly from the
files in ``sim/data``.

Positives and negatives share their base prompts (real questions, coding tasks, prompt-library entries),
so the model must learn the request, not the topic. The **train** split uses only the training side of
``sim/data/split.toml`` and this project's phrasings (``sim/data/intent_phrasings.toml``); the **test**
split uses only what training never sees: the evaluation sources (FLAN's cues and templates, MGSM's
native cues, four judge suites, three data-generation toolkits), the red team's own phrasings
(``sim/redteam.py``) and base prompts held out by hash.
"""

from __future__ import annotations

import random
import re
import tomllib
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sim import realdata

__all__ = ["Example", "examples", "phrasings"]

PHRASINGS = Path(__file__).parent / "data" / "intent_phrasings.toml"
_PLACEHOLDER = re.compile(r"\{\{?\s*[\w.]+\s*\}?\}")


@dataclass(frozen=True)
class Example:
    prompt: str
    system: str
    label: int  # 1: extraction intent
    source: str  # where its wording comes from (the unit of held-out reporting)
    lang: str
    split: str  # train | test

    @property
    def validation(self) -> bool:
        """Part of the train split kept out of fitting to choose settings and the threshold: the training
        side's corpus sources (a held-out family of their own) and a fifth of its base prompts."""
        return self.split == "train" and (
            self.source.startswith("train:") or (self.label == 0 and _bucket(self.prompt) == 1)
        )


@cache
def phrasings() -> dict[str, object]:
    return tomllib.loads(PHRASINGS.read_text())


def _bucket(text: str) -> int:
    return zlib.crc32(text.encode("utf-8", "replace")) % 5


def _held_out(text: str) -> bool:
    """A fifth of the base prompts are kept for the test split, chosen by hash (stable across runs)."""
    return _bucket(text) == 0


def _bases(split: str) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """(English base prompts, base prompts by language, coding tasks) of one split."""
    want = split == "test"
    english = [p for p in realdata.benign_prompts() if _held_out(p) == want and len(p) < 2000]
    by_lang = {lang: [t for t in texts if _held_out(t) == want] for lang, texts in realdata.by_language().items()}
    code = [p for p in realdata.distill_prompts() if _held_out(p) == want]
    return english, by_lang, code


def _fill(template: str, rng: random.Random, pool: list[str]) -> str:
    return _PLACEHOLDER.sub(lambda _: rng.choice(pool)[:500], template)


def _wrap(ask: str, base: str, rng: random.Random) -> tuple[str, str]:
    """(prompt, system): the ask after the base, before it, or as the system prompt."""
    where = rng.random()
    if where < 0.45:
        return f"{base}\n\n{ask}", ""
    if where < 0.8:
        return f"{ask}\n\n{base}", ""
    return base, ask


@cache
def _persona_wrappers() -> tuple[str, ...]:
    from sim import personas, redteam

    red = set().union(*(_shingles(t) for t in redteam.PHRASINGS))
    return tuple(w for w in personas.COT_TEMPLATES + personas.ROTATING_TEMPLATES if not _shingles(w) & red)


def _shingles(text: str, k: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}


def _grammar_ask(rng: random.Random) -> str:
    g = phrasings()["grammar"]
    assert isinstance(g, dict)
    words = [rng.choice(g[part]) for part in ("openers", "verbs", "objects", "qualifiers")]
    text = " ".join(w for w in words if w)
    return text[0].upper() + text[1:] + "."


def _train(rng: random.Random) -> list[Example]:
    english, by_lang, code = _bases("train")
    content = english + code
    p = phrasings()
    out: list[Example] = []
    positive = p["positive"]
    assert isinstance(positive, dict)
    for family in ("cot", "reconstruct", "debug", "grader", "datagen"):
        for _ in range(1500 if family == "cot" else 500):
            prompt, system = _wrap(rng.choice(positive[family]), rng.choice(content), rng)
            out.append(Example(prompt, system, 1, f"project:{family}", "en", "train"))
    for _ in range(600):
        out.append(Example(rng.choice(content), rng.choice(positive["system"]), 1, "project:system", "en", "train"))
    for _ in range(1500):
        prompt, system = _wrap(_grammar_ask(rng), rng.choice(content), rng)
        out.append(Example(prompt, system, 1, "project:grammar", "en", "train"))
    # The project's own personas are training families (detectors/rules/provenance.toml): their campaign
    # wrappers are positives, their agents' and reviewers' templates negatives. A wrapper sharing five
    # words with the red team's phrasings stays out, so the held-out families stay unseen.
    for wrapper in _persona_wrappers():
        for _ in range(60):
            out.append(Example(wrapper.format(content=rng.choice(content)), "", 1, "project:personas", "en", "train"))
    from sim import personas

    for _ in range(300):
        out.append(Example(rng.choice(code), personas._AGENT_SYSTEM, 0, "project:personas", "en", "train"))
        out.append(Example(personas._CI_TEMPLATE.format(content=rng.choice(code)), "", 0, "project:personas", "en",
                           "train"))  # fmt: skip
    for lang, asks in positive["lang"].items():
        pool = by_lang.get(lang) or english
        for _ in range(250):
            prompt, system = _wrap(rng.choice(asks), rng.choice(pool), rng)
            out.append(Example(prompt, system, 1, "project:lang", lang, "train"))
    corpus = [
        ("extraction_cot_triggers.jsonl", "cot_trigger", 400),
        ("extraction_cot_templates.jsonl", "cot_template", 400),
        ("extraction_judge_prompts.jsonl", "judge_prompt", 500),
        ("extraction_datagen_meta_prompts.jsonl", "datagen_meta_prompt", 500),
    ]
    for name, kind, n in corpus:
        rows = realdata.extraction_rows(name, role="train", kind=kind)
        for _ in range(n):
            row = rng.choice(rows)
            pool = by_lang.get(row.get("lang", "en")) or content
            text = row["text"]
            if _PLACEHOLDER.search(text):
                out.append(Example(_fill(text, rng, pool), "", 1, f"train:{kind}", row.get("lang", "en"), "train"))
            else:
                prompt, system = _wrap(text, rng.choice(pool), rng)
                out.append(Example(prompt, system, 1, f"train:{kind}", row.get("lang", "en"), "train"))
    negatives = p["negative"]
    assert isinstance(negatives, dict)
    for base in rng.sample(content, min(len(content), 5000)):
        out.append(Example(base, "", 0, "base", "en", "train"))
    for _ in range(3000):
        prompt, system = _wrap(rng.choice(negatives["wrappers"]), rng.choice(content), rng)
        out.append(Example(prompt, system if not system else "", 0, "project:negative", "en", "train"))
    for lang, texts in by_lang.items():
        for base in texts[:150]:
            out.append(Example(base, "", 0, "base", lang, "train"))
    library = [t for t in realdata.library_prompts() if not _held_out(t)]
    for base in library:
        out.append(Example(base, "", 0, "library", "en", "train"))
    return out


def _test(rng: random.Random) -> list[Example]:
    from sim import redteam

    english, by_lang, code = _bases("test")
    content = english + code
    out: list[Example] = []
    for row in realdata.extraction_rows("extraction_cot_triggers.jsonl", role="eval", kind="cot_trigger"):
        lang = row.get("lang", "en")
        pool = by_lang.get(lang) or english
        for _ in range(6 if lang == "en" else 40):
            prompt, system = _wrap(row["text"], rng.choice(pool), rng)
            source = "eval:FLAN cues" if lang == "en" else "eval:MGSM native cues"
            out.append(Example(prompt, system, 1, source, lang, "test"))
    for row in realdata.extraction_rows("extraction_cot_templates.jsonl", role="eval", kind="cot_template"):
        for _ in range(3):
            out.append(Example(_fill(row["text"], rng, english), "", 1, "eval:FLAN templates", "en", "test"))
    held_out = (
        ("extraction_judge_prompts.jsonl", "judge_prompt", "eval:judge suites"),
        ("extraction_datagen_meta_prompts.jsonl", "datagen_meta_prompt", "eval:datagen toolkits"),
    )
    for name, kind, label in held_out:
        for row in realdata.extraction_rows(name, role="eval", kind=kind):
            lang = row.get("lang", "en")
            for _ in range(8):
                out.append(Example(_fill(row["text"], rng, by_lang.get(lang) or content), "", 1, label, lang, "test"))
    red_systems = redteam._REASONING_CODER_SYSTEMS + redteam._EXPLAINER_SYSTEMS + redteam._FAKE_DEBUG
    for _ in range(600):
        out.append(Example(rng.choice(content), rng.choice(red_systems), 1, "red-team:system prompts", "en", "test"))
        prompt, system = _wrap(redteam._paraphrased_ask(rng), rng.choice(content), rng)
        out.append(Example(prompt, system, 1, "red-team:paraphrase grammar", "en", "test"))
    for lang, ask in redteam._NATIVE_ASKS.items():
        pool = by_lang.get(lang) or english
        for _ in range(80):
            prompt, system = _wrap(ask, rng.choice(pool), rng)
            out.append(Example(prompt, system, 1, "red-team:native asks", lang, "test"))
    for base in content:
        out.append(Example(base, "", 0, "held-out base prompts", "en", "test"))
    for lang, texts in by_lang.items():
        for base in texts:
            out.append(Example(base, "", 0, "held-out base prompts", lang, "test"))
    for base in (t for t in realdata.library_prompts() if _held_out(t)):
        out.append(Example(base, "", 0, "held-out base prompts", "en", "test"))
    return out


def examples(seed: int = 0) -> list[Example]:
    """Both splits, reproducibly: the same files and seed give the same examples."""
    rng = random.Random(seed)
    return _train(rng) + _test(rng)
