"""What the intent-model experiments share: the corpus's splits, the shipped n-gram model's logit, and one
comparison — a linear model fitted on some inputs, thresholded at 1% of validation negatives and reported
per held-out source and language, as `python -m sim.intent_fit` does. Imported by the scripts beside it
(run from the repo root with `PYTHONPATH=.`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import cache

import numpy as np
from scipy import sparse

from detectors.intent import IntentModel, load_intent
from sim.intent_corpus import Example, examples
from sim.intent_fit import family_bits, fit, roc_auc

Inputs = Callable[[list[Example]], np.ndarray]


def splits() -> dict[str, list[Example]]:
    """The examples fitted on, the validation part (threshold) and the held-out test split."""
    corpus = examples()
    return {
        "fit": [e for e in corpus if e.split == "train" and not e.validation],
        "validation": [e for e in corpus if e.validation],
        "test": [e for e in corpus if e.split == "test"],
    }


@cache
def _shipped() -> IntentModel:
    return load_intent()


def ngram_logit(batch: list[Example]) -> np.ndarray:
    """The shipped model's logit for each request."""
    model = _shipped()
    scores = np.array([model.score(e.prompt, e.system, f) for e, f in zip(batch, family_bits(batch), strict=True)])
    return np.log(scores + 1e-12) - np.log(1 - scores + 1e-12)


def compare(parts: dict[str, list[Example]], name: str, inputs: Inputs, l2: float = 1e-4) -> None:
    """Fit on ``inputs`` of the fitting part, threshold at 1% of validation negatives, print the held-out
    recall and ROC-AUC per source and per language."""
    labels = {k: np.array([e.label for e in b], float) for k, b in parts.items()}
    x = {k: inputs(b) for k, b in parts.items()}
    w, b = fit(sparse.csr_matrix(x["fit"]), labels["fit"], l2)
    s = {k: v @ w.astype(float) + b for k, v in x.items()}
    negatives = np.sort(s["validation"][labels["validation"] == 0])
    threshold = negatives[int(0.99 * len(negatives))]
    y, t = labels["test"], s["test"]
    print(f"{name}: validation ROC-AUC {roc_auc(s['validation'], labels['validation']):.3f}, "
          f"held-out FPR {float((t[y == 0] >= threshold).mean()):.4f}")  # fmt: skip
    members: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(parts["test"]):
        if e.label == 1:
            members[e.source].append(i)
            members[f"lang:{e.lang}"].append(i)
    for source, idx in sorted(members.items()):
        mask = np.zeros(len(y), bool)
        mask[idx] = True
        both = mask | (y == 0)
        recall = float((t[idx] >= threshold).mean())
        print(f"  {source:45s} ROC-AUC {roc_auc(t[both], y[both]):.3f}  recall {recall:.3f}")
