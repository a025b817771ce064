"""The two hops of cluster detection: partials from account partitions, one cluster stage, verdicts back.

The worker moves these messages over Kafka; here they move by hand, which is what lets a test split one
pool over two "workers" and check that the result is the in-process (replay) result.
"""

from __future__ import annotations

import os
import pickle
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.cluster_stage import ClusterStage, ClusterVerdict, LinkShard, split_partial
from detectors.clusters import load_clusters
from detectors.config import load_scoring
from detectors.engine import Engine, MemoryStore
from detectors.types import Decision
from sim import personas as P
from sim.scenario import generate, load_scenario

T0 = 1_800_000_000.0
ROOT = Path(__file__).resolve().parents[2]


def pool_traffic() -> list[dict[str, Any]]:
    rng = random.Random(3)
    streams = [
        P.low_and_slow(f"h-{i}", rng, T0 + rng.uniform(0, 600), days=0.25, per_day=120,
                       payment_fingerprint=f"card-{i % 2}", ip=f"100.{rng.randrange(64, 128)}.{i}.9")
        for i in range(40)
    ]  # fmt: skip
    # People whose afternoon sessions overlap the pool's six hours (T0 is 08:00 UTC; sessions centre on 14:00).
    people = [P.chat_user(f"p-{i}", rng, T0 - 8 * 3600, days=1.0, per_day=40) for i in range(20)]
    streams += [[e for e in person if T0 <= e["ts"] < T0 + 6 * 3600] for person in people]
    return list(P.merged(streams))


def cluster_actions(decisions: list[Decision]) -> dict[str, str]:
    """Each account's strongest cluster action."""
    order = ["observe", "challenge", "limit", "block"]
    out: dict[str, str] = {}
    for d in decisions:
        if d.cluster_id and order.index(d.action) > order.index(out.get(d.subject_id, "observe")):
            out[d.subject_id] = d.action
    return out


def through_two_account_stages(events: list[dict[str, Any]], stage: ClusterStage,
                               send: Callable[[dict[str, Any]], Any]) -> list[Decision]:  # fmt: skip
    """Two account stages (accounts split by a hash, as partitions would) process ``events``; about once a
    second each drained partial goes to ``send`` and ``stage`` ticks when due, its verdicts going back
    through JSON to the account stage owning the account. Every decision made, in order."""
    workers = [Engine(MemoryStore(), local_clusters=False) for _ in range(2)]
    decisions: list[Decision] = []
    offsets = [0, 0]
    drained_at = T0
    for e in events:
        w = hash(e["account_id"]) % 2
        offsets[w] += 1
        decisions += workers[w].process(e, partition=w, offset=offsets[w])
        if e["ts"] - drained_at < 1.0:
            continue
        drained_at = e["ts"]
        for worker in workers:
            for message in worker.drain_partials(e["ts"]):
                send(message)
        if stage.due(stage.latest):
            for verdict in stage.tick(stage.latest):
                record = ClusterVerdict.from_record(orjson.loads(orjson.dumps(verdict.to_record())))
                if (d := workers[hash(verdict.account) % 2].apply_verdict(record)) is not None:
                    decisions.append(d)
    return decisions


def test_a_pool_split_over_two_account_stages_gets_the_in_process_verdicts() -> None:
    events = pool_traffic()
    local = Engine(MemoryStore())
    in_process = [d for e in events for d in local.process(e)]

    # Two account stages, one cluster stage between them; messages go through JSON as through Kafka.
    stage = ClusterStage(load_clusters(), load_scoring().policy, load_scoring().anomaly)
    two_stage = through_two_account_stages(events, stage, lambda m: stage.merge(orjson.loads(orjson.dumps(m))))

    expected, got = cluster_actions(in_process), cluster_actions(two_stage)
    assert len(expected) >= 36 and not [a for a in expected if a.startswith("p-")]
    assert set(got) == set(expected)
    assert sum(got[a] == expected[a] for a in got) >= 0.9 * len(expected)


def decisions_of(engine: Engine, events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(d.subject_id, d.action, d.cluster_id, d.reason, round(d.score, 9), d.issued_at)
            for e in events for d in engine.process(e)]  # fmt: skip


@pytest.mark.parametrize("shards", [2, 3])
def test_a_sharded_stage_decides_exactly_as_one_linker_on_a_recorded_stream(shards: int) -> None:
    """Targets are split over link shards and their links merged (issue 23, item 5): the same clusters,
    hence the same decisions, as one linker over every target, on cards, /24s, ASNs and templates."""
    mixed, _ = generate(load_scenario(ROOT / "sim" / "scenarios" / "mixed.toml", seed=5))
    for events in (pool_traffic(), list(mixed)):
        one = decisions_of(Engine(MemoryStore()), events)
        assert sum(1 for d in one if d[2]) >= 20  # cluster decisions are there to compare
        assert decisions_of(Engine(MemoryStore(), stage_shards=shards), events) == one


def test_two_link_shards_and_a_merging_stage_over_json_get_the_in_process_verdicts() -> None:
    """The worker's topology, with messages moved by hand: two account stages send each partial's
    pieces to the link shard owning them; each shard forwards the links it formed to one merging stage."""
    events = pool_traffic()
    local = Engine(MemoryStore())
    in_process = cluster_actions([d for e in events for d in local.process(e)])

    shards = [LinkShard(load_clusters(), k) for k in range(2)]
    shard_offsets = [0, 0]  # each shard's partition of cluster-partials
    stage = ClusterStage(load_clusters(), load_scoring().policy, load_scoring().anomaly, merging=True)

    def send(message: dict[str, Any]) -> None:
        for k, piece in split_partial(message, len(shards)):
            shard_offsets[k] += 1
            if shards[k].merge(orjson.loads(orjson.dumps(piece))):
                assert stage.merge(orjson.loads(orjson.dumps(shards[k].drain(seq=shard_offsets[k]))))

    decisions = through_two_account_stages(events, stage, send)

    got = cluster_actions(decisions)
    assert len(in_process) >= 36 and set(got) == set(in_process)
    assert sum(got[a] == in_process[a] for a in got) >= 0.9 * len(in_process)


def test_a_merging_stage_drops_a_shard_message_it_merged_and_refuses_malformed_links() -> None:
    stage = ClusterStage(load_clusters(), load_scoring().policy, load_scoring().anomaly, merging=True)
    message = {"shard": 1, "seq": 40, "at": T0, "members": {}, "links": [["a", "@card:x", 4.0, T0, True]]}
    assert stage.merge(message) and not stage.merge({**message, "seq": 39}) and stage.duplicates == 1
    assert stage.merge({**message, "shard": 0})  # another shard's sequence is its own
    bad_links = ([["a", "b", -1.0, T0, False]], [["a", "b", "4", T0, False]], [["a", "b", 1.0]], ["ab"])
    for seq, links in enumerate(bad_links, 41):
        with pytest.raises(ValueError):
            stage.merge({**message, "seq": seq, "links": links})
    with pytest.raises(ValueError, match="not observations"):
        stage.merge({**message, "seq": 60, "obs": [["a", T0, [["ip24:x", False]]]]})
    with pytest.raises(ValueError, match="merging stage only"):
        ClusterStage(load_clusters(), load_scoring().policy, load_scoring().anomaly).merge(message)


def test_replayed_partials_are_dropped_by_source_partition_and_sequence() -> None:
    stage = ClusterStage(load_clusters(), load_scoring().policy, load_scoring().anomaly)
    first = {"partition": 2, "seq": 100, "at": T0, "members": {},
             "obs": [[f"a{i}", T0 + i, [["payment_fingerprint:pf", True]]] for i in range(6)]}  # fmt: skip
    assert stage.merge(first)
    links = dict(stage.linker.links)
    # After a rebalance the new owner re-reads from the last commit and rebuilds overlapping partials.
    assert not stage.merge({**first, "seq": 90}) and not stage.merge(first)
    assert stage.duplicates == 2 and dict(stage.linker.links) == links
    # The same offsets on another source partition are different events.
    assert stage.merge({**first, "partition": 3})


def test_a_member_summary_of_the_wrong_shape_is_refused_at_merge_and_cannot_break_a_tick() -> None:
    stage = ClusterStage(load_clusters(), load_scoring().policy, load_scoring().anomaly)
    good = [T0, 10, 50.0, 40.0, 0.0, 7, "standard", T0 - 60, 1000]
    obs = [[f"a{i}", T0 + i, [["payment_fingerprint:pf", True]]] for i in range(6)]
    assert stage.merge({"partition": 0, "seq": 1, "at": T0, "members": {f"a{i}": good for i in range(6)}, "obs": obs})
    for seq, bad in enumerate(([T0, 10], good + [1, 2], 42), 2):  # too few, too many, not a list: invalid
        with pytest.raises((ValueError, TypeError)):
            stage.merge({"partition": 0, "seq": seq, "at": T0, "members": {"a0": bad}, "obs": []})
    assert stage.merge({"partition": 0, "seq": 9, "at": T0, "members": {"a1": good[:7]}, "obs": []})  # older sender
    assert {v.account for v in stage.tick(T0 + 60)} <= {f"a{i}" for i in range(6)}  # the tick reads every member


def test_the_stage_sends_a_member_a_verdict_only_when_it_has_something_new() -> None:
    events = pool_traffic()
    engine = Engine(MemoryStore())
    for e in events:
        engine.process(e)
    stage = engine.cluster_stage
    now = stage.latest
    held = {a: h.action_level for a, h in stage.held.items() if h.action_level}
    assert len(held) >= 36  # the stream's ticks sent every member a verdict…
    stage.tick(now + 1)  # (renewing those due)
    assert stage.tick(now + 2) == []  # …and a tick with nothing new says nothing: no duplicates.


def test_the_stage_survives_a_checkpoint() -> None:
    engine = Engine(MemoryStore())
    for e in pool_traffic()[:600]:
        engine.process(e)
    restored = Engine(MemoryStore())
    assert restored.restore(engine.checkpoint())
    assert restored.cluster_stage.seen == engine.cluster_stage.seen
    assert pickle.dumps(restored.cluster_stage.linker.links) == pickle.dumps(engine.cluster_stage.linker.links)


def test_a_member_linked_only_by_co_occurrence_and_unlike_its_cluster_is_at_most_challenged() -> None:
    """A busy coding agent on the pool's /24 co-occurs with it all day; the pool is limited, the agent is
    not — guilt by association needs some evidence of the member's own."""
    stage = ClusterStage(load_clusters(), load_scoring().policy, load_scoring().anomaly)
    pool = [f"h-{i}" for i in range(30)]
    obs: list[list[Any]] = []
    for minute in range(240):
        t = T0 + minute * 60.0
        for i, account in enumerate(pool):
            if minute % 3 == i % 3:  # the pool takes turns; each member on the card and the /24
                obs.append([account, t + i, [["payment_fingerprint:card", True], ["ip24:100.64.1", False]]])
        obs.append(["agent", t + 5.0, [["ip24:100.64.1", False]]])  # always there, like the pool
    members = {a: [T0 + 14_399, 40.0, 600.0, 590.0, 0.0, 7, "standard"] for a in pool}
    members["agent"] = [T0 + 14_399, 60.0, 900.0, 0.0, 0.0, 99, "standard"]
    stage.merge({"partition": 0, "seq": 1, "at": T0 + 14_400, "obs": obs, "members": members})
    verdicts = {v.account: v for v in stage.tick(T0 + 14_400)}
    assert "agent" in verdicts and verdicts["agent"].cluster_id == verdicts["h-0"].cluster_id  # linked…
    assert all(verdicts[a].level >= 2 for a in pool)  # …the pool limited or blocked…
    assert verdicts["agent"].level == 1  # …the agent only challenged


class EagerEngine(Engine):
    """The in-process stage as the worker feeds it: every touched member's summary read at the drain."""

    def _local_partials(self, now: float) -> list[dict[str, Any]]:
        return self.drain_partials(now)


def test_in_process_summaries_read_only_when_a_tick_needs_them_are_the_ones_a_drain_would_send() -> None:
    reads = {"lazy": 0, "eager": 0}

    def counting(engine: Engine, name: str) -> Engine:
        read = engine._member_fields

        def counted(account: str, account_type: str, at: float) -> list[Any] | None:
            reads[name] += 1
            return read(account, account_type, at)

        engine._member_fields = counted  # type: ignore[method-assign]
        engine.cluster_stage.resolve = counted
        return engine

    lazy, eager = counting(Engine(MemoryStore()), "lazy"), counting(EagerEngine(MemoryStore()), "eager")
    events = pool_traffic()
    # Two hours later one more request, so that most pending summaries are read long after they were due.
    events.append({**events[-1], "event_id": "late", "ts": events[-1]["ts"] + 7200})
    lazy_decisions = [d for e in events for d in lazy.process(e)]
    eager_decisions = [d for e in events for d in eager.process(e)]

    assert len(cluster_actions(eager_decisions)) >= 36
    assert lazy_decisions == eager_decisions
    assert 0 < reads["lazy"] < reads["eager"]  # the chat users, in no cluster, are never read
    assert list(lazy.cluster_stage.snapshot()["members"].items()) == list(eager.cluster_stage.members.items())


def test_a_pending_member_whose_state_is_gone_drops_out_of_its_cluster() -> None:
    stage = ClusterStage(load_clusters(), load_scoring().policy, load_scoring().anomaly)
    fields = [T0, 40.0, 600.0, 590.0, 0.0, 7, "standard", T0 - 600, 1000.0]
    stage.resolve = lambda account, account_type, at: None if account == "a0" else fields
    obs = [[f"a{i}", T0 + i, [["payment_fingerprint:card", True]]] for i in range(6)]
    touched = {f"a{i}": "standard" for i in range(6)}
    stage.merge({"partition": 0, "seq": 1, "at": T0 + 60, "obs": obs, "members": {}, "touched": touched})
    verdicts = stage.tick(T0 + 60)
    assert {v.account for v in verdicts} == {f"a{i}" for i in range(1, 6)}
    assert "a0" not in stage.members and all(stage.members[f"a{i}"] == fields for i in range(1, 6))


def test_replay_gives_the_same_decisions_under_any_hash_seed() -> None:
    """Set iteration order changes with the interpreter's hash seed; the stage's order of clusters, and
    so what its trees learn and every decision, must not."""
    script = (
        "import hashlib, orjson\n"
        "from detectors.engine import Engine, MemoryStore\n"
        "from tests.detectors.test_cluster_stage import pool_traffic\n"
        "engine = Engine(MemoryStore())\n"
        "decisions = [d.to_record() for e in pool_traffic() for d in engine.process(e)]\n"
        "print(len(decisions), hashlib.sha256(orjson.dumps(decisions)).hexdigest())\n"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout  # fmt: skip
        for seed in (1, 2, 3)
    }
    assert len(runs) == 1 and int(runs.pop().split()[0]) >= 36


def test_a_partial_too_big_for_one_record_goes_in_parts_that_merge_to_the_same_stage() -> None:
    from detectors.cluster_stage import encoded_parts

    obs = [[f"a{i}", T0 + i, [["payment_fingerprint:card", True], [f"ip24:10.0.{i % 200}", False]]]
           for i in range(20_000)]  # fmt: skip
    members = {f"a{i}": [T0, 40.0, 600.0, 590.0, 0.0, 7, "standard"] for i in range(20_000)}
    message = {"partition": 2, "seq": 99, "at": T0 + 20_000, "obs": obs, "members": members}
    parts = encoded_parts(message)
    assert len(parts) > 1 and all(len(p) <= 256 * 1024 for p in parts)

    whole, split = (ClusterStage(load_clusters(), load_scoring().policy, load_scoring().anomaly) for _ in range(2))
    assert whole.merge(orjson.loads(orjson.dumps(message)))
    assert all(split.merge(orjson.loads(p)) for p in parts)
    assert not any(split.merge(orjson.loads(p)) for p in parts)  # every part replayed is a duplicate
    assert split.members == whole.members
    assert split.tick(T0 + 20_000) == whole.tick(T0 + 20_000)


# ---- escalation on persistence (issue 21, item 3): a fleet that ignores its challenge climbs ----


def challenge_only_stage() -> ClusterStage:
    """A stage whose score can reach challenge and nothing higher: any limit below is an escalation."""
    cfg = load_clusters()
    cfg = type(cfg)(**{**cfg.__dict__, "thresholds": {"challenge": 1e-9, "limit": 1.0 - 1e-12, "block": 1.0}})
    return ClusterStage(cfg, load_scoring().policy, load_scoring().anomaly)


def fleet_minute(
    stage: ClusterStage, minute: int, per_hour: float, cot_share: float, seq: int, target: tuple[str, bool]
) -> None:
    """Eight accounts on one ``target``, each at ``per_hour`` requests an hour, ``cot_share`` of them CoT."""
    at = T0 + 60 * minute
    requests = 40.0 + per_hour * minute / 60
    members = {f"fleet-{i}": [at, per_hour, requests, cot_share * requests, 0.0, 7, "standard", T0]
               for i in range(8)}  # fmt: skip
    obs = [[account, at, [list(target)]] for account in members]
    stage.merge({"partition": 0, "seq": seq, "at": at, "obs": obs, "members": members})


CARD = ("payment_fingerprint:shared-card", True)


def strongest(
    stage: ClusterStage, minutes: range, per_hour: float, cot_share: float, target: tuple[str, bool] = CARD
) -> dict[str, str]:
    actions: dict[str, str] = {}
    order = ["observe", "challenge", "limit", "block"]
    for minute in minutes:
        fleet_minute(stage, minute, per_hour, cot_share, seq=minute, target=target)
        for v in stage.tick(T0 + 60 * minute):
            action = order[v.level]
            if order.index(action) > order.index(actions.get(v.account, "observe")):
                actions[v.account] = action
    return actions


def test_a_slow_fleet_held_at_challenge_while_it_keeps_harvesting_climbs_to_limit() -> None:
    # Eight accounts at 2 requests an hour each, mostly CoT: ~13 CoT requests an hour for the cluster,
    # far under one a minute per account — the low-and-slow case account-level escalation never sees.
    stage = challenge_only_stage()
    policy = load_scoring().policy
    early = strongest(stage, range(0, 60), per_hour=2.0, cot_share=0.8)
    assert set(early.values()) == {"challenge"}  # an hour in: not yet enough evidence since the challenge
    later = strongest(stage, range(60, 240), per_hour=2.0, cot_share=0.8)
    assert set(later.values()) == {"limit"}, later
    held = stage.held["fleet-0"]
    assert held.action_level == 2 and held.rung_since - T0 > policy.escalate_after_seconds


def test_members_linked_only_by_co_occurrence_are_never_escalated_on_their_clusters_evidence() -> None:
    # The same slow, mostly-CoT fleet, but linked by a shared exit IP instead of a card: people behind one
    # NAT who happen to ask for the steps are judged on the cluster's score, not on each other's persistence.
    stage = challenge_only_stage()
    actions = strongest(stage, range(0, 240), per_hour=2.0, cot_share=0.8, target=("ip24:203.0.113", False))
    assert set(actions.values()) == {"challenge"} and len(actions) == 8


def test_a_busy_cluster_whose_members_are_not_mostly_cot_is_never_escalated() -> None:
    # A labelling vendor: 30 requests an hour each, a tenth of them read as CoT (justifications).
    stage = challenge_only_stage()
    assert set(strongest(stage, range(0, 480), per_hour=30.0, cot_share=0.1).values()) == {"challenge"}


def test_a_fleet_that_stops_sending_is_not_escalated() -> None:
    stage = challenge_only_stage()
    assert set(strongest(stage, range(0, 30), per_hour=2.0, cot_share=0.8).values()) == {"challenge"}
    # Silent from then on: its requests in the last hour fall to 0 and no evidence adds up.
    assert strongest(stage, range(30, 480), per_hour=0.0, cot_share=0.8).get("fleet-0") in (None, "challenge")


def test_a_stage_checkpoint_from_before_escalation_loads_its_held_actions() -> None:
    from detectors.cluster_stage import _Held

    old = _Held.__new__(_Held)
    old.__setstate__((None, {"action_level": 2, "action_expires": T0 + 600}))
    assert (old.action_level, old.action_expires, old.rung_since, old.evidence) == (2, T0 + 600, 0.0, 0.0)
    assert pickle.loads(pickle.dumps(old)).action_level == 2


def test_an_account_born_into_a_limited_fleet_starts_limited_and_a_soft_linked_one_does_not() -> None:
    """Issue 21, item 4: a new account paying with the fleet's card inherits the fleet's rung at its first
    tick; an account merely seen on the fleet's proxy IP (a reseller's real customer) inherits nothing."""
    stage = challenge_only_stage()
    assert set(strongest(stage, range(0, 240), per_hour=2.0, cot_share=0.8).values()) == {"limit"}
    at = T0 + 60 * 240
    newborn = [at, 1.0, 1.0, 1.0, 0.0, 7, "standard", at]  # one request: CoT, on the fleet's template
    stage.merge({"partition": 1, "seq": 1, "at": at, "members": {"newborn": newborn},
                 "obs": [["newborn", at, [["payment_fingerprint:shared-card", True]]]]})  # fmt: skip
    verdicts = {v.account: v.level for v in stage.tick(at + 1)}
    assert verdicts.get("newborn") == 2
    customer = [at, 1.0, 1.0, 1.0, 0.0, 7, "standard", at]
    fleet = {f"fleet-{i}": [at + 60, 2.0, 48.0, 38.4, 0.0, 7, "standard", T0] for i in range(8)}
    for minute in range(2, 12):  # the customer shares the fleet's exit IP in the same minutes, repeatedly
        t = at + 60 * minute
        obs = [[a, t, [["ip24:203.0.113", False]]] for a in [*fleet, "customer"]]
        stage.merge({"partition": 2, "seq": minute, "at": t, "members": {**fleet, "customer": customer}, "obs": obs})
        verdicts = {v.account: v.level for v in stage.tick(t + 1)}
        assert verdicts.get("customer", 0) <= 1, minute
    # it did join the fleet's cluster (and was challenged with it): linked, but only softly
    assert any("customer" in c.members for c in stage.linker.clusters(at + 720).values())
    assert stage.held["customer"].action_level == 1


def test_card_linked_members_are_not_escalated_on_the_cot_of_members_linked_only_by_co_occurrence() -> None:
    """A labelling vendor's contractors (one card, no CoT) whose cluster two mostly-CoT strangers joined
    through a shared exit IP: the strangers' evidence escalates nobody on the vendor's card."""
    stage = challenge_only_stage()
    order = ["observe", "challenge", "limit", "block"]
    top: dict[str, str] = {}
    for minute in range(240):
        at = T0 + 60 * minute
        fleet_minute(stage, minute, per_hour=30.0, cot_share=0.0, seq=2 * minute, target=CARD)
        strangers = {f"stranger-{i}": [at, 30.0, 40.0 + minute / 2, 0.9 * (40.0 + minute / 2), 0.0, 7, "standard", T0]
                     for i in range(2)}  # fmt: skip
        obs = [[a, at, [["ip24:203.0.113", False]]] for a in [*strangers, "fleet-0", "fleet-1"]]
        stage.merge({"partition": 1, "seq": 2 * minute + 1, "at": at, "obs": obs, "members": strangers})
        for v in stage.tick(at + 1):
            if order.index(order[v.level]) > order.index(top.get(v.account, "observe")):
                top[v.account] = order[v.level]
    assert any("stranger-0" in c.members for c in stage.linker.clusters(T0 + 240 * 60).values())
    assert {top[f"fleet-{i}"] for i in range(8)} == {"challenge"}
