"""Fit the extraction-intent model on the corpus's train split and report it on the held-out test split.

    python -m sim.intent_fit [--bits 18] [--l2 1e-4] [--write]     # --write: detectors/rules/intent.{toml,npz}

Features are :func:`detectors.intent.grams` of each request (hashed byte 3-5-grams and words), each
occurrence worth ``1 / sqrt(#grams)``; the model is an L2-regularised logistic regression fitted with
L-BFGS (SciPy, which River already brings). Settings (``--bits``, ``--l2``) are chosen with ``--validation-only``
on the train split's validation part (its corpus sources and a fifth of its base prompts, never fitted);
the threshold at which a request counts as extraction-style is the score 1% of the validation negatives
reach. The test split never sets a number. The report —
ROC-AUC and recall at that threshold per held-out source and language, beside the phrase lists — is what
``bench/bench_intent.py`` prints too; the written TOML keeps it with the command and the commit.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

import numpy as np
from scipy import optimize, sparse

from detectors.config import RULES_DIR
from detectors.intent import IntentModel, grams, intent_text
from sim.intent_corpus import Example, examples

__all__ = ["features", "fit", "report", "roc_auc"]

VERSION = "intent-1"


def features(batch: list[Example], bits: int) -> sparse.csr_matrix:
    """One row per example: each feature occurrence adds 1 / sqrt(#features of the example); then one
    0/1 column per phrase family (``features.FAMILIES``) after the ``2**bits`` hashed ones."""
    from detectors.features import FAMILIES

    indptr, indices, values = [0], [], []
    for e, families in zip(batch, family_bits(batch), strict=True):
        found = grams(intent_text(e.prompt, e.system), bits)
        indices += found
        values += [1.0 / np.sqrt(len(found))] * len(found) if found else []
        hits = [(1 << bits) + i for i in range(len(FAMILIES)) if families >> i & 1]
        indices += hits
        values += [1.0] * len(hits)
        indptr.append(len(indices))
    matrix = sparse.csr_matrix((np.array(values, np.float64), np.array(indices), np.array(indptr)),
                               shape=(len(batch), (1 << bits) + len(FAMILIES)))  # fmt: skip
    matrix.sum_duplicates()
    return matrix


def fit(x: sparse.csr_matrix, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """(weights, bias) minimising the mean log-loss (classes weighted equally) plus ``l2 / 2 * |w|^2``."""
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean())) / len(y)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        z = x @ w + b
        p = 1 / (1 + np.exp(-z))
        value = float(np.sum(weight * (np.logaddexp(0, z) - y * z)) + l2 / 2 * w @ w)
        g = weight * (p - y)
        return value, np.concatenate([x.T @ g + l2 * w, [g.sum()]])

    result = optimize.minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B",
                               options={"maxiter": 400})  # fmt: skip
    return result.x[:-1].astype(np.float32), float(result.x[-1])


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """The probability that a random positive outscores a random negative (ties count half).

    >>> roc_auc(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0]))
    0.75
    """
    pos, neg = scores[labels == 1], scores[labels == 0]
    if not len(pos) or not len(neg):
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    values = np.concatenate([pos, neg])
    for v in np.unique(values):  # average ranks of ties
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def report(test: list[Example], model: IntentModel, phrase_scores: np.ndarray | None = None) -> dict[str, Any]:
    """Per held-out source and per language: ROC-AUC and recall at the model's threshold (against every
    held-out negative), beside the phrase lists (a hit of any CoT family)."""
    scores = np.array([model.score(e.prompt, e.system, f) for e, f in zip(test, family_bits(test), strict=True)])
    labels = np.array([e.label for e in test])
    negatives = scores[labels == 0]
    out: dict[str, Any] = {"fpr_at_threshold": float((negatives >= model.threshold).mean()), "sources": {},
                           "languages": {}}  # fmt: skip
    phrase = phrase_scores if phrase_scores is not None else np.zeros(len(test))
    phrase_fpr = float((phrase[labels == 0] > 0).mean())
    out["phrase_lists_fpr"] = phrase_fpr
    for key in ("sources", "languages"):
        members: dict[str, list[int]] = defaultdict(list)
        for i, e in enumerate(test):
            if e.label == 1:
                members[e.source if key == "sources" else e.lang].append(i)
        for name, idx in sorted(members.items()):
            mask = np.zeros(len(test), bool)
            mask[idx] = True
            both = mask | (labels == 0)
            out[key][name] = {
                "n": len(idx),
                "roc_auc": round(roc_auc(scores[both], labels[both]) or 0.0, 4),
                "recall": round(float((scores[idx] >= model.threshold).mean()), 4),
                "phrase_roc_auc": round(roc_auc(phrase[both], labels[both]) or 0.0, 4),
                "phrase_recall": round(float((phrase[idx] > 0).mean()), 4),
            }
    return out


def family_bits(batch: list[Example]) -> list[int]:
    """Each example's phrase-family bits, as ``features.extract`` finds them (prompt and system)."""
    from detectors.features import load_phrasebook

    book = load_phrasebook()
    return [book.hits(e.prompt)[0] | (book.hits(e.system)[0] if e.system else 0) for e in batch]


def phrase_lists(batch: list[Example]) -> np.ndarray:
    """The phrase lists' request-level CoT score (0 when no family hits), for the comparison."""
    from detectors.features import load_phrasebook

    book = load_phrasebook()
    return np.array([book.cot_by_families[f] for f in family_bits(batch)])


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def train(bits: int, l2: float) -> tuple[IntentModel, list[Example], dict[str, Any]]:
    """Fit on the train split minus its validation part; the threshold is the score 1% of the validation
    negatives reach. The test split is only scored, afterwards."""
    corpus = examples()
    fitting = [e for e in corpus if e.split == "train" and not e.validation]
    validation = [e for e in corpus if e.validation]
    test = [e for e in corpus if e.split == "test"]
    y = np.array([e.label for e in fitting], np.float64)
    started = time.perf_counter()
    all_weights, bias = fit(features(fitting, bits), y, l2)
    vx, vy = features(validation, bits), np.array([e.label for e in validation])
    vscores = 1 / (1 + np.exp(-(vx @ all_weights.astype(np.float64) + bias)))
    negatives = np.sort(vscores[vy == 0])
    threshold = float(negatives[int(0.99 * len(negatives))])
    weights, family_weights = all_weights[: 1 << bits], tuple(float(w) for w in all_weights[1 << bits :])
    model = IntentModel(VERSION, bits, bias, threshold, weights, family_weights)
    info = {"train_examples": len(fitting), "validation_examples": len(validation), "test_examples": len(test),
            "validation_roc_auc": round(roc_auc(vscores, vy) or 0.0, 4),
            "validation_recall": round(float((vscores[vy == 1] >= threshold).mean()), 4),
            "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    return model, test, info


def write(model: IntentModel, figures: dict[str, Any], info: dict[str, Any], l2: float) -> None:
    np.savez_compressed(RULES_DIR / "intent.npz", weights=model.weights)
    lines = [
        "# The extraction-intent model (detectors/intent.py): a logistic model over hashed byte n-grams and words.",
        "# Fitted, not hand-set: `python -m sim.intent_fit --write` rebuilds this file and intent.npz from the",
        "# train split of sim/intent_corpus.py (training sources of sim/data/split.toml and",
        "# sim/data/intent_phrasings.toml). Figures below are on the held-out test split, never used for a number.",
        "",
        "[model]",
        f'version = "{model.version}"',
        'weights = "intent.npz"',
        f"bits = {model.bits}",
        f"bias = {model.bias!r}",
        f"threshold = {model.threshold!r}   # the score 1% of the validation negatives reach",
        f"family_weights = {[round(w, 6) for w in model.family_weights]}   # per phrase family (features.FAMILIES)",
        "",
        "[provenance]",
        f'command = "python -m sim.intent_fit --bits {model.bits} --l2 {l2:g} --write"',
        f'commit = "{_commit()}"',
        f'date = "{time.strftime("%Y-%m-%d")}"',
        f"train_examples = {info['train_examples']}",
        f"validation_examples = {info['validation_examples']}   # threshold and settings chosen here",
        f"validation_roc_auc = {info['validation_roc_auc']}",
        f"validation_recall = {info['validation_recall']}",
        f"test_examples = {info['test_examples']}",
        'held_out = "sim/data/split.toml [eval] sources, sim/redteam.py phrasings, a fifth of base prompts"',
        "",
        "[held_out_figures]",
        f"fpr_at_threshold = {figures['fpr_at_threshold']:.4f}",
        f"phrase_lists_fpr = {figures['phrase_lists_fpr']:.4f}",
    ]
    for key in ("sources", "languages"):
        for name, f in figures[key].items():
            fields = ", ".join(f"{k} = {v}" for k, v in f.items())
            lines.append(f'"{key}.{name}" = {{ {fields} }}')
    (RULES_DIR / "intent.toml").write_text("\n".join(lines) + "\n")


def table(figures: dict[str, Any]) -> str:
    rows = [f"held-out negatives over the threshold: model {figures['fpr_at_threshold']:.4f}, "
            f"phrase lists {figures['phrase_lists_fpr']:.4f}", "",
            "| held out | n | model ROC-AUC | model recall | phrase lists ROC-AUC | phrase lists recall |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for key in ("sources", "languages"):
        for name, f in figures[key].items():
            rows.append(f"| {key[:-1]} {name} | {f['n']} | {f['roc_auc']:.3f} | {f['recall']:.3f} | "
                        f"{f['phrase_roc_auc']:.3f} | {f['phrase_recall']:.3f} |")  # fmt: skip
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", type=int, default=18)
    parser.add_argument("--l2", type=float, default=1e-4)
    parser.add_argument("--write", action="store_true", help="write detectors/rules/intent.toml and intent.npz")
    parser.add_argument("--validation-only", action="store_true", help="choose settings: never look at the test split")
    args = parser.parse_args(argv)
    model, test, info = train(args.bits, args.l2)
    print(f"fitted on {info['train_examples']} examples in {info['seconds']} s; threshold {model.threshold:.3f}; "
          f"validation ROC-AUC {info['validation_roc_auc']}, recall {info['validation_recall']}")  # fmt: skip
    if args.validation_only:
        return 0
    figures = report(test, model, phrase_lists(test))
    print(table(figures))
    if args.write:
        write(model, figures, info, args.l2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
