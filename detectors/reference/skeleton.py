"""A prompt's skeleton words, its template fingerprint and its lowercased cut, in Python.

This is the definition ``detectors/_skeleton.c`` accelerates (``tests/detectors/test_accelerators.py``
pins one to the other on edge cases and the real corpora). The fingerprint must never change for a
given text: packed states and cluster partials carry its hashes, so a change would split every
template in flight.

>>> words(b'rate "the cat sat" on a scale of 1 to 10: ```x = 1```')
[b'rate', b'on', b'a', b'scale', b'of', b'to']
>>> n, fp = fingerprint(b"one two three four", 4)
>>> n, len(fp)
(4, 2)
"""

from __future__ import annotations

import re

import mmh3

__all__ = ["fingerprint", "lowered_cut", "words"]

HEAD_WORDS, TAIL_WORDS = 24, 8  # the words kept: where templates put their frame
MAX_K = 64
_SEPARATORS = b"0123456789.,;:!?()[]{}<>\"'`*#|/\\=+-_~^%$@&"  # and ASCII whitespace, as bytes.split() has it
_TO_SPACE = bytes.maketrans(_SEPARATORS, b" " * len(_SEPARATORS))
_QUOTED = re.compile(r'```.*?```|"[^"\n]{1,400}"|`[^`\n]{1,200}`', re.S)  # code and quoted input


def _unquoted(skeleton: bytes) -> bytes:
    """The skeleton (UTF-8) with code and quoted input replaced by a space; lengths count characters."""
    if b'"' not in skeleton and b"`" not in skeleton:
        return skeleton
    text = skeleton.decode("utf-8", "surrogateescape")
    return _QUOTED.sub(" ", text).encode("utf-8", "surrogateescape")


def _all_words(skeleton: bytes) -> list[bytes]:
    return _unquoted(skeleton).translate(_TO_SPACE).split()


def _kept(all_words: list[bytes]) -> list[bytes]:
    n = len(all_words)
    return all_words if n <= HEAD_WORDS + TAIL_WORDS else all_words[:HEAD_WORDS] + all_words[n - TAIL_WORDS :]


def words(skeleton: bytes, /) -> list[bytes]:
    """The first and last words of a lowercased skeleton without code and quotes: ASCII digits,
    punctuation and whitespace separate words."""
    return _kept(_all_words(bytes(skeleton)))


def fingerprint(skeleton: bytes, k: int, /) -> tuple[int, tuple[int, ...]]:
    """(word count, the bottom-``k`` 32-bit hashes of the kept words' 3-shingles): MurmurHash3 (x86,
    32-bit, seed 0) per word and CPython's tuple hash of the three word hashes per shingle, which is
    the same in every process (the hash of an int does not depend on PYTHONHASHSEED)."""
    if not 0 <= k <= MAX_K:
        raise ValueError(f"k must be in 0..{MAX_K}")
    all_words = _all_words(bytes(skeleton))
    hashed = [mmh3.hash(w) for w in _kept(all_words)]
    if len(hashed) < 3:
        values = {h & 0xFFFFFFFF for h in hashed}
    else:
        values = {hash((a, b, c)) & 0xFFFFFFFF for a, b, c in zip(hashed, hashed[1:], hashed[2:], strict=False)}
    return len(all_words), tuple(sorted(values)[:k])


def lowered_cut(text: str, head: int, tail: int, /) -> bytes:
    """The first ``head`` and last ``tail`` characters of ``text`` joined by a newline (all of it when no
    longer than both), lowercased, as UTF-8 (a lone surrogate becomes "?")."""
    if len(text) > head + tail:
        text = text[:head] + "\n" + text[-tail:]
    return text.lower().encode("utf-8", "replace")
