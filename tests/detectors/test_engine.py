"""Specification of the engine: deterministic, state lives in the store, models checkpoint."""

from __future__ import annotations

import pickle
import random
import tracemalloc
from dataclasses import replace

from detectors.account_state import Counters
from detectors.clusters import load_clusters
from detectors.config import load_scoring
from detectors.engine import Engine, MemoryStore
from sim import personas as P
from tests.conftest import make_event

DAY = 86_400.0
T0 = 1_800_000_000.0 - 1_800_000_000.0 % DAY


def traffic(seed: int = 5) -> list[dict[str, object]]:
    rng = random.Random(seed)
    streams = [P.chat_user(f"chat-{i}", rng, T0, days=1) for i in range(20)]
    streams.append(P.cot_harvester("bot", rng, T0 + 3600, hours=2))
    return list(P.merged(streams))


def run(engine: Engine, events: list[dict[str, object]], flush_every: int = 0) -> list[tuple[str, str, str]]:
    out = []
    for i, e in enumerate(events, 1):
        out += [(d.subject_id, d.action, d.decision_id) for d in engine.process(e)]
        if flush_every and i % flush_every == 0:
            engine.flush()
    return out


def test_engine_replay_is_deterministic() -> None:
    events = traffic()
    first, second = run(Engine(MemoryStore()), events), run(Engine(MemoryStore()), events)
    assert first and first == second  # same subjects, actions and decision ids


def test_engine_gives_the_same_decisions_whether_or_not_state_is_flushed() -> None:
    events = traffic()
    assert run(Engine(MemoryStore()), events) == run(Engine(MemoryStore()), events, flush_every=97)


def test_engine_state_survives_a_restart_through_the_store() -> None:
    events = [make_event(i, account="a", ts=T0 + i, prompt="Explain step by step: task") for i in range(40)]
    store = MemoryStore()
    first = Engine(store)
    run(first, events[:20])
    first.flush()
    restarted = Engine(store)  # a new process with the same table
    restarted.restore(first.checkpoint())
    run(restarted, events[20:])
    restarted.flush()
    state = restarted.states.read("a")
    assert state is not None and state.counters[0] == 40  # all requests remembered


def test_engine_checkpoint_refuses_another_river_version() -> None:
    engine = Engine(MemoryStore())
    run(engine, traffic())
    blob = pickle.loads(engine.checkpoint())
    blob["river"] = "0.0.1"
    fresh = Engine(MemoryStore())
    assert fresh.restore(pickle.dumps(blob)) is False
    assert fresh.anomaly == {}
    assert Engine(MemoryStore()).restore(engine.checkpoint()) is True


def test_engine_evicts_idle_accounts_by_event_time() -> None:
    store = MemoryStore()
    engine = Engine(store)
    for i in range(10):
        engine.process(make_event(i, account=f"idle-{i}", ts=T0))
    engine.process(make_event(0, account="active", ts=T0 + 3 * DAY))
    assert engine.evict(before=T0 + 3 * DAY - engine.cfg.window.idle_horizon_seconds) == 10
    assert len(store) == 1 and list(engine.states.hot) == ["active"]


def test_idle_sweeps_read_the_store_at_most_once_an_hour_of_event_time_under_the_cap() -> None:
    """A sweep reads every stored state (a second at a million accounts): replay asks every 5,000 events."""
    engine = Engine(MemoryStore())
    engine.process(make_event(0, account="old", ts=T0))
    horizon = engine.cfg.window.idle_horizon_seconds
    assert engine.evict(before=T0 - 1.0) == 0  # swept: nothing idle yet
    assert engine.evict(before=T0 + 1.0) == 0  # "old" is idle now, but the last sweep was a second ago
    assert engine.evict(before=T0 + 3600.0) == 1
    assert horizon > 3600.0  # so an hour's delay in forgetting is small against the horizon


def test_an_account_id_flood_is_evicted_first_and_memory_stays_bounded() -> None:
    """Millions of one-request ids (here 60,000 against caps of a few thousand) must neither grow
    memory with the flood nor push out the evidence of an account that is actually busy."""
    base = load_scoring()
    cfg = replace(base, window=replace(base.window, max_tracked_accounts=2_000))
    clusters = replace(load_clusters(), max_targets=5_000, max_links=10_000)  # the cluster stage's bounds
    store = MemoryStore()
    engine = Engine(store, cfg, clusters=clusters, cache_size=500)
    rng = random.Random(3)
    harvester = P.cot_harvester("harvester", rng, T0, hours=2.0)
    flood = [make_event(i, account=f"flood-{i}", ts=T0 + i * 0.1) for i in range(60_000)]
    tracemalloc.start()
    peaks = []
    for i, event in enumerate(P.merged([harvester, flood]), 1):
        engine.process(event)
        if i % 5_000 == 0:  # as replay sweeps (the worker sweeps every housekeeping interval)
            engine.evict(before=float(event["ts"]) - cfg.window.idle_horizon_seconds)
            assert len(store) <= cfg.window.max_tracked_accounts
            peaks.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    assert engine.states.store.get("harvester") is not None  # the busy account kept its evidence
    # Memory levels off with the cap: the last third of the flood adds (almost) nothing.
    third = len(peaks) // 3
    assert max(peaks[-third:]) < 1.1 * max(peaks[third : 2 * third]), peaks


def test_engine_learns_from_verdicts_and_their_weight_grows() -> None:
    engine = Engine(MemoryStore())
    x_bad = {"cot_rate": 0.9, "template_top": 0.9, "volume": 0.2, "single_turn": 1.0}
    x_good = {"cot_rate": 0.9, "template_top": 0.1, "volume": 0.2, "single_turn": 0.2}
    assert engine.supervised.confidence == 0.0
    for _ in range(100):
        engine.learn_verdict(x_bad, True)
        engine.learn_verdict(x_good, False)
    assert engine.supervised.confidence > 0.7
    assert engine.supervised.score_one(x_bad) > 0.8 > 0.2 > engine.supervised.score_one(x_good)


def test_engine_keeps_a_bounded_model_registry_under_a_flood_of_model_names() -> None:
    engine = Engine(MemoryStore())
    for i in range(5000):
        engine.process(make_event(i, account="a", ts=T0 + i, model=f"junk-{i}"))
        if i % 100 == 0:
            engine.process(make_event(10**6 + i, account="b", ts=T0 + i, model="frontier-1"))  # in steady use
    assert len(engine.models.first_seen) <= 1024
    # After the flood, a newly released model is still seen as new (issue 22, item 10), the one in use is not.
    assert engine.models.is_new("frontier-2", T0 + 6000)
    assert not engine.models.is_new("frontier-1", T0 + 6000)


def test_a_poisoned_verdict_cannot_switch_detection_off() -> None:
    """Issue 22, item 5: one feedback vector {"cot_rate": 1e308} used to make every later score NaN (level
    0), persisted in the checkpoint. It is refused; the harvester is still enforced."""
    engine = Engine(MemoryStore())
    for poison in ({"cot_rate": 1e308}, {"cot_rate": float("nan")}, {"volume": -5.0}, {"__class__": 0.5}):
        assert not engine.learn_verdict(poison, False)
    assert engine.supervised.verdicts == 0
    restored = Engine(MemoryStore())
    assert restored.restore(engine.checkpoint())
    actions = {a for account, a, _ in run(restored, traffic()) if account == "bot"}
    assert actions & {"limit", "block"}


def _ladder_only_by_persistence() -> Engine:
    """An engine whose score alone reaches challenge at once and never limit: any limit is an escalation."""
    cfg = load_scoring()
    return Engine(MemoryStore(), replace(cfg, policy=replace(cfg.policy, challenge=0.01, limit=0.999999, block=1.0)))


def test_an_account_that_keeps_sending_under_a_challenge_is_limited_after_the_escalation_span() -> None:
    engine = _ladder_only_by_persistence()
    policy = engine.cfg.policy
    events = [make_event(i, account="a", ts=T0 + 30.0 * i, prompt="Explain step by step: task") for i in range(120)]
    decided = [d for e in events for d in engine.process(e)]
    challenge = next(d for d in decided if d.action == "challenge")
    limit = next(d for d in decided if d.action == "limit")
    assert policy.escalate_after_seconds <= limit.issued_at - challenge.issued_at <= policy.escalate_after_seconds + 60
    next_rung_due = limit.issued_at + policy.escalate_after_seconds
    assert not any(d.action == "block" for d in decided if d.issued_at < next_rung_due)


def test_an_account_whose_traffic_falls_off_under_a_challenge_is_not_escalated() -> None:
    engine = _ladder_only_by_persistence()
    policy = engine.cfg.policy
    burst = [make_event(i, account="a", ts=T0 + 30.0 * i, prompt="Explain step by step: task") for i in range(20)]
    gap = policy.escalate_after_seconds / (policy.escalate_min_requests - 2)  # fewer than the minimum per span
    trickle = [make_event(40 + i, account="a", ts=T0 + 1800 + gap * i, prompt="Explain step by step: task")
               for i in range(30)]  # fmt: skip
    decided = [d for e in burst + trickle for d in engine.process(e)]
    assert any(d.action == "challenge" for d in decided)
    assert not any(d.action in ("limit", "block") for d in decided)


def test_the_cohorts_typical_values_come_from_accounts_under_no_decision() -> None:
    """Issue 24: a cohort that is mostly attackers made an attacker's CoT rate look typical (0.74 vs 0.71)."""
    rng = random.Random(3)
    streams = [P.chat_user(f"chat-{i}", rng, T0, days=1) for i in range(3)]
    streams += [P.cot_harvester(f"bot-{i}", rng, T0 + 600, hours=6, gap=3.0) for i in range(4)]
    events = [{**e, "account_type": "standard"} for e in P.merged(streams)]  # one cohort, mostly harvesters
    engine = Engine(MemoryStore())
    decided = {d.subject_id for e in events for d in engine.process(e)}
    assert {f"bot-{i}" for i in range(4)} <= decided and not any(s.startswith("chat") for s in decided)
    bot = engine.states.read("bot-0")
    assert bot is not None and bot.share(Counters.COT) > 0.5  # the harvesters' CoT rate, most of the cohort's ticks
    assert engine.norms["standard"].typical("cot_rate") < 0.1


def test_a_flood_of_fresh_account_ids_cannot_grow_the_store_past_the_cap_between_sweeps() -> None:
    """Issue 22, item 10: the cap used to be checked only by the timed sweep (every 60 s in the worker)."""
    cfg = load_scoring()
    cap = 100
    engine = Engine(MemoryStore(), replace(cfg, window=replace(cfg.window, max_tracked_accounts=cap)))
    busiest = [make_event(i, account="busy", ts=T0 + i) for i in range(50)]
    for e in busiest:
        engine.process(e)
    peak = 0
    for i in range(2_000):  # one request each, never flushed or swept by a caller
        engine.process(make_event(i, account=f"fresh-{i}", ts=T0 + 60 + i * 0.01))
        peak = max(peak, len(engine.states.store) + engine.states.new_accounts)
    assert peak <= cap + 1 + 1
    engine.flush()
    assert engine.states.store.get("busy") is not None  # the account with evidence outlives the flood


def test_an_event_replayed_after_its_state_was_written_is_not_counted_twice() -> None:
    """A worker that wrote the state and died before committing offsets reads the batch again: the offsets
    stored with each account's state make the fold idempotent, so counts are exact (issue 23, item 3)."""
    events = [make_event(i, account="a", ts=T0 + i) for i in range(30)]
    store = MemoryStore()
    first = Engine(store)
    for offset, event in enumerate(events[:20]):
        first.process(event, partition=3, offset=100 + offset)
    first.flush()  # the state reached the changelog; the offsets were never committed
    restarted = Engine(store)
    for offset, event in enumerate(events):  # so the whole stream comes again from offset 100
        restarted.process(event, partition=3, offset=100 + offset)
    restarted.flush()
    state = restarted.states.read("a")
    assert state is not None and restarted.replayed == 20
    assert state.window(T0 + 30, load_scoring().window).requests == 30
    assert (state.source_partition, state.source_offset) == (3, 129)
    # The same offsets from another partition are other events (the topic was repartitioned): folded.
    restarted.process(make_event(99, account="a", ts=T0 + 31), partition=1, offset=100)
    again = restarted.states.read("a")
    assert again is not None and again.window(T0 + 31, load_scoring().window).requests == 31
