"""The fold of one request into an account's packed state, and the readers of that state, in Python.

This is the definition ``detectors/_fold.c`` accelerates (same names, arguments and results, byte for
byte: ``tests/detectors/test_accelerators.py``). The packed layout below is the one place it is
declared; ``account_state`` reads fields at these offsets and the C module exports its own as
``LAYOUT``, which must agree. Floats at rest are float32, computed in float64 and rounded on store,
as C's ``(float)`` casts do.

>>> state = bytearray(fresh_state(4))
>>> fold(state, 120.0, 1.0, 2.0, 0, 1, 7, -1, 500, "10.0.0.1", None, 4, 60.0, 21600.0)
1.0
>>> window(state, 2, 4), top_template(state)
((1, 500, 1), (7, 1.0))
"""

from __future__ import annotations

import math
import struct
from typing import Any

import mmh3

__all__ = [
    "FIXED_SIZE",
    "LAYOUT",
    "LAYOUT_FORMATS",
    "STATE_VERSION",
    "VECTOR_FEATURES",
    "fold",
    "fresh_state",
    "page_hinkley",
    "summary",
    "top_template",
    "vector",
    "window",
]

#: Bumped whenever the packed layout changes; older bytes are discarded instead of misread.
STATE_VERSION = 4
N_COUNTERS, N_CATEGORIES, HH_SLOTS = 9, 8, 8  # counters in account_state.Counters order; features.CATEGORIES
TEMPLATE_K, IP_K, UA_K = 16, 8, 8  # bottom-k sizes of the distinct-count sketches
EMPTY = 0xFFFFFFFF  # an unused slot of a hash array
HOURS = 24
_GAP_ALPHA, _SESSION_GAP, _DECAY_EVERY = 0.05, 1800.0, 60.0

#: The packed layout, in order: (name, struct format); the ring follows (requests u16 × buckets, CoT
#: requests u16 × buckets, output tokens u32 × buckets).
LAYOUT_FORMATS: tuple[tuple[str, str], ...] = (
    ("version", "B"), ("first_ts", "d"), ("last_ts", "d"), ("created_ts", "d"), ("last_scored", "d"),
    ("decay_ts", "d"), ("action_level", "B"), ("action_expires", "d"), ("head", "i"), ("hour_head", "i"),
    ("hour_mask", "I"), ("gap_mean", "f"), ("gap_var", "f"), ("drift", "4f"), ("drift_ts", "d"),
    ("rung_since", "d"), ("source_partition", "i"), ("source_offset", "q"),
    ("counters", f"{N_COUNTERS}f"), ("categories", f"{N_CATEGORIES}f"), ("hh_counts", f"{HH_SLOTS}f"),
    ("hh_errors", f"{HH_SLOTS}f"), ("hh_keys", f"{HH_SLOTS}I"), ("templates", f"{TEMPLATE_K}I"),
    ("ips", f"{IP_K}I"), ("uas", f"{UA_K}I"),
)  # fmt: skip


def _offsets() -> dict[str, int]:
    offsets, at = {}, 0
    for name, fmt in LAYOUT_FORMATS:
        offsets[name] = at
        at += struct.calcsize("<" + fmt)
    offsets["rings"] = at
    offsets["template_k"] = TEMPLATE_K  # as _fold.LAYOUT carries it
    return offsets


#: Field name -> byte offset (and ``rings``: where the ring starts, the fixed part's size).
LAYOUT: dict[str, int] = _offsets()
FIXED_SIZE = LAYOUT["rings"]
_COUNTERS = LAYOUT["counters"]
REQUESTS, COT, ROLE, SINGLE_TURN, MAX_HIGH, NEW_MODEL, RATIO, TOOLS, THINKING = range(N_COUNTERS)
_FLAG_COUNTERS = ((1, ROLE), (2, SINGLE_TURN), (4, MAX_HIGH), (8, NEW_MODEL), (16, TOOLS), (32, THINKING))

#: The window vector's features, in the order :func:`vector` returns them.
VECTOR_FEATURES = (
    "volume", "burst", "tokens", "cot_rate", "role_rate", "template_top", "focus", "ratio", "single_turn",
    "max_tokens_high", "regularity", "always_on", "ip_spread", "ua_spread", "new_account", "new_model",
    "tools", "drift",
)  # fmt: skip

_F64, _F32, _I32, _U32, _U16 = (struct.Struct("<" + c) for c in "dfiIH")


def _get(fmt: struct.Struct, b: Any, off: int) -> Any:
    return fmt.unpack_from(b, off)[0]


def _put_f32(b: bytearray, off: int, x: float) -> None:
    """Store ``x`` as float32, rounding as a C cast does (too large a value becomes an infinity)."""
    try:
        _F32.pack_into(b, off, x)
    except OverflowError:
        _F32.pack_into(b, off, math.copysign(math.inf, x))


def _add_f32(b: bytearray, off: int, x: float) -> None:
    _put_f32(b, off, _get(_F32, b, off) + x)


def fresh_state(buckets: int) -> bytes:
    """The packed state of an account with no requests yet: empty sketches, no ring or hour yet, and
    River's Page-Hinkley start (its minimum at +inf)."""
    b = bytearray(FIXED_SIZE + 8 * buckets)
    b[0] = STATE_VERSION
    _I32.pack_into(b, LAYOUT["head"], -1)
    _I32.pack_into(b, LAYOUT["hour_head"], -1)
    _I32.pack_into(b, LAYOUT["source_partition"], -1)  # no event folded yet: no source offset
    struct.pack_into("<q", b, LAYOUT["source_offset"], -1)
    struct.pack_into("<4f", b, LAYOUT["drift"], 0.0, 0.0, 0.0, math.inf)
    for name, size in (("hh_keys", HH_SLOTS), ("templates", TEMPLATE_K), ("ips", IP_K), ("uas", UA_K)):
        struct.pack_into(f"<{size}I", b, LAYOUT[name], *[EMPTY] * size)
    return bytes(b)


def _state(state: Any, buckets: int | None, *, writable: bool = False) -> Any:
    """``state`` checked to be a packed state (for ``buckets`` when the ring is read), as the C refuses."""
    if writable and not isinstance(state, bytearray):
        raise TypeError("a packed state to fold into must be a bytearray")
    size = len(memoryview(state))
    if buckets is None:
        if size < FIXED_SIZE:
            raise ValueError("not a packed state")
    elif buckets <= 0 or size != FIXED_SIZE + 8 * buckets:
        raise ValueError(f"not a packed state for {buckets} buckets")
    return state


# -- the fold -------------------------------------------------------------------------------------


def _decay(b: bytearray, ts: float, half_life: float) -> None:
    """Lazy exponential decay, at most once a minute of event time: counters, categories and heavy
    hitters' counts and errors (contiguous in the layout)."""
    elapsed = ts - _get(_F64, b, LAYOUT["decay_ts"])
    if elapsed < _DECAY_EVERY:
        return
    factor = math.pow(0.5, elapsed / half_life)
    for i in range(N_COUNTERS + N_CATEGORIES + 2 * HH_SLOTS):
        off = _COUNTERS + 4 * i
        _put_f32(b, off, _get(_F32, b, off) * factor)
    _F64.pack_into(b, LAYOUT["decay_ts"], ts)


def _ring_add(b: bytearray, ts: float, cot: bool, tokens: int, n: int, bucket_seconds: float) -> None:
    """Count the request, whether it elicits reasoning, and its output tokens in its minute bucket."""
    rings = FIXED_SIZE
    req, cots, tok = rings, rings + 2 * n, rings + 4 * n
    index = int(ts // bucket_seconds)
    head = _get(_I32, b, LAYOUT["head"])
    if index > head:
        if head < 0 or index - head >= n:
            b[rings : rings + 8 * n] = bytes(8 * n)
        else:
            for i in range(head + 1, index + 1):
                slot = i % n
                _U16.pack_into(b, req + 2 * slot, 0)
                _U16.pack_into(b, cots + 2 * slot, 0)
                _U32.pack_into(b, tok + 4 * slot, 0)
        _I32.pack_into(b, LAYOUT["head"], index)
    elif index <= head - n:
        return  # older than the ring
    slot = index % n
    requests = _get(_U16, b, req + 2 * slot)
    if requests < 0xFFFF:
        _U16.pack_into(b, req + 2 * slot, requests + 1)
        _U16.pack_into(b, cots + 2 * slot, _get(_U16, b, cots + 2 * slot) + (1 if cot else 0))
    total = _get(_U32, b, tok + 4 * slot) + max(tokens, 0)
    _U32.pack_into(b, tok + 4 * slot, min(total, EMPTY))


def _hours_add(b: bytearray, ts: float) -> None:
    """Mark the request's hour: bit ``age`` of the 24-hour mask, age 0 the newest hour."""
    hour = int(ts // 3600.0)
    hour_head = _get(_I32, b, LAYOUT["hour_head"])
    mask = _get(_U32, b, LAYOUT["hour_mask"])
    if hour > hour_head:
        shift = hour - hour_head if hour_head >= 0 else HOURS
        mask = 0 if shift >= HOURS else (mask << shift) & ((1 << HOURS) - 1)
        _I32.pack_into(b, LAYOUT["hour_head"], hour)
        hour_head = hour
    age = hour_head - hour
    if 0 <= age < HOURS:
        mask |= 1 << age
    _U32.pack_into(b, LAYOUT["hour_mask"], mask)


def _gap_add(b: bytearray, gap: float) -> None:
    """Exponentially weighted mean and variance of the gaps within sessions (longer gaps are idle)."""
    if gap > _SESSION_GAP:
        return
    mean, var = _get(_F32, b, LAYOUT["gap_mean"]), _get(_F32, b, LAYOUT["gap_var"])
    if mean == 0.0:
        _put_f32(b, LAYOUT["gap_mean"], gap)
        return
    diff = gap - mean
    _put_f32(b, LAYOUT["gap_mean"], mean + _GAP_ALPHA * diff)
    _put_f32(b, LAYOUT["gap_var"], (1 - _GAP_ALPHA) * (var + _GAP_ALPHA * diff * diff))


def _hh_add(b: bytearray, key: int) -> None:
    """Space-saving heavy hitters of template hashes; a slot is in use while its count is > 0."""
    counts, errors, keys = LAYOUT["hh_counts"], LAYOUT["hh_errors"], LAYOUT["hh_keys"]
    empty = smallest = -1
    smallest_count = 0.0
    for i in range(HH_SLOTS):
        count = _get(_F32, b, counts + 4 * i)
        if count <= 0.0:
            if empty < 0:
                empty = i
            continue
        if _get(_U32, b, keys + 4 * i) == key:
            _put_f32(b, counts + 4 * i, count + 1.0)
            return
        if smallest < 0 or count < smallest_count:
            smallest, smallest_count = i, count
    if empty >= 0:
        _U32.pack_into(b, keys + 4 * empty, key)
        _put_f32(b, counts + 4 * empty, 1.0)
        _put_f32(b, errors + 4 * empty, 0.0)
    else:  # the new key takes the smallest slot; what it inherits is its error bound
        _U32.pack_into(b, keys + 4 * smallest, key)
        _put_f32(b, counts + 4 * smallest, smallest_count + 1.0)
        _put_f32(b, errors + 4 * smallest, smallest_count)


def _bottom_k_add(b: bytearray, off: int, k: int, h: int) -> None:
    """Keep the k smallest distinct hashes, sorted, empty slots last: a KMV sketch."""
    values = list(struct.unpack_from(f"<{k}I", b, off))
    if h >= values[-1] or h in values:
        return
    values.insert(next(i for i, v in enumerate(values) if v > h), h)
    struct.pack_into(f"<{k}I", b, off, *values[:k])


def _hash_text(text: str | None) -> int | None:
    """MurmurHash3 of a non-empty string's UTF-8, else None."""
    if text is None or text == "":
        return None
    return int(mmh3.hash(text.encode("utf-8"), 0, False))


def fold(
    state: bytearray,
    ts: float,
    cot: float,
    ratio: float,
    flags: int,
    category: int,
    template0: int,
    template1: int,
    output_tokens: int,
    ip: str | None,
    user_agent: str | None,
    buckets: int,
    bucket_seconds: float,
    half_life_seconds: float,
    /,
) -> float:
    """Fold one request into ``state`` in place (``account_state.AccountState.add`` says what each step
    is for); returns the decayed request count after it, which decides whether the account is scored."""
    if not 0 <= category < N_CATEGORIES:
        raise ValueError("category out of range")
    if not (ip is None or isinstance(ip, str)) or not (user_agent is None or isinstance(user_agent, str)):
        raise TypeError("ip and user_agent must be str or None")
    b = _state(state, buckets, writable=True)
    ts, cot, ratio = float(ts), float(cot), float(ratio)
    if _get(_F64, b, LAYOUT["first_ts"]) == 0.0:
        _F64.pack_into(b, LAYOUT["first_ts"], ts)
        _F64.pack_into(b, LAYOUT["decay_ts"], ts)
    _decay(b, ts, half_life_seconds)
    _ring_add(b, ts, cot > 0, output_tokens, buckets, bucket_seconds)
    _hours_add(b, ts)
    last_ts = _get(_F64, b, LAYOUT["last_ts"])
    if ts > last_ts:
        if last_ts != 0.0:
            _gap_add(b, ts - last_ts)
        _F64.pack_into(b, LAYOUT["last_ts"], ts)
    _add_f32(b, _COUNTERS + 4 * REQUESTS, 1.0)
    _add_f32(b, _COUNTERS + 4 * COT, cot)
    _add_f32(b, _COUNTERS + 4 * RATIO, ratio if math.isfinite(ratio) else 0.0)
    for bit, counter in _FLAG_COUNTERS:
        if flags & bit:
            _add_f32(b, _COUNTERS + 4 * counter, 1.0)
    _add_f32(b, LAYOUT["categories"] + 4 * category, 1.0)
    if template0 >= 0:
        _hh_add(b, template0)
        _bottom_k_add(b, LAYOUT["templates"], TEMPLATE_K, template0)
    if template1 >= 0:
        _hh_add(b, template1)
    for text, name, k in ((ip, "ips", IP_K), (user_agent, "uas", UA_K)):
        h = _hash_text(text)
        if h is not None:
            _bottom_k_add(b, LAYOUT[name], k, h)
    return float(_get(_F32, b, _COUNTERS + 4 * REQUESTS))


def page_hinkley(
    state: bytearray, x: float, min_instances: float, delta: float, threshold: float, alpha: float, /
) -> bool:
    """Fold ``x`` into the account's Page-Hinkley detector (River's mode "up", step for step; see
    ``drift.py``): True when the stream's mean has risen, and the detector restarts."""
    b = _state(state, None, writable=True)
    off = LAYOUT["drift"]
    n, mean, cumulative, minimum = struct.unpack_from("<4f", b, off)
    n += 1.0
    mean += (x - mean) / n
    cumulative = alpha * cumulative + (x - mean) - delta
    minimum = min(minimum, cumulative)
    detected = n >= min_instances and cumulative - minimum > threshold
    if detected:
        n = mean = cumulative = 0.0
        minimum = math.inf
    for i, value in enumerate((n, mean, cumulative, minimum)):
        _put_f32(b, off + 4 * i, value)
    return bool(detected)


# -- the readers ----------------------------------------------------------------------------------


def _ring_window(b: Any, index: int, n: int) -> tuple[int, int, int]:
    """Requests, output tokens and the busiest bucket's requests in the hour ending at bucket ``index``."""
    requests = tokens = burst = 0
    head = _get(_I32, b, LAYOUT["head"])
    if head >= 0 and index - head < n:
        for i in range(max(head, index) - n + 1, min(index, head) + 1):
            slot = i % n
            r = _get(_U16, b, FIXED_SIZE + 2 * slot)
            requests += r
            tokens += _get(_U32, b, FIXED_SIZE + 4 * n + 4 * slot)
            burst = max(burst, r)
    return requests, tokens, burst


def _top_slot(b: Any) -> tuple[int, float]:
    """The heavy hitter with the largest guaranteed count (count minus overestimate): slot (or -1), count."""
    best, guaranteed = -1, 0.0
    for i in range(HH_SLOTS):
        count = _get(_F32, b, LAYOUT["hh_counts"] + 4 * i)
        g = count - _get(_F32, b, LAYOUT["hh_errors"] + 4 * i)
        if count > 0 and (best < 0 or g > guaranteed):
            best, guaranteed = i, g
    return best, guaranteed


def window(state: Any, now_index: int, buckets: int, /) -> tuple[int, int, int]:
    """Requests, output tokens and the busiest bucket's requests in the hour ending at ``now_index``."""
    return _ring_window(_state(state, buckets), now_index, buckets)


def top_template(state: Any, /) -> tuple[int, float] | None:
    """The heavy hitter with the largest guaranteed count, and that count."""
    b = _state(state, None)
    best, guaranteed = _top_slot(b)
    return None if best < 0 else (_get(_U32, b, LAYOUT["hh_keys"] + 4 * best), guaranteed)


def _log_scaled(value: float, cap: float) -> float:
    return min(1.0, math.log1p(max(value, 0.0)) / math.log1p(cap))


def _bottom_k_estimate(b: Any, off: int, k: int) -> float:
    """Distinct values in a bottom-k sketch: exact below k, else (k - 1) / (k-th smallest as a fraction)."""
    values = struct.unpack_from(f"<{k}I", b, off)
    used = sum(1 for v in values if v != EMPTY)
    return float(used) if used < k else (k - 1) / ((values[k - 1] + 1.0) / 4294967296.0)


def vector(
    state: Any,
    now: float,
    buckets: float,
    bucket_seconds: float,
    share_prior: float,
    requests_per_hour_cap: float,
    burst_per_minute_cap: float,
    output_tokens_per_hour_cap: float,
    ratio_cap: float,
    distinct_ips_cap: float,
    distinct_uas_cap: float,
    new_account_seconds: float,
    drift_memory_seconds: float,
    /,
) -> tuple[float, ...]:
    """The account's window vector at ``now``, in :data:`VECTOR_FEATURES` order
    (``scoring.account_vector`` and ``rules/features.toml`` say what each feature means)."""
    n = int(buckets)
    b = _state(state, n)
    c = struct.unpack_from(f"<{N_COUNTERS}f", b, _COUNTERS)
    cats = struct.unpack_from(f"<{N_CATEGORIES}f", b, LAYOUT["categories"])
    requests = c[REQUESTS]
    shrunk = requests + share_prior
    total = entropy = 0.0
    for x in cats:  # summed in order, as the C does (sum() may compensate)
        if x > 0:
            total += x
    for x in cats if total > 0 else ():
        if x > 0:
            entropy += x / total * math.log(x / total)
    hour = _ring_window(b, int(now // bucket_seconds), n)
    top, guaranteed = _top_slot(b)
    gap_mean, gap_var = _get(_F32, b, LAYOUT["gap_mean"]), _get(_F32, b, LAYOUT["gap_var"])
    gap_cv = math.pow(gap_var, 0.5) / gap_mean if gap_mean > 0 else 1.0
    hour_head = _get(_I32, b, LAYOUT["hour_head"])
    behind = int(now // 3600.0) - hour_head
    active_hours = 0
    if behind < HOURS and hour_head >= 0:
        active_hours = ((_get(_U32, b, LAYOUT["hour_mask"]) << max(behind, 0)) & ((1 << HOURS) - 1)).bit_count()
    created = _get(_F64, b, LAYOUT["created_ts"])
    age = now - (created or _get(_F64, b, LAYOUT["first_ts"]))
    new_account = 1.0 - age / new_account_seconds
    drift_ts = _get(_F64, b, LAYOUT["drift_ts"])
    return (
        _log_scaled(float(hour[0]), requests_per_hour_cap),
        _log_scaled(float(hour[2]), burst_per_minute_cap),
        _log_scaled(float(hour[1]), output_tokens_per_hour_cap),
        c[COT] / shrunk,
        c[ROLE] / shrunk,
        0.0 if top < 0 or shrunk <= 0 else min(guaranteed / shrunk, 1.0),
        1.0 - (-entropy) / math.log(N_CATEGORIES) if total > 0 else 0.0,
        _log_scaled(c[RATIO] / requests if requests > 0 else 0.0, ratio_cap),
        c[SINGLE_TURN] / shrunk,
        c[MAX_HIGH] / shrunk,
        1.0 / (1.0 + gap_cv) if requests >= 3 else 0.0,
        active_hours / 24.0,
        min(_bottom_k_estimate(b, LAYOUT["ips"], IP_K) / distinct_ips_cap, 1.0),
        min(_bottom_k_estimate(b, LAYOUT["uas"], UA_K) / distinct_uas_cap, 1.0),
        min(new_account, 1.0) if new_account > 0.0 else 0.0,  # a late event can predate the account
        c[NEW_MODEL] / shrunk,
        c[TOOLS] / shrunk,
        1.0 if drift_ts and now - drift_ts < drift_memory_seconds else 0.0,
    )


def summary(state: Any, now: float, buckets: int, bucket_seconds: float, account_type: str, /) -> list[Any]:
    """What the cluster stage needs of the account at ``now``: clusters.MemberSummary's fields (last_ts,
    requests_last_hour, requests, cot, new_model, top_template | None, account_type, first_ts,
    tokens_last_hour), JSON-ready."""
    b = _state(state, buckets)
    requests, tokens, _ = _ring_window(b, int(now // bucket_seconds), buckets)
    top, _ = _top_slot(b)
    c = struct.unpack_from(f"<{N_COUNTERS}f", b, _COUNTERS)
    return [
        _get(_F64, b, LAYOUT["last_ts"]), requests, c[REQUESTS], c[COT], c[NEW_MODEL],
        None if top < 0 else _get(_U32, b, LAYOUT["hh_keys"] + 4 * top),
        account_type, _get(_F64, b, LAYOUT["first_ts"]), tokens,
    ]  # fmt: skip
