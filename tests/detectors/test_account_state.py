"""Specification of the per-account rolling state."""

from __future__ import annotations

import pytest

from detectors import _fold
from detectors.account_state import STATE_VERSION, AccountState, Counters, HourWindow
from detectors.config import load_scoring
from detectors.features import RequestFeatures

CFG = load_scoring().window
T0 = 1_800_000_000.0  # a bucket boundary for 60-second buckets


def request(
    cot: float = 0.0,
    template: tuple[int, ...] = (1, 2, 3, 4),
    category: int = 0,
    single_turn: bool = True,
    n_tools: int = 0,
    max_tokens: int = 0,
) -> RequestFeatures:
    return RequestFeatures(
        cot=cot,
        families=0,
        category=category,
        template=template,
        ratio=5.0,
        n_tools=n_tools,
        thinking=False,
        single_turn=single_turn,
        max_tokens=max_tokens,
    )


def fresh() -> AccountState:
    return AccountState.new(CFG, created_ts=T0)


def test_account_state_counts_requests_and_tokens_in_the_last_hour() -> None:
    s = fresh()
    for i in range(120):
        s.add(request(), T0 + i * 30, CFG, output_tokens=100)  # one per 30 s for an hour
    assert s.window(T0 + 3599, CFG) == HourWindow(requests=120, tokens=12_000, burst=2)
    assert s.window(T0 + 3 * 3600, CFG) == HourWindow(0, 0, 0)  # the ring has moved on


def test_account_state_ignores_events_older_than_the_ring_but_keeps_late_ones_inside_it() -> None:
    s = fresh()
    s.add(request(), T0 + 7200, CFG)
    s.add(request(), T0, CFG)  # two hours late: outside the ring
    s.add(request(), T0 + 7000, CFG)  # late, inside the hour
    assert s.window(T0 + 7200, CFG).requests == 2


def test_account_state_shares_decay_towards_recent_behaviour() -> None:
    s = fresh()
    for i in range(100):
        s.add(request(cot=0.0), T0 + i * 60, CFG)
    for i in range(100):
        s.add(request(cot=1.0), T0 + 86_400 + i * 60, CFG)  # a day later, all CoT
    assert s.share(Counters.COT) > 0.85  # yesterday's clean traffic has mostly decayed away


def test_account_state_top_template_share_separates_a_template_from_variety() -> None:
    templated, varied = fresh(), fresh()
    for i in range(200):
        templated.add(request(template=(7, 1000 + i, 2000 + i, 3000 + i)), T0 + i, CFG)
        varied.add(request(template=(4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3)), T0 + i, CFG)
    assert templated.template_top_share() > 0.95
    assert varied.template_top_share() < 0.1


def test_account_state_counts_each_request_property_in_its_own_counter() -> None:
    s = fresh()
    s.add(request(single_turn=False), T0, CFG)
    s.add(request(cot=0.8, single_turn=True), T0 + 1, CFG)
    s.add(request(single_turn=False, n_tools=3), T0 + 2, CFG)
    s.add(request(single_turn=False, max_tokens=CFG.max_tokens_high), T0 + 3, CFG, new_model=True)
    s.add(request(single_turn=False)._replace(thinking=True, families=1 << 5, ratio=float("inf")), T0 + 4, CFG)
    counts = {name: s.counters[getattr(Counters, name)] for name in ("REQUESTS", "SINGLE_TURN", "TOOLS", "MAX_HIGH",
                                                                       "NEW_MODEL", "THINKING", "ROLE")}  # fmt: skip
    assert counts == {"REQUESTS": 5, "SINGLE_TURN": 1, "TOOLS": 1, "MAX_HIGH": 1, "NEW_MODEL": 1, "THINKING": 1,
                      "ROLE": 1}  # fmt: skip
    assert s.counters[Counters.COT] == pytest.approx(0.8)
    assert s.counters[Counters.RATIO] == pytest.approx(4 * 5.0)  # an infinite ratio adds nothing


def test_account_state_heavy_hitters_keep_the_template_that_keeps_coming_back() -> None:
    s = fresh()
    for i in range(400):  # one template in every other request, 200 one-off templates between: 8 slots only
        t = (5, 6) if i % 2 else (10_000 + i, 20_000 + i)
        s.add(request(template=t), T0 + i, CFG)
    assert s.top_template() == 5
    assert 0.4 < s.template_top_share() <= 0.5  # counted without the one-offs' inherited error
    assert len(s.heavy_hitters()) == 8


def test_account_state_estimates_distinct_ips_with_a_fixed_size_sketch() -> None:
    s = fresh()
    for i in range(1000):
        s.add(request(), T0 + i, CFG, ip=f"10.0.{i // 250}.{i % 250}")
    assert 600 < s.distinct_ips() < 1600  # bottom-8 KMV: a rough estimate, in bounded space
    one = fresh()
    for i in range(50):
        one.add(request(), T0 + i, CFG, ip="192.0.2.1")
    assert one.distinct_ips() == 1


def test_account_state_active_hours_tell_round_the_clock_use() -> None:
    bot, human = fresh(), fresh()
    for h in range(24):
        bot.add(request(), T0 + h * 3600 + 5, CFG)
        if 9 <= h < 17:
            human.add(request(), T0 + h * 3600 + 5, CFG)
    now = T0 + 23 * 3600 + 100
    assert bot.active_hours(now) == 24 and human.active_hours(now) == 8


def test_account_state_gap_regularity_tells_a_metronome_from_a_person() -> None:
    import random

    rng = random.Random(3)
    metronome, person = fresh(), fresh()
    t1 = t2 = T0
    for _ in range(300):
        t1 += 2.0
        t2 += rng.expovariate(1 / 20)
        metronome.add(request(), t1, CFG)
        person.add(request(), t2, CFG)
    assert metronome.gap_cv() < 0.05 and person.gap_cv() > 0.5


def test_account_state_round_trips_through_bytes() -> None:
    s = fresh()
    for i in range(300):
        s.add(
            request(cot=0.8, category=i % 3, template=(i % 5, 10, 20, 30)),
            T0 + i * 7.3,
            CFG,
            output_tokens=500,
            ip=f"198.51.100.{i % 20}",
            user_agent="sdk/1.0",
            new_model=i % 2 == 0,
        )
    s.action_level, s.action_expires, s.drift_ts = 2, T0 + 900, T0 + 50
    restored = AccountState.unpack(s.pack(), CFG)
    assert restored == s
    assert restored is not None and restored.template_top_share() == pytest.approx(s.template_top_share(), 1e-6)


@pytest.mark.parametrize(
    "data",
    [None, b"", b"\x00" * 10, bytes([STATE_VERSION + 1]) + fresh().pack()[1:], fresh().pack()[:-1]],
    ids=["none", "empty", "truncated", "other-version", "other-ring-size"],
)
def test_account_state_refuses_unreadable_bytes(data: bytes | None) -> None:
    assert AccountState.unpack(data, CFG) is None


def test_account_state_packs_into_under_a_kilobyte_whatever_it_has_seen() -> None:
    s = fresh()
    for i in range(5000):
        s.add(
            request(template=(i, i + 1, i + 2, i + 3), category=i % 8),
            T0 + i,
            CFG,
            ip=f"203.0.113.{i % 256}",
            user_agent=f"ua-{i}",
        )
    assert len(s.pack()) == len(fresh().pack()) < 1024


def test_the_c_fold_refuses_bytes_that_are_not_a_state_of_this_ring_size() -> None:
    with pytest.raises(ValueError, match="not a packed state"):
        AccountState(bytearray(fresh().pack()[:-1]), CFG.buckets).add(request(), T0, CFG)
    with pytest.raises(BufferError, match="not writable"):  # the fold writes in place: read-only bytes are refused
        _fold.fold(fresh().pack(), T0, 0.0, 1.0, 0, 0, -1, -1, 0, None, None, CFG.buckets, 60.0, 21600.0)  # type: ignore[arg-type]


def test_the_c_readers_refuse_what_is_not_a_state_instead_of_reading_past_it() -> None:
    short = bytearray(fresh().pack()[:-1])
    params = (CFG.buckets, CFG.bucket_seconds, 5, 3600, 600, 5e6, 100, 16, 8, 604800, 86400)
    with pytest.raises(ValueError, match="not a packed state"):
        _fold.vector(short, T0, *params)
    with pytest.raises(ValueError, match="not a packed state"):
        _fold.summary(short, T0, CFG.buckets, CFG.bucket_seconds, "standard")
    with pytest.raises(ValueError, match="not a packed state"):
        _fold.page_hinkley(bytearray(10), 1.0, 20, 0.1, 10.0, 0.9999)
    with pytest.raises(BufferError, match="not writable"):  # updated in place: read-only bytes are refused
        _fold.page_hinkley(fresh().pack(), 1.0, 20, 0.1, 10.0, 0.9999)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _fold.vector(fresh().data, T0)  # type: ignore[call-arg]
