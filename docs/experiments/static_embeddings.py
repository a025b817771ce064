"""One-off comparison (2026-12-06, issue 20): does a static sentence embedding carry the extraction-intent
signal to held-out phrasings better than the hashed n-gram model? Not part of the package or the tests
(it needs `pip install wordllama==0.4.0.post1`, whose wheel ships the l2_supercat 256-d token embeddings
and tokenizer; its own loader tries Hugging Face, so the files are read directly). Run from the repo root:

    PYTHONPATH=. python docs/experiments/static_embeddings.py

Same corpus, splits, fit and threshold rule (1% of validation negatives) as `python -m sim.intent_fit`.
Results and the decision: docs/detector.md, "Static embeddings, measured".
"""

from __future__ import annotations

import os
import re

import numpy as np
import wordllama  # type: ignore[import-not-found]
from intent_held_out import compare, ngram_logit, splits  # type: ignore[import-not-found]
from safetensors.numpy import load_file  # type: ignore[import-not-found]
from tokenizers import Tokenizer  # type: ignore[import-not-found]

from detectors.intent import intent_text
from sim.intent_corpus import Example

HOME = os.path.dirname(wordllama.__file__)
TOKENIZER = Tokenizer.from_file(f"{HOME}/tokenizers/l2_supercat_tokenizer_config.json")
TABLE = load_file(f"{HOME}/weights/l2_supercat_256.safetensors")["embedding.weight"].astype(np.float32)
SENTENCES = re.compile(r"(?<=[.!?。？！\n])\s+|\n+")


def unit_mean(texts: list[str]) -> np.ndarray:
    """Each text's tokens' vectors, averaged and normalised (wordllama's own pooling)."""
    out = np.zeros((len(texts), TABLE.shape[1]), np.float32)
    for i, enc in enumerate(TOKENIZER.encode_batch(texts, add_special_tokens=False)):
        if enc.ids:
            v = TABLE[enc.ids[:512]].mean(0)
            out[i] = v / (np.linalg.norm(v) + 1e-9)
    return out


def sentence_extremes(texts: list[str]) -> np.ndarray:
    """Elementwise max and min over the text's sentences' vectors: the ask is usually one sentence."""
    out = np.zeros((len(texts), 2 * TABLE.shape[1]), np.float32)
    for i, text in enumerate(texts):
        vectors = unit_mean([s for s in SENTENCES.split(text) if s.strip()][:64] or [text])
        out[i] = np.concatenate([vectors.max(0), vectors.min(0)])
    return out


def main() -> None:
    parts = splits()

    def texts(batch: list[Example]) -> list[str]:
        return [intent_text(e.prompt, e.system).decode("utf-8", "replace") for e in batch]

    compare(parts, "n-gram model (as shipped)", lambda b: ngram_logit(b)[:, None] / 10)
    compare(parts, "mean embedding", lambda b: unit_mean(texts(b)))
    compare(parts, "mean embedding + n-gram logit",
            lambda b: np.hstack([unit_mean(texts(b)), ngram_logit(b)[:, None] / 10]))  # fmt: skip
    compare(parts, "sentence max/min", lambda b: sentence_extremes(texts(b)))
    compare(parts, "sentence max/min + n-gram logit",
            lambda b: np.hstack([sentence_extremes(texts(b)), ngram_logit(b)[:, None] / 10]))  # fmt: skip


if __name__ == "__main__":
    main()
