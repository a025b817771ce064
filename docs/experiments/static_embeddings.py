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
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import wordllama  # type: ignore[import-not-found]
from safetensors.numpy import load_file  # type: ignore[import-not-found]
from scipy import sparse
from tokenizers import Tokenizer  # type: ignore[import-not-found]

from detectors.intent import intent_text, load_intent
from sim.intent_corpus import Example, examples
from sim.intent_fit import family_bits, fit, roc_auc

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
    corpus = examples()
    splits = {
        "fit": [e for e in corpus if e.split == "train" and not e.validation],
        "validation": [e for e in corpus if e.validation],
        "test": [e for e in corpus if e.split == "test"],
    }
    labels = {k: np.array([e.label for e in b], float) for k, b in splits.items()}
    model = load_intent()

    def texts(batch: list[Example]) -> list[str]:
        return [intent_text(e.prompt, e.system).decode("utf-8", "replace") for e in batch]

    def ngram_logit(batch: list[Example]) -> np.ndarray:
        scores = np.array([model.score(e.prompt, e.system, f) for e, f in zip(batch, family_bits(batch), strict=True)])
        return np.log(scores + 1e-12) - np.log(1 - scores + 1e-12)

    def compare(name: str, inputs: Callable[[list[Example]], np.ndarray]) -> None:
        x = {k: inputs(b) for k, b in splits.items()}
        w, b = fit(sparse.csr_matrix(x["fit"]), labels["fit"], 1e-4)
        s = {k: v @ w.astype(float) + b for k, v in x.items()}
        negatives = np.sort(s["validation"][labels["validation"] == 0])
        threshold = negatives[int(0.99 * len(negatives))]
        y, t = labels["test"], s["test"]
        print(f"{name}: validation ROC-AUC {roc_auc(s['validation'], labels['validation']):.3f}, "
              f"held-out FPR {float((t[y == 0] >= threshold).mean()):.4f}")  # fmt: skip
        members: dict[str, list[int]] = defaultdict(list)
        for i, e in enumerate(splits["test"]):
            if e.label == 1:
                members[e.source].append(i)
        for source, idx in sorted(members.items()):
            mask = np.zeros(len(y), bool)
            mask[idx] = True
            both = mask | (y == 0)
            recall = float((t[idx] >= threshold).mean())
            print(f"  {source:45s} ROC-AUC {roc_auc(t[both], y[both]):.3f}  recall {recall:.3f}")

    compare("n-gram model (as shipped)", lambda b: ngram_logit(b)[:, None] / 10)
    compare("mean embedding", lambda b: unit_mean(texts(b)))
    compare("mean embedding + n-gram logit", lambda b: np.hstack([unit_mean(texts(b)), ngram_logit(b)[:, None] / 10]))
    compare("sentence max/min", lambda b: sentence_extremes(texts(b)))
    compare("sentence max/min + n-gram logit",
            lambda b: np.hstack([sentence_extremes(texts(b)), ngram_logit(b)[:, None] / 10]))  # fmt: skip


if __name__ == "__main__":
    main()
