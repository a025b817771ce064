"""The intent model's corpus: training never sees a held-out source, phrasing or base prompt, and the fitted
file is what its command produces."""

from __future__ import annotations

import re

import numpy as np

from detectors.intent import load_intent
from sim import realdata, redteam
from sim.intent_corpus import examples, phrasings
from sim.intent_fit import train

CORPUS = examples()
#: The extraction corpora the split divides by source, and the kind of row each holds.
EXTRACTION_FILES = (
    ("extraction_cot_triggers.jsonl", "cot_trigger"),
    ("extraction_cot_templates.jsonl", "cot_template"),
    ("extraction_judge_prompts.jsonl", "judge_prompt"),
    ("extraction_datagen_meta_prompts.jsonl", "datagen_meta_prompt"),
)


def shingles(text: str, k: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}


def test_training_uses_no_evaluation_source() -> None:
    held = realdata.eval_sources()
    for name, _ in EXTRACTION_FILES:
        for row in realdata.extraction_rows(name, role="eval"):
            assert row["source"].split(":")[0] in held
        for row in realdata.extraction_rows(name, role="train"):
            assert row["source"].split(":")[0] not in held
    training_text = " ".join(e.prompt + " " + e.system for e in CORPUS if e.split == "train")
    for row in realdata.extraction_rows("extraction_cot_templates.jsonl", role="eval")[:50]:
        head = row["text"][:60]
        if len(head) > 40:
            assert head not in training_text  # no held-out template slipped into training


def test_the_projects_training_phrasings_share_no_five_words_with_the_red_teams_or_the_held_out_sources() -> None:
    ours: set[tuple[str, ...]] = set()
    for value in (phrasings()["positive"], phrasings()["negative"], phrasings()["grammar"]):
        assert isinstance(value, dict)
        for texts in value.values():
            for text in texts.values() if isinstance(texts, dict) else texts:
                for t in text if isinstance(text, list) else [text]:
                    ours |= shingles(t)
    for name, kind in EXTRACTION_FILES:  # nor with the held-out sources' own wording
        for row in realdata.extraction_rows(name, role="eval", kind=kind):
            assert not shingles(row["text"]) & ours, row["name"]
    from sim.intent_corpus import _persona_wrappers

    for wrapper in _persona_wrappers():  # the project's persona wrappers it trains on, too
        ours |= shingles(wrapper)
    for text in redteam.PHRASINGS:
        assert not shingles(text) & ours, text


def test_train_and_test_base_prompts_are_disjoint() -> None:
    bases = {(e.split, e.prompt) for e in CORPUS if e.label == 0 and e.source in ("base", "held-out base prompts")}
    train = {p for s, p in bases if s == "train"}
    test = {p for s, p in bases if s == "test"}
    assert train and test and not train & test


def test_test_positives_come_only_from_held_out_sources_and_phrasings() -> None:
    sources = {e.source for e in CORPUS if e.split == "test" and e.label == 1}
    assert sources and all(s.startswith(("eval:", "red-team:")) for s in sources)
    assert {e.lang for e in CORPUS if e.split == "test" and e.label == 1} >= {"en", "zh", "es", "de", "fr", "ja",
                                                                               "ru", "pt"}  # fmt: skip


def test_the_shipped_model_is_what_its_command_fits() -> None:
    shipped = load_intent()
    model, _, _ = train(shipped.bits, 3e-5)
    assert abs(model.threshold - shipped.threshold) < 1e-3 and abs(model.bias - shipped.bias) < 1e-3
    assert np.allclose(model.weights, shipped.weights, atol=1e-3)
