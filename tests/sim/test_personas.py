"""The campaign and look-alike personas behave as their docstrings say (the evaluation depends on it)."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

from detectors.features import extract, load_phrasebook
from sim import personas as P
from sim import realdata

T0 = 1_800_000_000.0


def test_a_synchronized_pool_shares_one_schedule_member_by_member() -> None:
    rng = random.Random(1)
    pool = [P.synchronized_harvester(f"a{i}", rng, T0, member=i, members=5, pool_start=T0, hours=0.1, gap=2.0)
            for i in range(5)]  # fmt: skip
    merged = list(P.merged(pool))
    # request j goes to member j mod 5, every 2 s: the load is spread evenly, in lockstep
    assert [e["account_id"] for e in merged[:10]] == [f"a{j % 5}" for j in range(10)]
    assert Counter(len(p) for p in pool).most_common(1)[0][1] >= 4


def test_the_coding_campaign_moves_about_half_its_traffic_to_the_new_model_after_release() -> None:
    events = P.coding_harvester("c", random.Random(2), T0, origin=T0, hours=36, gap=20.0, pivot_at_hours=24)
    before = [e for e in events if e["ts"] < T0 + 24 * 3600]
    after = [e for e in events if e["ts"] >= T0 + 30 * 3600]  # the release plus the pivot's delay
    assert not any(e["model"] == "frontier-2" for e in before)
    assert 0.35 < sum(e["model"] == "frontier-2" for e in after) / len(after) < 0.65


def test_the_agentic_campaign_varies_account_types_and_access_paths_across_accounts() -> None:
    rng = random.Random(3)
    firsts = [P.agentic_harvester(f"b{i}", rng, T0, hours=0.5)[0] for i in range(40)]
    assert len({e["account_type"] for e in firsts}) >= 4 and len({e["user_agent"] for e in firsts}) >= 3
    assert all(e["n_tools"] >= 4 and e["system"] for e in firsts)


def test_the_evasive_paraphraser_has_no_stable_template_and_rarely_uses_stock_phrases() -> None:
    events = P.evasive_paraphraser("e", random.Random(4), T0, days=1.0)
    book = load_phrasebook()
    feats = [extract(e, book) for e in events]
    tops = Counter(f.template[0] for f in feats if f.template)
    assert tops.most_common(1)[0][1] / len(feats) < 0.2
    assert len({e["conversation_id"] for e in events}) > 1 and any(e["n_messages"] > 1 for e in events)


def test_ci_keys_come_from_many_runner_ips_and_aggregators_carry_no_metadata() -> None:
    ci = P.ci_key("ci", random.Random(5), T0, days=1.0)
    assert len({e["ip"].rsplit(".", 1)[0] for e in ci}) >= 10
    app = P.aggregator_app("agg", random.Random(6), T0, days=0.5, per_day=2000)
    assert len(app) > 300 and not any("ip" in e or "user_agent" in e for e in app)


def test_human_sessions_take_their_gaps_and_tokens_from_the_azure_trace() -> None:
    rng = random.Random(7)
    times = P.human_times(rng, T0, 30, per_day=40, session_gap=45.0)
    gaps = [b - a for a, b in pairwise(times) if b - a < 3600]
    # the trace's gaps are burstier than an exponential (coefficient of variation > 1)
    mean = sum(gaps) / len(gaps)
    cv = (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5 / mean
    assert cv > 1.2
    tokens = {tuple(P.real_tokens(rng).values()) for _ in range(200)}
    assert tokens <= {(c, max(1, g)) for c, g in realdata.azure_tokens()}
