"""Per-account rolling state in constant memory: a one-hour ring of minute buckets plus a decayed
day-level summary, packed into ~900 bytes — and kept packed: the bytes are the state.

Per request, ``_fold.c`` folds the request into the bytes in place (~1 µs; in Python the fold was the
largest per-event cost). Everything else reads and writes fields at fixed offsets of the same bytes,
so there is no unpacking into objects and packing back: a state goes to the table as it is.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from detectors.accelerators import accelerator
from detectors.config import WindowConfig
from detectors.drift import PageHinkleyState
from detectors.features import CATEGORIES, RequestFeatures
from detectors.reference import fold as _reference

if TYPE_CHECKING:
    from detectors import _fold
else:
    _fold = accelerator("_fold") or _reference

__all__ = ["AccountState", "HourWindow", "STATE_VERSION", "Counters", "to_evict"]

#: Bumped whenever the packed layout changes; older bytes are discarded instead of misread.
STATE_VERSION = _reference.STATE_VERSION

_EMPTY = _reference.EMPTY  # an unused slot of a hash array (a real hash of that value is as harmless as any)
_HH_SLOTS = _reference.HH_SLOTS  # space-saving heavy hitters of template hashes
_TEMPLATE_K, _IP_K, _UA_K = _reference.TEMPLATE_K, _reference.IP_K, _reference.UA_K  # bottom-k sketch sizes
_HOURS = _reference.HOURS
_T = TypeVar("_T")
_K = TypeVar("_K")


class Counters:
    """Indexes of the decayed counters, so the packed float array reads as names."""

    REQUESTS, COT, ROLE, SINGLE_TURN, MAX_HIGH, NEW_MODEL, RATIO, TOOLS, THINKING = range(_reference.N_COUNTERS)
    SIZE = _reference.N_COUNTERS


if len(CATEGORIES) != _reference.N_CATEGORIES:
    raise ImportError("features.CATEGORIES and the packed state's category histogram differ in size")


# The packed layout is declared once, with the reference fold; the C fold must agree (checked here).
_LAYOUT = _reference.LAYOUT_FORMATS
_OFFSETS: dict[str, int] = {name: offset for name, offset in _reference.LAYOUT.items() if name != "template_k"}
_FIXED_SIZE = _reference.FIXED_SIZE
if _fold.LAYOUT != _reference.LAYOUT:
    raise ImportError("detectors/_fold.c and the reference fold's layout disagree: rebuild with `make setup`")
_OFFSETS["requests"] = _OFFSETS["counters"] + 4 * Counters.REQUESTS  # the one counter read per event


class _Field(Generic[_T]):
    """One scalar of the packed header, read and written in place."""

    def __init__(self, name: str, fmt: str | None = None) -> None:
        self.struct = struct.Struct("<" + (fmt or dict(_LAYOUT)[name]))
        self.offset = _OFFSETS[name]

    def __get__(self, state: AccountState, owner: Any = None) -> _T:
        return self.struct.unpack_from(state.data, self.offset)[0]  # type: ignore[no-any-return]

    def __set__(self, state: AccountState, value: _T) -> None:
        self.struct.pack_into(state.data, self.offset, value)


def _floats(data: bytearray, start: int, size: int) -> memoryview[float]:
    """A float32 window onto the packed state (writes go to the state)."""
    return memoryview(data)[start : start + 4 * size].cast("f")


def _u32s(data: bytearray, start: int, size: int) -> memoryview[int]:
    return memoryview(data)[start : start + 4 * size].cast("I")


class HourWindow(NamedTuple):
    """What the ring holds for the hour ending at a moment (:meth:`AccountState.window`)."""

    requests: int
    tokens: int
    burst: int  # requests in the busiest bucket


@functools.cache
def _fresh(buckets: int) -> bytes:
    """The packed state of an account with no requests yet (created_ts 0)."""
    return _reference.fresh_state(buckets)


class AccountState:
    """Everything the detector remembers about one account, as its packed bytes. Time is event time.

    >>> from detectors.config import load_scoring
    >>> from detectors.features import extract, load_phrasebook
    >>> cfg, book = load_scoring().window, load_phrasebook()
    >>> s = AccountState.new(cfg, created_ts=0.0)
    >>> for i in range(90):
    ...     event = {"prompt": f"Explain step by step why {i} is odd", "input_tokens": 20, "output_tokens": 900}
    ...     _ = s.add(extract(event, book), 1_000_020.0 + i, cfg)
    >>> s.window(1_000_110.0, cfg).requests, s.share(Counters.COT) > book.intent.threshold
    (90, True)
    >>> AccountState.unpack(s.pack(), cfg) == s
    True
    """

    __slots__ = ("data", "buckets")

    first_ts: _Field[float] = _Field("first_ts")
    last_ts: _Field[float] = _Field("last_ts")
    created_ts: _Field[float] = _Field("created_ts")
    last_scored: _Field[float] = _Field("last_scored")
    action_level: _Field[int] = _Field("action_level")
    action_expires: _Field[float] = _Field("action_expires")
    head: _Field[int] = _Field("head")  # index of the newest ring bucket (-1: none yet)
    hour_head: _Field[int] = _Field("hour_head")
    hour_mask: _Field[int] = _Field("hour_mask")  # bit i: a request in the hour i hours before hour_head
    gap_mean: _Field[float] = _Field("gap_mean")
    gap_var: _Field[float] = _Field("gap_var")
    drift_ts: _Field[float] = _Field("drift_ts")  # event time of the last detected drift
    rung_since: _Field[float] = _Field("rung_since")  # event time the action in force reached its rung
    # Where the last event folded in came from (-1: none): a replay of it after a crash is not folded twice.
    source_partition: _Field[int] = _Field("source_partition")
    source_offset: _Field[int] = _Field("source_offset")
    requests: _Field[float] = _Field("requests", "f")  # = counters[Counters.REQUESTS]

    def __init__(self, data: bytearray, buckets: int) -> None:
        self.data = data
        self.buckets = buckets

    @classmethod
    def new(cls, cfg: WindowConfig, created_ts: float) -> AccountState:
        state = cls(bytearray(_fresh(cfg.buckets)), cfg.buckets)
        state.created_ts = created_ts
        return state

    # -- folding one request in ------------------------------------------------------------------

    def add(
        self,
        f: RequestFeatures,
        ts: float,
        cfg: WindowConfig,
        *,
        output_tokens: int = 0,
        new_model: bool = False,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> float:
        """Fold one request's features into the state (in C, ``_fold.c``); returns the decayed request
        count after it. What it does:

        - decay every counter, the category histogram and the heavy hitters by the half-life, lazily
          (at most once a minute of event time);
        - count the request, a CoT-eliciting one and its output tokens in the ring's minute bucket
          (buckets that rolled past are cleared);
        - mark its hour in the 24-hour mask; fold the gap since the last request into the running
          mean/variance of gaps (gaps over 30 minutes are idle periods, not rhythm);
        - add to the decayed counters (requests, CoT weight, role preamble, single turn, high
          max_tokens, new model, token ratio, tools, thinking) and its category;
        - feed its two smallest template hashes to the space-saving heavy hitters, its smallest to
          the distinct-templates sketch, and MurmurHash3 of its IP and user agent to theirs.
        """
        flags = (
            f.role
            | f.single_turn << 1
            | (f.max_tokens >= cfg.max_tokens_high) << 2
            | new_model << 3
            | (f.n_tools > 0) << 4
            | f.thinking << 5
        )
        t = f.template
        return _fold.fold(
            self.data, ts, f.cot, f.ratio, flags, f.category, t[0] if t else -1, t[1] if len(t) > 1 else -1,
            output_tokens, ip, user_agent, self.buckets, cfg.bucket_seconds, cfg.half_life_seconds,
        )  # fmt: skip

    # -- reading it out --------------------------------------------------------------------------

    @property
    def counters(self) -> memoryview[float]:
        return _floats(self.data, _OFFSETS["counters"], Counters.SIZE)

    @property
    def categories(self) -> memoryview[float]:
        return _floats(self.data, _OFFSETS["categories"], len(CATEGORIES))

    @property
    def drift(self) -> PageHinkleyState:
        """The account's Page-Hinkley detector (a copy: assign it back after updating)."""
        return PageHinkleyState(*struct.unpack_from("<4f", self.data, _OFFSETS["drift"]))

    @drift.setter
    def drift(self, value: PageHinkleyState) -> None:
        struct.pack_into("<4f", self.data, _OFFSETS["drift"], *value.as_tuple())

    def heavy_hitters(self) -> dict[int, tuple[float, float]]:
        """Template hash -> (decayed count, overestimate) of the space-saving slots in use."""
        keys = _u32s(self.data, _OFFSETS["hh_keys"], _HH_SLOTS)
        counts = _floats(self.data, _OFFSETS["hh_counts"], _HH_SLOTS)
        errors = _floats(self.data, _OFFSETS["hh_errors"], _HH_SLOTS)
        return {k: (c, e) for k, c, e in zip(keys, counts, errors, strict=True) if c > 0}

    def top_template(self) -> int | None:
        """The template hash with the largest guaranteed count (count minus overestimate), if any."""
        top = _fold.top_template(self.data)
        return None if top is None else top[0]

    def _sketch(self, name: str, k: int) -> list[int]:
        return [h for h in _u32s(self.data, _OFFSETS[name], k) if h != _EMPTY]

    def share(self, counter: int, prior: float = 0.0) -> float:
        """Decayed share of requests with a property (``Counters.COT`` etc.), shrunk towards 0 by
        ``prior`` pseudo-requests so that two requests cannot make a share of 100%."""
        c = self.counters
        n = c[Counters.REQUESTS] + prior
        return c[counter] / n if n > 0 else 0.0

    def window(self, now: float, cfg: WindowConfig) -> HourWindow:
        """Requests, output tokens and the busiest bucket in the hour of the ring ending at ``now``
        (summed in C, ``_fold.window``, as the ring is written there).

        >>> from detectors.config import load_scoring
        >>> s = AccountState.new(load_scoring().window, created_ts=0.0)
        >>> s.window(0.0, load_scoring().window)
        HourWindow(requests=0, tokens=0, burst=0)
        """
        return HourWindow(*_fold.window(self.data, int(now // cfg.bucket_seconds), self.buckets))

    def recent_requests(self, now: float, seconds: float, cfg: WindowConfig) -> int:
        """Requests in the ring's last ``seconds`` (whole buckets, at most the hour) ending at ``now``:
        whether an account under a decision is still sending (escalation on persistence).

        >>> from detectors.config import load_scoring
        >>> from detectors.features import extract, load_phrasebook
        >>> cfg, book = load_scoring().window, load_phrasebook()
        >>> s = AccountState.new(cfg, created_ts=0.0)
        >>> for minute in range(30):
        ...     _ = s.add(extract({"prompt": "hi", "input_tokens": 1, "output_tokens": 1}, book), 60.0 * minute, cfg)
        >>> now = 60.0 * 29
        >>> s.recent_requests(now, 600, cfg), s.recent_requests(now, 7200, cfg), s.recent_requests(now + 9e4, 600, cfg)
        (10, 30, 0)
        """
        n, head = self.buckets, self.head
        index = int(now // cfg.bucket_seconds)
        k = min(n, max(1, math.ceil(seconds / cfg.bucket_seconds)))
        oldest, newest = max(index - k + 1, head - n + 1), min(index, head)
        if head < 0 or newest < oldest:
            return 0
        ring = memoryview(self.data)[_FIXED_SIZE : _FIXED_SIZE + 2 * n].cast("H")
        return sum(ring[i % n] for i in range(oldest, newest + 1))

    def template_top_share(self, prior: float = 0.0) -> float:
        """Share of requests whose skeleton carries the account's most frequent template hash,
        counting only what space-saving guarantees (count minus inherited error)."""
        n = self.requests + prior
        top = _fold.top_template(self.data)
        return 0.0 if top is None or n <= 0 else min(1.0, top[1] / n)

    def distinct_templates(self) -> float:
        return _bottom_k_estimate(self._sketch("templates", _TEMPLATE_K), _TEMPLATE_K)

    def distinct_ips(self) -> float:
        return _bottom_k_estimate(self._sketch("ips", _IP_K), _IP_K)

    def distinct_uas(self) -> float:
        return _bottom_k_estimate(self._sketch("uas", _UA_K), _UA_K)

    def active_hours(self, now: float) -> int:
        """Hours of the last 24 (ending at ``now``) with at least one request."""
        behind = int(now // 3600) - self.hour_head
        if behind >= _HOURS or self.hour_head < 0:
            return 0
        return ((self.hour_mask << max(behind, 0)) & ((1 << _HOURS) - 1)).bit_count()

    def gap_cv(self) -> float:
        """Coefficient of variation of inter-arrival gaps within sessions (0 = a metronome)."""
        return (self.gap_var**0.5) / self.gap_mean if self.gap_mean > 0 else 1.0

    # -- bytes ---------------------------------------------------------------------------------

    def pack(self) -> bytes:
        return bytes(self.data)

    @staticmethod
    def evidence(data: bytes) -> tuple[float, float]:
        """(event time of the newest request, decayed request count) read from packed ``data`` without
        unpacking the rest; ``(0.0, 0.0)`` if unreadable. What eviction needs, cheaply.

        >>> from detectors.config import load_scoring
        >>> fresh = AccountState.new(load_scoring().window, created_ts=5.0).pack()
        >>> AccountState.evidence(fresh), AccountState.evidence(b"?")
        ((0.0, 0.0), (0.0, 0.0))
        """
        if len(data) < _FIXED_SIZE or data[0] != STATE_VERSION:
            return 0.0, 0.0
        (last_ts,) = struct.unpack_from("<d", data, _OFFSETS["last_ts"])
        (requests,) = struct.unpack_from("<f", data, _OFFSETS["counters"] + 4 * Counters.REQUESTS)
        return float(last_ts), float(requests)

    @classmethod
    def unpack(cls, data: bytes | None, cfg: WindowConfig) -> AccountState | None:
        """A writable state from packed ``data`` (a copy), or ``None`` for no bytes, another version or
        another ring size."""
        if not data or len(data) != _FIXED_SIZE + 8 * cfg.buckets or data[0] != STATE_VERSION:
            return None
        return cls(bytearray(data), cfg.buckets)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AccountState) and self.data == other.data

    def __repr__(self) -> str:
        return (
            f"AccountState(requests={self.counters[Counters.REQUESTS]:.1f}, cot={self.share(Counters.COT):.2f}, "
            f"template_top={self.template_top_share():.2f}, action_level={self.action_level})"
        )


def _bottom_k_estimate(sketch: list[int], k: int) -> float:
    """Distinct values seen: exact below ``k``, else (k-1) / (k-th smallest hash as a fraction)."""
    if len(sketch) < k:
        return float(len(sketch))
    return (k - 1) / ((sketch[-1] + 1) / 2**32)


def to_evict(states: Iterable[tuple[_K, bytes]], before: float, keep: int) -> list[_K]:
    """Keys of packed states to forget: every one idle since before ``before`` (event time), then, if
    more than ``keep`` remain, those with the least evidence (fewest decayed requests, then longest
    idle) down to 90% of ``keep`` — so a flood of one-request ids is what goes, not a busy account's
    evidence, and the next flood does not make every pass a full eviction again.

    >>> busy, new = _packed(last_ts=100.0, requests=50), _packed(last_ts=200.0, requests=1)
    >>> to_evict([("old", _packed(last_ts=1.0, requests=9)), ("busy", busy), ("new", new)], before=50.0, keep=1)
    ['old', 'new']
    """
    idle: list[_K] = []
    live: list[tuple[float, float, _K]] = []
    for key, data in states:
        last_ts, requests = AccountState.evidence(data)
        if last_ts < before:
            idle.append(key)
        else:
            live.append((requests, last_ts, key))
    if len(live) > keep:
        live.sort(key=lambda item: item[:2])
        idle += [key for _, _, key in live[: len(live) - (keep - keep // 10)]]
    return idle


def _packed(last_ts: float, requests: int) -> bytes:
    """A packed state with ``requests`` requests, the last at ``last_ts`` (for examples)."""
    from detectors.config import load_scoring

    state = AccountState.new(load_scoring().window, created_ts=0.0)
    state.last_ts = last_ts
    state.counters[Counters.REQUESTS] = float(requests)
    return state.pack()
