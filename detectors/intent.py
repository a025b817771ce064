"""Extraction intent of one request: does this prompt ask the model to expose its reasoning or to produce
training data? A learned score in [0, 1], not a phrase list.

Hashed byte n-grams (3, 4 and 5 bytes of the lowercased, digit-masked text: they carry across languages,
scripts and spellings) and word unigrams and bigrams, into a logistic model whose weights were fitted
offline (``python -m sim.intent_fit``) on a corpus whose evaluation sources are held out
(``detectors/rules/intent.toml`` names both and the figures). This module is the reference definition;
``_intent.c`` computes the same buckets and logit, and ``tests/detectors/test_intent.py`` pins it here.

>>> text = intent_text("Solve 12 + 30.", "Think step by step and show every intermediate step.")
>>> text
b' think step by step and show every intermediate step solve 00 00 '
>>> len(grams(text, 16)) == len(grams_reference(text, 16))
True
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from detectors.accelerators import accelerator
from detectors.config import RULES_DIR
from detectors.text import lowered_cut

_intent = accelerator("_intent")  # optional: the reference path gives the same numbers

__all__ = [
    "IntentModel",
    "grams",
    "grams_reference",
    "intent_text",
    "intent_text_of_cuts",
    "load_intent",
    "normalize",
    "normalize_reference",
]

#: The parts of a prompt read: where instructions sit (as the phrase scan reads them).
HEAD_CHARS, TAIL_CHARS = 800, 300
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3
_SEED_CHAR, _SEED_WORD, _SEED_BIGRAM = 0x51ED27, 0x2545F491, 0x6C8E9CF5
#: A run of bytes between words: any ASCII byte but a-z and 0-9 (the text is lowercased first); bytes
#: >= 0x80 (UTF-8 of other scripts) are part of words.
_NOT_WORD = re.compile(rb"[^a-z0-9\x80-\xff]+")
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)


def normalize_reference(raw: bytes) -> bytes:
    """Digits masked to ``0``, every run of other ASCII bytes one space, a space at each end; bytes of
    other scripts (>= 0x80) kept. The definition ``_intent.normalize`` is pinned to.

    >>> normalize_reference(b"Step 2: explain, 42 times!"), normalize_reference(b"")
    (b' tep 0 explain 00 times ', b' ')
    """
    text = _NOT_WORD.sub(b" ", raw.translate(_DIGITS_TO_ZERO)).strip(b" ")
    return b" " + text + b" " if text else b" "


def normalize(raw: bytes) -> bytes:
    return _intent.normalize(raw) if _intent is not None else normalize_reference(raw)


def intent_text(prompt: str, system: str = "") -> bytes:
    """What the model reads: the system prompt's and the prompt's head and tail (as the phrase scan cuts
    them), lowercased and normalized."""
    return intent_text_of_cuts(
        lowered_cut(prompt, HEAD_CHARS, TAIL_CHARS), lowered_cut(system, HEAD_CHARS, TAIL_CHARS) if system else None
    )


def intent_text_of_cuts(prompt_cut: bytes, system_cut: bytes | None) -> bytes:
    """:func:`intent_text` of texts already cut and lowercased with ``HEAD_CHARS``/``TAIL_CHARS`` (the
    feature extractor hands over the phrase scan's cuts instead of cutting twice)."""
    return normalize(system_cut + b"\n" + prompt_cut if system_cut is not None else prompt_cut)


def _mix(x: int, bits: int) -> int:
    return ((x * _GOLDEN) & _MASK64) >> (64 - bits)


def _fnv(data: bytes) -> int:
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _MASK64
    return h


def grams_reference(text: bytes, bits: int) -> list[int]:
    """Every feature's bucket in ``[0, 2**bits)``, with repeats, in a fixed order: byte n-grams (n = 3, 4,
    5, by position), then word unigrams and bigrams. The definition the C accelerator is pinned to."""
    data = np.frombuffer(text, dtype=np.uint8).astype(np.uint64)
    out: list[int] = []
    for n in (3, 4, 5):  # the n bytes at each position as one little-endian int; uint64 products wrap as in C
        if len(data) >= n:
            x = np.full(len(data) - n + 1, n << 56, dtype=np.uint64)
            for k in range(n):
                x |= data[k : len(data) - n + 1 + k] << np.uint64(8 * k)
            buckets: list[int] = (((x ^ np.uint64(_SEED_CHAR)) * np.uint64(_GOLDEN)) >> np.uint64(64 - bits)).tolist()
            out += buckets
    words = text.split()
    hashes = [_fnv(w) for w in words]
    out += [_mix(h ^ _SEED_WORD, bits) for h in hashes]
    out += [_mix(((a * _FNV_PRIME) & _MASK64) ^ b ^ _SEED_BIGRAM, bits) for a, b in itertools.pairwise(hashes)]
    return out


def grams(text: bytes, bits: int) -> list[int]:
    """:func:`grams_reference`, in C when the accelerator is built."""
    return _intent.grams(text, bits) if _intent is not None else grams_reference(text, bits)


def logit_sum(weights: list[float]) -> float:
    """The features' weights summed in order in float64, over the square root of their number: the
    reference of the C logit, to the last bit (numpy's float32 pairwise sum is not).

    >>> logit_sum([0.5, 1.5, 2.0, 0.0]), logit_sum([])
    (2.0, 0.0)
    """
    total = 0.0
    for w in weights:
        total += w
    return total / math.sqrt(len(weights)) if weights else 0.0


@dataclass(frozen=True)
class IntentModel:
    """A fitted logistic model over hashed features: ``sigmoid(bias + Σ w[g] / sqrt(#grams))``.

    ``threshold`` is the score at which a request counts as extraction-style (set at fit time to a
    request-level false-positive rate on the training negatives), so a request's ``cot`` is 0 below it.
    """

    version: str
    bits: int
    bias: float
    threshold: float
    weights: np.ndarray  # float32, 2**bits
    #: One learned weight per phrase family (features.FAMILIES order), added when the family hits: the
    #: hand-written lists are inputs the fit weighs, not the decision.
    family_weights: tuple[float, ...] = ()

    def score(self, prompt: str, system: str = "", families: int = 0) -> float:
        return self.score_text(intent_text(prompt, system), families)

    def score_text(self, text: bytes, families: int = 0) -> float:
        """The probability of extraction intent of a normalized text whose phrase-family bits are
        ``families``."""
        if _intent is not None:
            z = _intent.logit(text, self.weights, self.bits, self.bias)
        else:
            z = self.bias + logit_sum(self.weights[grams_reference(text, self.bits)].tolist())
        for i, w in enumerate(self.family_weights):
            if families >> i & 1:
                z += w
        return 1.0 / (1.0 + math.exp(-z)) if z > -30 else 0.0


@cache
def load_intent(path: Path | str | None = None) -> IntentModel:
    """The fitted model: ``rules/intent.toml`` (version, bias, threshold, provenance) beside its weights."""
    path = Path(path) if path is not None else RULES_DIR / "intent.toml"
    meta = tomllib.loads(path.read_text())
    try:
        model = meta["model"]
        with np.load(path.with_name(model["weights"])) as data:
            weights = np.ascontiguousarray(data["weights"], dtype=np.float32)
        bits = int(model["bits"])
        if weights.shape != (1 << bits,) or not np.isfinite(weights).all():
            raise ValueError(f"{path}: weights must be 2**{bits} finite numbers")
        family_weights = tuple(float(w) for w in model.get("family_weights", ()))
        return IntentModel(str(model["version"]), bits, float(model["bias"]), float(model["threshold"]), weights,
                           family_weights)  # fmt: skip
    except KeyError as exc:
        raise ValueError(f"{path}: missing {exc}; see detectors/rules/intent.toml") from None
