"""Per-account rolling state in constant memory: a one-hour ring of minute buckets plus a decayed
day-level summary, packed into ~900 bytes for the state table."""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable
from math import isfinite
from typing import TypeVar

import mmh3

from detectors.config import WindowConfig
from detectors.drift import PageHinkleyState
from detectors.features import CATEGORIES, RequestFeatures

__all__ = ["AccountState", "STATE_VERSION", "Counters", "to_evict"]

#: Bumped whenever the packed layout changes; older bytes are discarded instead of misread.
STATE_VERSION = 2

_MASK32 = 0xFFFFFFFF
_HH_SLOTS = 8  # space-saving heavy hitters of template hashes
_HH_PER_REQUEST = 2  # a request's two smallest template hashes feed them (a template's minimum is among them)
_TEMPLATE_K, _IP_K, _UA_K = 16, 8, 8  # bottom-k sizes of the distinct-count sketches
_GAP_ALPHA = 0.05  # weight of one gap in the running mean/variance of inter-arrival gaps (ours)
_SESSION_GAP = 1800.0  # a gap longer than this is an idle period, not part of a session's rhythm
_HOURS = 24
K = TypeVar("K")


class Counters:
    """Indexes of the decayed counters, so the packed float array reads as names."""

    REQUESTS, COT, ROLE, SINGLE_TURN, MAX_HIGH, NEW_MODEL, RATIO, TOOLS, THINKING = range(9)
    SIZE = 9


_HEADER = struct.Struct("<BdddddBdiiI" + "f" * 6)  # ..., gap mean/var, Page-Hinkley state
_N_FLOATS = Counters.SIZE + len(CATEGORIES) + 2 * _HH_SLOTS
_N_U32 = _HH_SLOTS + _TEMPLATE_K + _IP_K + _UA_K


class AccountState:
    """Everything the detector remembers about one account. Time is event time, passed in.

    >>> from detectors.config import load_scoring
    >>> from detectors.features import extract, load_phrasebook
    >>> cfg, book = load_scoring().window, load_phrasebook()
    >>> s = AccountState.new(cfg, created_ts=0.0)
    >>> for i in range(90):
    ...     event = {"prompt": f"Explain step by step why {i} is odd", "input_tokens": 20, "output_tokens": 900}
    ...     s.add(extract(event, book), 1_000_020.0 + i, cfg)
    >>> s.requests_last_hour(1_000_110.0, cfg), round(s.share(Counters.COT), 2)
    (90, 0.8)
    >>> AccountState.unpack(s.pack(), cfg) == s
    True
    """

    __slots__ = (
        "first_ts", "last_ts", "created_ts", "last_scored", "decay_ts", "action_level", "action_expires",
        "head", "hour_head", "hour_mask", "gap_mean", "gap_var", "drift", "drift_ts",
        "counters", "categories", "hh", "templates", "ips", "uas", "ring_requests", "ring_cot", "ring_tokens",
    )  # fmt: skip

    def __init__(self) -> None:
        self.first_ts = self.last_ts = self.created_ts = self.last_scored = self.decay_ts = 0.0
        self.action_level = 0
        self.action_expires = 0.0
        self.head = self.hour_head = -1
        self.hour_mask = 0
        self.gap_mean = self.gap_var = 0.0
        self.drift = PageHinkleyState()
        self.drift_ts = 0.0
        self.counters = [0.0] * Counters.SIZE
        self.categories = [0.0] * len(CATEGORIES)
        self.hh: dict[int, tuple[float, float]] = {}  # template hash -> (count, overestimate)
        self.templates: list[int] = []
        self.ips: list[int] = []
        self.uas: list[int] = []
        self.ring_requests = array("H")
        self.ring_cot = array("H")
        self.ring_tokens = array("I")

    @classmethod
    def new(cls, cfg: WindowConfig, created_ts: float) -> AccountState:
        state = cls()
        state.created_ts = created_ts
        state.ring_requests = array("H", bytes(2 * cfg.buckets))
        state.ring_cot = array("H", bytes(2 * cfg.buckets))
        state.ring_tokens = array("I", bytes(4 * cfg.buckets))
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
    ) -> None:
        """Fold one request's features into the state."""
        if self.first_ts == 0.0:
            self.first_ts = self.decay_ts = ts
        self._decay(ts, cfg)
        self._ring_add(ts, f.cot > 0, output_tokens, cfg)
        self._hours_add(ts)
        if ts > self.last_ts:
            if self.last_ts:
                self._gap_add(ts - self.last_ts)
            self.last_ts = ts
        c = self.counters
        c[Counters.REQUESTS] += 1.0
        c[Counters.COT] += f.cot
        c[Counters.ROLE] += f.role
        c[Counters.SINGLE_TURN] += f.single_turn
        c[Counters.MAX_HIGH] += f.max_tokens >= cfg.max_tokens_high
        c[Counters.NEW_MODEL] += new_model
        c[Counters.RATIO] += f.ratio if isfinite(f.ratio) else 0.0
        c[Counters.TOOLS] += f.n_tools > 0
        c[Counters.THINKING] += f.thinking
        self.categories[f.category] += 1.0
        for h in f.template[:_HH_PER_REQUEST]:
            self._hh_add(h)
        if f.template:
            _bottom_k_add(self.templates, f.template[0], _TEMPLATE_K)
        if ip:
            _bottom_k_add(self.ips, mmh3.hash(ip) & _MASK32, _IP_K)
        if user_agent:
            _bottom_k_add(self.uas, mmh3.hash(user_agent) & _MASK32, _UA_K)

    def _decay(self, ts: float, cfg: WindowConfig) -> None:
        # Lazy, at most once a minute of event time: hot accounts pay nothing per event.
        elapsed = ts - self.decay_ts
        if elapsed < 60.0:
            return
        factor = 0.5 ** (elapsed / cfg.half_life_seconds)
        self.counters = [v * factor for v in self.counters]
        self.categories = [v * factor for v in self.categories]
        self.hh = {k: (c * factor, e * factor) for k, (c, e) in self.hh.items()}
        self.decay_ts = ts

    def _ring_add(self, ts: float, cot: bool, tokens: int, cfg: WindowConfig) -> None:
        index = int(ts // cfg.bucket_seconds)
        if index > self.head:
            n = cfg.buckets
            if self.head < 0 or index - self.head >= n:
                self.ring_requests = array("H", bytes(2 * n))
                self.ring_cot = array("H", bytes(2 * n))
                self.ring_tokens = array("I", bytes(4 * n))
            else:
                for i in range(self.head + 1, index + 1):
                    slot = i % n
                    self.ring_requests[slot] = self.ring_cot[slot] = self.ring_tokens[slot] = 0
            self.head = index
        elif index <= self.head - cfg.buckets:
            return  # older than the ring
        slot = index % cfg.buckets
        if self.ring_requests[slot] < 0xFFFF:
            self.ring_requests[slot] += 1
            self.ring_cot[slot] += cot
        self.ring_tokens[slot] = min(_MASK32, self.ring_tokens[slot] + tokens)

    def _hours_add(self, ts: float) -> None:
        hour = int(ts // 3600)
        if hour > self.hour_head:
            shift = hour - self.hour_head if self.hour_head >= 0 else _HOURS
            self.hour_mask = (self.hour_mask << min(shift, _HOURS)) & ((1 << _HOURS) - 1)
            self.hour_head = hour
        age = self.hour_head - hour
        if 0 <= age < _HOURS:
            self.hour_mask |= 1 << age

    def _gap_add(self, gap: float) -> None:
        if gap > _SESSION_GAP:
            return
        if self.gap_mean == 0.0:
            self.gap_mean = gap
            return
        diff = gap - self.gap_mean
        self.gap_mean += _GAP_ALPHA * diff
        self.gap_var = (1 - _GAP_ALPHA) * (self.gap_var + _GAP_ALPHA * diff * diff)

    def _hh_add(self, key: int) -> None:
        hh = self.hh
        slot = hh.get(key)
        if slot is not None:
            hh[key] = (slot[0] + 1.0, slot[1])
        elif len(hh) < _HH_SLOTS:
            hh[key] = (1.0, 0.0)
        else:  # space-saving: the new key takes the smallest slot; what it inherits is its error bound
            smallest = min(hh.items(), key=_count)[0]
            inherited = hh.pop(smallest)[0]
            hh[key] = (inherited + 1.0, inherited)

    # -- reading it out --------------------------------------------------------------------------

    def share(self, counter: int, prior: float = 0.0) -> float:
        """Decayed share of requests with a property (``Counters.COT`` etc.), shrunk towards 0 by
        ``prior`` pseudo-requests so that two requests cannot make a share of 100%."""
        n = self.counters[Counters.REQUESTS] + prior
        return self.counters[counter] / n if n > 0 else 0.0

    def requests_last_hour(self, now: float, cfg: WindowConfig) -> int:
        return sum(self.ring_window(self.ring_requests, now, cfg))

    def tokens_last_hour(self, now: float, cfg: WindowConfig) -> int:
        return sum(self.ring_window(self.ring_tokens, now, cfg))

    def burst_per_bucket(self, now: float, cfg: WindowConfig) -> int:
        return max(self.ring_window(self.ring_requests, now, cfg), default=0)

    def ring_window(self, ring: array[int], now: float, cfg: WindowConfig) -> array[int] | list[int]:
        """Buckets of the hour ending at ``now``: the whole ring when ``now`` is in the head bucket."""
        index = int(now // cfg.bucket_seconds)
        if self.head < 0 or index - self.head >= cfg.buckets:
            return []
        if index == self.head:
            return ring
        oldest = max(self.head - cfg.buckets + 1, index - cfg.buckets + 1)
        return [ring[i % cfg.buckets] for i in range(oldest, min(index, self.head) + 1)]

    def template_top_share(self, prior: float = 0.0) -> float:
        """Share of requests whose skeleton carries the account's most frequent template hash,
        counting only what space-saving guarantees (count minus inherited error)."""
        n = self.counters[Counters.REQUESTS] + prior
        if not self.hh or n <= 0:
            return 0.0
        return min(1.0, max([c - e for c, e in self.hh.values()]) / n)

    def distinct_templates(self) -> float:
        return _bottom_k_estimate(self.templates, _TEMPLATE_K)

    def distinct_ips(self) -> float:
        return _bottom_k_estimate(self.ips, _IP_K)

    def distinct_uas(self) -> float:
        return _bottom_k_estimate(self.uas, _UA_K)

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
        hh_keys = list(self.hh)[:_HH_SLOTS]
        header = _HEADER.pack(
            STATE_VERSION, self.first_ts, self.last_ts, self.created_ts, self.last_scored, self.decay_ts,
            self.action_level, self.action_expires, self.head, self.hour_head, self.hour_mask,
            self.gap_mean, self.gap_var, *self.drift.as_tuple(),
        )  # fmt: skip
        hh_values = [self.hh[k][0] for k in hh_keys] + [0.0] * (_HH_SLOTS - len(hh_keys))
        hh_values += [self.hh[k][1] for k in hh_keys]
        floats = array("f", self.counters + self.categories + hh_values)
        floats.extend([0.0] * (_N_FLOATS - len(floats)))
        u32 = array("I", _padded(hh_keys, _HH_SLOTS) + _padded(self.templates, _TEMPLATE_K)
                    + _padded(self.ips, _IP_K) + _padded(self.uas, _UA_K))  # fmt: skip
        return b"".join((
            header, struct.pack("<d", self.drift_ts), floats.tobytes(), u32.tobytes(),
            self.ring_requests.tobytes(), self.ring_cot.tobytes(), self.ring_tokens.tobytes(),
        ))  # fmt: skip

    @staticmethod
    def evidence(data: bytes) -> tuple[float, float]:
        """(event time of the newest request, decayed request count) read from packed ``data`` without
        unpacking the rest; ``(0.0, 0.0)`` if unreadable. What eviction needs, cheaply.

        >>> from detectors.config import load_scoring
        >>> fresh = AccountState.new(load_scoring().window, created_ts=5.0).pack()
        >>> AccountState.evidence(fresh), AccountState.evidence(b"?")
        ((0.0, 0.0), (0.0, 0.0))
        """
        if len(data) < _HEADER.size + 12 or data[0] != STATE_VERSION:
            return 0.0, 0.0
        (last_ts,) = struct.unpack_from("<d", data, 9)
        (requests,) = struct.unpack_from("<f", data, _HEADER.size + 8)  # counters follow drift_ts
        return float(last_ts), float(requests)

    @classmethod
    def unpack(cls, data: bytes | None, cfg: WindowConfig) -> AccountState | None:
        """The state packed in ``data``, or ``None`` for no bytes, another version or another ring size."""
        n = cfg.buckets
        size = _HEADER.size + 8 + 4 * _N_FLOATS + 4 * _N_U32 + 8 * n
        if not data or len(data) != size or data[0] != STATE_VERSION:
            return None
        s = cls()
        (_, s.first_ts, s.last_ts, s.created_ts, s.last_scored, s.decay_ts, s.action_level, s.action_expires,
         s.head, s.hour_head, s.hour_mask, s.gap_mean, s.gap_var, *ph) = _HEADER.unpack_from(data)  # fmt: skip
        s.drift = PageHinkleyState(*ph)
        offset = _HEADER.size
        (s.drift_ts,) = struct.unpack_from("<d", data, offset)
        offset += 8
        floats = array("f", data[offset : offset + 4 * _N_FLOATS]).tolist()
        offset += 4 * _N_FLOATS
        u32 = array("I", data[offset : offset + 4 * _N_U32]).tolist()
        offset += 4 * _N_U32
        ncat = len(CATEGORIES)
        s.counters = floats[: Counters.SIZE]
        s.categories = floats[Counters.SIZE : Counters.SIZE + ncat]
        hh_counts = floats[Counters.SIZE + ncat : Counters.SIZE + ncat + _HH_SLOTS]
        hh_errors = floats[Counters.SIZE + ncat + _HH_SLOTS :]
        s.hh = {k: (c, e) for k, c, e in zip(u32[:_HH_SLOTS], hh_counts, hh_errors, strict=True) if c > 0}
        rest = u32[_HH_SLOTS:]
        s.templates = [h for h in rest[:_TEMPLATE_K] if h != _MASK32]
        s.ips = [h for h in rest[_TEMPLATE_K : _TEMPLATE_K + _IP_K] if h != _MASK32]
        s.uas = [h for h in rest[_TEMPLATE_K + _IP_K :] if h != _MASK32]
        s.ring_requests = array("H", data[offset : offset + 2 * n])
        s.ring_cot = array("H", data[offset + 2 * n : offset + 4 * n])
        s.ring_tokens = array("I", data[offset + 4 * n : offset + 8 * n])
        return s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AccountState) and self.pack() == other.pack()

    def __repr__(self) -> str:
        return (
            f"AccountState(requests={self.counters[Counters.REQUESTS]:.1f}, cot={self.share(Counters.COT):.2f}, "
            f"template_top={self.template_top_share():.2f}, action_level={self.action_level})"
        )


def _count(item: tuple[int, tuple[float, float]]) -> float:
    return item[1][0]


def _bottom_k_add(sketch: list[int], h: int, k: int) -> None:
    """Keep the ``k`` smallest distinct hashes, sorted (a KMV distinct-count sketch)."""
    if h in sketch or (len(sketch) >= k and h >= sketch[-1]):
        return
    sketch.append(h)
    sketch.sort()
    del sketch[k:]


def _bottom_k_estimate(sketch: list[int], k: int) -> float:
    """Distinct values seen: exact below ``k``, else (k-1) / (k-th smallest hash as a fraction)."""
    if len(sketch) < k:
        return float(len(sketch))
    return (k - 1) / ((sketch[-1] + 1) / 2**32)


def _padded(values: list[int], size: int) -> list[int]:
    # 0xFFFFFFFF marks an empty slot; a real hash of that value is as likely as any other and harmless.
    return values[:size] + [_MASK32] * (size - len(values))


def to_evict(states: Iterable[tuple[K, bytes]], before: float, keep: int) -> list[K]:
    """Keys of packed states to forget: every one idle since before ``before`` (event time), then, if
    more than ``keep`` remain, those with the least evidence (fewest decayed requests, then longest
    idle) down to 90% of ``keep`` — so a flood of one-request ids is what goes, not a busy account's
    evidence, and the next flood does not make every pass a full eviction again.

    >>> busy, new = _packed(last_ts=100.0, requests=50), _packed(last_ts=200.0, requests=1)
    >>> to_evict([("old", _packed(last_ts=1.0, requests=9)), ("busy", busy), ("new", new)], before=50.0, keep=1)
    ['old', 'new']
    """
    idle: list[K] = []
    live: list[tuple[float, float, K]] = []
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
    state.last_ts, state.counters[Counters.REQUESTS] = last_ts, float(requests)
    return state.pack()
