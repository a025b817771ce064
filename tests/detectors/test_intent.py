"""The extraction-intent model: the C accelerator equals the reference definition, the fitted model loads
and scores like its definition, and it reads the request, not the topic."""

from __future__ import annotations

import random

import numpy as np
import pytest

from detectors import _intent, intent
from detectors.features import FAMILIES, extract, load_phrasebook
from detectors.intent import grams_reference, intent_text, load_intent, normalize_reference
from sim import realdata

MODEL = load_intent()


def random_texts(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    alphabet = list(b" aZ09,.!?\n\t-'") + [0xC3, 0xA9, 0xE4, 0xB8, 0xAD, 0xF0, 0x9F, 0x98, 0x80, 0x00, 0x7F, 0xFF]
    return [bytes(rng.choice(alphabet) for _ in range(rng.choice((0, 1, 2, 3, 5, 40, 300)))) for _ in range(n)]


def test_the_c_normalize_and_grams_are_the_reference_for_every_byte_and_length() -> None:
    texts = random_texts(3000, 1) + [bytes(range(256)), bytes(range(256)) * 3]
    texts += [t.lower().encode() for t in realdata.benign_prompts()[:500]]
    for raw in texts:
        norm = normalize_reference(raw)
        assert _intent.normalize(raw) == norm, raw
        for bits in (8, 16, 24):
            assert _intent.grams(norm, bits) == grams_reference(norm, bits), (raw, bits)


def test_the_c_logit_is_the_reference_score() -> None:
    rng = np.random.default_rng(3)
    weights = rng.normal(size=1 << 12).astype(np.float32)
    for text in random_texts(500, 2):
        norm = normalize_reference(text)
        found = grams_reference(norm, 12)
        assert _intent.logit(norm, weights, 12, 0.25) == 0.25 + intent.logit_sum(weights[found].tolist())
    with pytest.raises(ValueError, match="2\\*\\*bits"):
        _intent.logit(b" a ", weights, 13, 0.0)


def test_the_model_scores_the_same_without_the_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = list(realdata.benign_prompts()[:200]) + ["Show your work, step by step.", "请详细写出推理过程"]
    fast = [MODEL.score(p, "You are an expert.", 5) for p in prompts]
    monkeypatch.setattr(intent, "_intent", None)
    slow = [MODEL.score(p, "You are an expert.", 5) for p in prompts]
    assert slow == fast  # to the last bit: a score near a threshold must not decide differently


def test_the_fitted_model_loads_whole_and_finite() -> None:
    assert MODEL.weights.shape == (1 << MODEL.bits,) and np.isfinite(MODEL.weights).all()
    assert 0 < MODEL.threshold < 1 and len(MODEL.family_weights) == len(FAMILIES)
    assert MODEL.version.startswith("intent-")


@pytest.mark.parametrize(
    "prompt",
    [
        "Write a Python function that reverses a linked list.",
        "What is the capital of Australia?",
        "Translate 'good morning' into Italian.",
        "Summarize this article in three bullet points.",
    ],
)
def test_ordinary_requests_about_the_same_content_stay_below_the_threshold(prompt: str) -> None:
    assert MODEL.score(prompt) < MODEL.threshold


@pytest.mark.parametrize(
    ("prompt", "system"),
    [
        ("Write a Python function that reverses a linked list. Think step by step and explain your reasoning.", ""),
        ("What is the capital of Australia?", "Always explain your reasoning in detail before answering."),
        ("Evaluate the response below on a scale of 1 to 10 and explain the score.\nResponse: Paris.", ""),
    ],
)
def test_the_same_content_asking_for_the_reasoning_goes_over_it(prompt: str, system: str) -> None:
    families = load_phrasebook().hits(prompt)[0] | load_phrasebook().hits(system)[0]
    assert MODEL.score(prompt, system, families) >= MODEL.threshold


def test_a_request_cot_is_the_models_score_over_its_threshold_else_zero() -> None:
    book = load_phrasebook()
    asked = extract(
        {"prompt": "Explain your reasoning step by step: 2+2?", "input_tokens": 5, "output_tokens": 9}, book
    )
    plain = extract({"prompt": "2+2?", "input_tokens": 5, "output_tokens": 9}, book)
    assert asked.cot >= MODEL.threshold and plain.cot == 0.0


def test_intent_text_reads_the_system_prompt_first_and_masks_digits() -> None:
    assert intent_text("Q: 12+30?", "Be brief.") == b" be brief q 00 00 "


def test_the_extractor_scores_from_the_phrase_scans_cuts_exactly_as_the_model_scores_the_texts() -> None:
    book = load_phrasebook()
    prompts = list(realdata.benign_prompts()[:300]) + ["Explain your reasoning step by step. " * 80, "ΣΟΦΙΑ " * 300]
    systems = ["", "You are an expert. Show every step.", "x" * 5000]
    for i, prompt in enumerate(prompts):
        system = systems[i % len(systems)]
        families = book.hits(prompt)[0] | (book.hits(system)[0] if system else 0)
        p = MODEL.score(prompt, system, families)
        event = {"prompt": prompt, "system": system, "input_tokens": 10, "output_tokens": 10}
        assert extract(event, book).cot == (p if p >= MODEL.threshold else 0.0), prompt[:60]
