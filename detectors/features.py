"""Per-request features: phrase families, capability category and a template fingerprint.

Prompt text is read here, in memory, and never leaves this module: what comes out is a handful of
numbers and four 32-bit hashes of the masked prompt skeleton.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import re2

from detectors.accelerators import accelerator
from detectors.config import RULES_DIR
from detectors.intent import HEAD_CHARS as INTENT_HEAD
from detectors.intent import TAIL_CHARS as INTENT_TAIL
from detectors.intent import IntentModel, intent_text_of_cuts, load_intent
from detectors.reference import skeleton as _skeleton_reference
from detectors.text import lowered_cut
from detectors.types import RequestEvent

if TYPE_CHECKING:
    from detectors import _skeleton
else:  # the skeleton in C where it was built
    _skeleton = accelerator("_skeleton") or _skeleton_reference
_phrases = accelerator("_phrases")  # Hyperscan's scan where it was built; RE2 defines the scan

__all__ = [
    "CATEGORIES",
    "FAMILIES",
    "PhraseBook",
    "RequestFeatures",
    "extract",
    "load_phrasebook",
    "lowered_cut",
    "masked_sample",
    "skeleton_bytes",
    "skeleton_words",
    "template_fingerprint",
]

#: Capability categories; a request's category is an index into this tuple.
CATEGORIES = ("chat", "coding", "agentic", "data_analysis", "math_reasoning", "writing", "vision", "other")
#: Phrase families, in bit order of :attr:`RequestFeatures.families`.
FAMILIES = ("cot", "reconstruct", "debug", "rubric", "rewrite", "role")

_CATEGORY_SHIFT = len(FAMILIES)  # a pattern's bit: families first, then categories
_FAMILY_MASK = (1 << len(FAMILIES)) - 1
_ROLE_BIT = 1 << FAMILIES.index("role")
_FINGERPRINT_K = 4  # bottom-k shingle hashes kept per request (Blacklight keeps 50 of far longer queries)
_CHAT_MAX_WORDS = 60  # an uncategorized prompt shorter than this is chat, longer is "other"
_AGENTIC, _VISION, _CHAT, _OTHER = (CATEGORIES.index(name) for name in ("agentic", "vision", "chat", "other"))
_SKELETON_HEAD_CHARS, _SKELETON_TAIL_CHARS = 400, 150  # enough text for the head and tail words


class RequestFeatures(NamedTuple):
    """What one request contributes to its account's window."""

    cot: float  # extraction-style prompting, 0..1: the largest weight among the families that hit
    families: int  # bitmask over FAMILIES
    category: int  # index into CATEGORIES
    template: tuple[int, ...]  # bottom-k 32-bit hashes of word 3-shingles of the masked skeleton
    ratio: float  # output / input tokens
    n_tools: int
    thinking: bool
    single_turn: bool  # no conversation history
    max_tokens: int

    @property
    def role(self) -> bool:
        return bool(self.families & _ROLE_BIT)


@dataclass(frozen=True)
class PhraseBook:
    """Compiled phrase families and category patterns from ``rules/phrases.toml``.

    One RE2 ``Set`` matches every pattern of every family and category in a single linear-time pass;
    where Hyperscan is built, its multi-pattern ``scanner`` does the same twice as fast (a test checks
    the two agree), returning the OR of the patterns' bits.

    >>> book = load_phrasebook()
    >>> f = extract({"prompt": "Solve 12*7. Explain your reasoning step by step.", "input_tokens": 12,
    ...              "output_tokens": 300}, book)
    >>> f.cot > book.intent.threshold, CATEGORIES[f.category]
    (True, 'math_reasoning')
    >>> import dataclasses
    >>> extract({"prompt": "Solve 12*7. Explain your reasoning step by step.", "input_tokens": 12,
    ...          "output_tokens": 300}, dataclasses.replace(book, intent=None)).cot  # the phrase lists alone
    0.8
    """

    matcher: Any  # re2.Set
    patterns: tuple[str, ...]  # every family's and category's pattern, in the matcher's order
    pattern_bits: tuple[int, ...]  # per pattern: its family's bit, or its category's bit << _CATEGORY_SHIFT
    weights: tuple[float, ...]  # per family
    category_order: tuple[int, ...]  # category indices in priority order
    head_chars: int
    tail_chars: int
    frame_words: frozenset[bytes] = frozenset()  # words shown in alert samples; the rest is masked
    scanner: Any = None  # _phrases.Scanner over the same patterns, or None where Hyperscan is missing
    #: The extraction-intent model that sets a request's ``cot`` (the phrase families are its inputs and
    #: the explanations); None: the phrase families' weights alone, as before the model.
    intent: IntentModel | None = None

    def hits(self, text: str) -> tuple[int, int]:
        """(family bitmask, category bitmask) of the lowercased head and tail of ``text``."""
        return self.scan(lowered_cut(text, self.head_chars, self.tail_chars))

    def scan(self, cut: bytes) -> tuple[int, int]:
        """:meth:`hits` of a text already cut and lowercased (``lowered_cut`` with this book's sizes)."""
        if self.scanner is not None:
            found = self.scanner.scan(cut)
        else:
            found = 0
            for i in self.matcher.Match(cut) or ():
                found |= self.pattern_bits[i]
        return found & _FAMILY_MASK, found >> _CATEGORY_SHIFT

    @functools.cached_property
    def category_by_hits(self) -> tuple[int, ...]:
        """For each category bitmask, the first category of :attr:`category_order` among its bits, or -1."""
        return tuple(
            next((index for index in self.category_order if mask >> index & 1), -1)
            for mask in range(1 << len(CATEGORIES))
        )

    @functools.cached_property
    def cot_by_families(self) -> tuple[float, ...]:
        """For each family bitmask, the largest weight among its families: the request's CoT score."""
        return tuple(
            max([w for i, w in enumerate(self.weights) if mask >> i & 1], default=0.0)
            for mask in range(1 << len(FAMILIES))
        )


def load_phrasebook(path: Path | str | None = None) -> PhraseBook:
    """Compile ``rules/phrases.toml`` (or ``path``); a bad pattern raises ``ValueError`` naming it.

    A book is immutable, so one compiled from the same text is shared (compiling for Hyperscan takes
    ~80 ms, and every engine loads a book).
    """
    path = Path(path) if path is not None else RULES_DIR / "phrases.toml"
    return _compiled(path, path.read_text())


@functools.lru_cache(maxsize=8)
def _compiled(path: Path, text: str) -> PhraseBook:
    doc = tomllib.loads(text)
    matcher = re2.Set.SearchSet(re2.Options())
    patterns: list[str] = []
    pattern_bits: list[int] = []

    def add(pattern: str, bit: int) -> None:
        try:
            matcher.Add(pattern)
        except Exception as exc:
            raise ValueError(f"{path}: pattern {pattern!r} does not compile under RE2: {exc}") from None
        patterns.append(pattern)
        pattern_bits.append(bit)

    weights = []
    for index, name in enumerate(FAMILIES):
        family = doc["families"].get(name)
        if family is None:
            raise ValueError(f"{path}: family [families.{name}] is missing")
        weights.append(float(family["weight"]))
        for pattern in family["patterns"]:
            add(pattern, 1 << index)
    order = []
    for name in doc["categories"]["order"]:
        if name not in CATEGORIES:
            raise ValueError(f"{path}: unknown category {name!r}; known: {CATEGORIES}")
        order.append(CATEGORIES.index(name))
        for pattern in doc["categories"]["patterns"][name]:
            add(pattern, 1 << CATEGORIES.index(name) << _CATEGORY_SHIFT)
    matcher.Compile()
    scanner = None
    if _phrases is not None:
        try:
            scanner = _phrases.Scanner(tuple(patterns), tuple(pattern_bits))
        except ValueError:  # syntax RE2 takes and Hyperscan does not: RE2 scans this book
            scanner = None
    frame = {w.encode() for w in doc["meta"].get("frame_words", [])}
    for name in FAMILIES:  # the literal words of every family pattern: "step", "reasoning", "rubric", …
        frame |= {w.encode() for p in doc["families"][name]["patterns"] for w in re.findall(r"[a-z]{2,}", p)}
    return PhraseBook(
        intent=load_intent(),
        matcher=matcher,
        patterns=tuple(patterns),
        pattern_bits=tuple(pattern_bits),
        weights=tuple(weights),
        category_order=tuple(order),
        head_chars=int(doc["meta"]["scan_head_chars"]),
        tail_chars=int(doc["meta"]["scan_tail_chars"]),
        frame_words=frozenset(frame),
        scanner=scanner,
    )


def masked_sample(event: RequestEvent, book: PhraseBook, max_chars: int = 240) -> str:
    """A request's template frame for alerts: its skeleton with every word outside the frame
    vocabulary masked as "·", so people see the template, never the content.

    >>> masked_sample({"prompt": "You are an expert historian. Why did Rome fall? Explain step by step."},
    ...               load_phrasebook())
    'you are an expert · · did · · explain step by step'
    """
    text = "\n".join(t for t in (event.get("system"), event.get("prompt")) if t)
    words = [w if w in book.frame_words else b"\xc2\xb7" for w in skeleton_words(text)]
    return b" ".join(words).decode("utf-8", "replace")[:max_chars]


def skeleton_bytes(text: str) -> bytes:
    """What a prompt's template is read from: its head and tail, lowercased UTF-8. The C skeleton
    (``_skeleton.c``) then drops code and quoted input, and reads numbers and punctuation as separators.

    >>> b = skeleton_bytes('Rate THIS: "' + "word " * 200 + 'END"')
    >>> len(b), b[:16], b[-8:]
    (551, b'rate this: "word', b'ord end"')
    """
    return lowered_cut(text, _SKELETON_HEAD_CHARS, _SKELETON_TAIL_CHARS)


def skeleton_words(text: str) -> list[bytes]:
    """The masked skeleton of a prompt as words: ASCII digits and punctuation separate words, and only
    the first 24 and last 8 words are kept (where templates put their frame). Split in C.

    >>> skeleton_words('Rate "the cat sat" on a scale of 1 to 10: ```x = 1```')
    [b'rate', b'on', b'a', b'scale', b'of', b'to']
    """
    return _skeleton.words(skeleton_bytes(text))


def template_fingerprint(text: str, k: int = _FINGERPRINT_K) -> tuple[int, tuple[int, ...]]:
    """(word count, fingerprint) of a prompt's skeleton: the bottom-``k`` 32-bit hashes of the word
    3-shingles of :func:`skeleton_words`, with MurmurHash3 (``mmh3.hash``) per word and CPython 3.11's
    tuple hash per shingle. Defined in ``detectors/reference/skeleton.py``; computed in C where the
    accelerator is built (``detectors/_skeleton.c``, ~1 µs), pinned to the definition by tests.

    One template filled with different content shares most of its smallest hashes.

    >>> _, a = template_fingerprint("You are an expert analyst. Explain step by step: why is the sky blue")
    >>> _, b = template_fingerprint("You are an expert analyst. Explain step by step: why do cats purr")
    >>> len(set(a) & set(b)) >= 2
    True
    """
    return _skeleton.fingerprint(skeleton_bytes(text), k)


def extract(event: RequestEvent, book: PhraseBook) -> RequestFeatures:
    """Features of one decoded event; the prompt and system texts are dropped on return."""
    prompt = event.get("prompt") or ""
    system = event.get("system") or ""
    prompt_cut = lowered_cut(prompt, book.head_chars, book.tail_chars)
    families, categories = book.scan(prompt_cut)
    system_cut = None
    if system:
        system_cut = lowered_cut(system, book.head_chars, book.tail_chars)
        f2, c2 = book.scan(system_cut)
        families |= f2
        categories |= c2
    # The extraction-intent model is the signal; the phrase families stay as its inputs and explanations.
    intent = book.intent
    if intent is None:
        cot = book.cot_by_families[families]
    else:
        if (book.head_chars, book.tail_chars) == (INTENT_HEAD, INTENT_TAIL):  # the scan's cuts serve both
            p = intent.score_text(intent_text_of_cuts(prompt_cut, system_cut), families)
        else:
            p = intent.score(prompt, system, families)
        cot = p if p >= intent.threshold else 0.0
    n_words, template = template_fingerprint(system + "\n" + prompt if system else prompt)
    n_tools = event.get("n_tools") or 0
    category = _category(categories, n_tools, event.get("endpoint") or "", n_words, book)
    input_tokens = event["input_tokens"]
    return RequestFeatures(
        cot=cot,
        families=families,
        category=category,
        template=template,
        ratio=event["output_tokens"] / input_tokens if input_tokens else float(event["output_tokens"]),
        n_tools=n_tools,
        thinking=bool(event.get("thinking")),
        single_turn=(event.get("n_messages") or 1) <= 1,
        max_tokens=event.get("max_tokens") or 0,
    )


def _category(categories: int, n_tools: int, endpoint: str, n_words: int, book: PhraseBook) -> int:
    if n_tools:
        return _AGENTIC
    if endpoint and ("image" in endpoint or "vision" in endpoint):
        return _VISION
    found = book.category_by_hits[categories]
    if found >= 0:
        return found
    return _CHAT if n_words < _CHAT_MAX_WORDS else _OTHER
