"""Hydra clusters: pools under every per-account threshold are caught as clusters; shared NATs and
proxies with ordinary customers are not; one weak link sweeps nobody in; memory stays bounded."""

from __future__ import annotations

import pickle
import random
from collections import OrderedDict, defaultdict, deque
from typing import Any

from detectors.account_state import Counters
from detectors.cluster_stage import ClusterStage
from detectors.clusters import (
    Cluster,
    Linker,
    _Target,
    load_clusters,
    member_summary,
)
from detectors.config import load_scoring
from detectors.engine import Engine, MemoryStore
from detectors.types import Decision
from sim import personas as P
from tests.detectors.histories import linker_view, random_observations, random_state, small_caps

DAY = 86_400.0
T0 = 1_800_000_000.0 - 1_800_000_000.0 % DAY
ENFORCING = {"limit", "block"}


def run(streams: list[list[dict[str, Any]]]) -> dict[str, list[Decision]]:
    engine = Engine(MemoryStore())
    by_account: dict[str, list[Decision]] = defaultdict(list)
    for event in P.merged(streams):
        for d in engine.process(event):
            by_account[d.subject_id].append(d)
    return by_account


def enforced(decisions: dict[str, list[Decision]], accounts: list[str]) -> list[str]:
    return [a for a in accounts if any(d.action in ENFORCING for d in decisions.get(a, []))]


def pool(rng: random.Random, name: str, n: int, cards: int, **kwargs: Any) -> list[list[dict[str, Any]]]:
    """n accounts of a hydra pool sharing `cards` payment fingerprints, each on its own residential IP."""
    streams = []
    for i in range(n):
        ip = f"100.{rng.randrange(64, 128)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        start = T0 + rng.uniform(0, 3600)
        streams.append(P.low_and_slow(f"{name}-{i}", rng, start, payment_fingerprint=f"{name}-card-{i % cards}",
                                      ip=ip, **kwargs))  # fmt: skip
    return streams


def people(rng: random.Random, name: str, n: int, **extra: Any) -> list[list[dict[str, Any]]]:
    streams = [P.chat_user(f"{name}-{i}", rng, T0, days=1.0, per_day=25) for i in range(n)]
    for stream in streams:
        for event in stream:
            event.update(extra)
    return streams


def test_low_and_slow_pool_is_caught_as_clusters_though_no_account_is_alone() -> None:
    rng = random.Random(1)
    hydra = pool(rng, "hydra", 500, cards=10)  # 500 accounts × 30 CoT-template requests a day
    decisions = run(hydra + people(rng, "person", 100))
    members = [f"hydra-{i}" for i in range(500)]
    caught = enforced(decisions, members)
    assert len(caught) >= 0.95 * len(members)
    # Every enforcing decision on a pool member came from its cluster: alone, each stays under the
    # limit threshold (a few may be challenged on their own CoT template, which enforces nothing).
    assert all(d.cluster_id for a in members for d in decisions.get(a, []) if d.action in ENFORCING)
    reasons = {r for a in caught for d in decisions[a] for r in d.reason}
    assert "CLUSTER_SHARED_INFRASTRUCTURE" in reasons or "CLUSTER_SHARED_TEMPLATE" in reasons
    # The alert names the cluster, its size, some members and the shared cards.
    from detectors.alerts import alert_record

    alert = alert_record(next(d for d in decisions[caught[0]] if d.action in ENFORCING), "enforce")
    assert alert["cluster"]["id"] and alert["cluster"]["members"] >= 5 and alert["cluster"]["member_sample"]
    assert all(t.startswith("payment_fingerprint:#") for t in alert["cluster"]["shared_infrastructure"])
    # Fingerprints never leave the detector in the clear (issue 22, item 11): records and alerts show a hash.
    import orjson

    for d in (d for a in caught for d in decisions[a]):
        assert b"hydra-card-" not in orjson.dumps(d.to_record(mode="enforce"))
    assert b"hydra-card-" not in orjson.dumps(alert)
    assert enforced(decisions, [f"person-{i}" for i in range(100)]) == []


def test_university_nat_with_hundreds_of_students_is_not_a_cluster() -> None:
    rng = random.Random(2)
    students = people(rng, "student", 300, ip="192.0.2.10", user_agent="Mozilla/5.0 campus")
    decisions = run(students)
    assert not any(d.cluster_id for ds in decisions.values() for d in ds)
    assert enforced(decisions, [f"student-{i}" for i in range(300)]) == []


def test_proxy_reseller_campaign_is_throttled_and_its_ordinary_customers_are_not() -> None:
    rng = random.Random(3)
    proxy_ips = [f"203.0.113.{i}" for i in range(1, 6)]
    campaign = pool(rng, "resold", 40, cards=4)
    for stream in campaign:  # the campaign goes through the reseller's proxies
        for event in stream:
            event["ip"] = rng.choice(proxy_ips)
    customers = people(rng, "customer", 200)
    for stream in customers:
        for event in stream:
            event["ip"] = rng.choice(proxy_ips)
    decisions = run(campaign + customers)
    assert len(enforced(decisions, [f"resold-{i}" for i in range(40)])) >= 38
    assert enforced(decisions, [f"customer-{i}" for i in range(200)]) == []


def test_one_weak_link_does_not_sweep_a_benign_account_into_a_cluster() -> None:
    rng = random.Random(4)
    hydra = pool(rng, "hydra", 60, cards=3)
    bystander = P.chat_user("bystander", rng, T0, days=1.0, per_day=25)
    # Once, the bystander sends a request from a hydra account's IP within the same minute (an office NAT).
    first = hydra[0][0]
    bystander.append({**bystander[0], "event_id": "bystander-shared", "ts": first["ts"] + 5, "ip": first["ip"]})
    decisions = run(hydra + [bystander])
    assert len(enforced(decisions, [f"hydra-{i}" for i in range(60)])) >= 55
    assert decisions.get("bystander", []) == []


def test_campaign_that_moves_half_its_traffic_to_a_new_model_shows_the_pivot() -> None:
    rng = random.Random(5)
    warmup = people(rng, "person", 50)  # the old model is in use before the campaign starts
    hydra = pool(rng, "pivot", 120, cards=6)
    launch = T0 + 0.5 * DAY
    for stream in hydra:
        for event in stream:
            if event["ts"] > launch and rng.random() < 0.9:
                event["model"] = "frontier-2"
    decisions = run(warmup + hydra)
    members = [f"pivot-{i}" for i in range(120)]
    assert len(enforced(decisions, members)) >= 110
    late = [d for a in members for d in decisions.get(a, []) if d.issued_at > launch + 6 * 3600]
    assert late and max(d.evidence["features"]["new_model"] for d in late) > 0.2


def test_linking_memory_is_bounded_under_an_account_id_flood() -> None:
    cfg = load_clusters()  # the same caps, scaled down so the test floods past them quickly
    small = Linker(type(cfg)(**{**cfg.__dict__, "max_targets": 500, "max_links": 1000}))
    for i in range(20_000):
        small.observe(f"flood-{i}", T0 + i * 0.01, [(f"template:{i % 700}", False), ("ip24:10.0.0", False)])
    assert len(small.targets) <= 500 and len(small.links) <= 1000
    # Account types travel in the cluster stage's member summaries, an LRU under the same cap.
    stage = ClusterStage(small.cfg, load_scoring().policy, load_scoring().anomaly)
    for i in range(0, 20_000, 100):
        members = {f"flood-{j}": [T0 + j, 1.0, 1.0, 0.0, 0.0, None, "trial"] for j in range(i, i + 100)}
        stage.merge({"partition": 0, "seq": i, "at": T0 + i, "obs": [], "members": members})
    assert len(stage.members) <= 500


def test_a_member_summary_reads_the_account_window_as_the_account_state_does() -> None:
    rng, window = random.Random(8), load_scoring().window
    for _ in range(300):
        state, now = random_state(rng)
        hour, c = state.window(now, window), state.counters
        assert member_summary(state, now, window, "startup") == (
            state.last_ts, hour.requests, c[Counters.REQUESTS], c[Counters.COT], c[Counters.NEW_MODEL],
            state.top_template(), "startup", state.first_ts, hour.tokens,
        )  # fmt: skip


def test_a_linker_folds_on_after_a_checkpoint_as_it_would_have_without_one() -> None:
    cfg = small_caps(max_targets=25, max_links=80, recent_per_target=5)
    obs = random_observations(random.Random(11), 2000)
    straight = Linker(cfg)
    straight.observe_many(obs)
    restored = Linker(cfg)
    restored.observe_many(obs[:1000])
    restored = pickle.loads(pickle.dumps(restored))
    restored.observe_many(obs[1000:])
    assert linker_view(restored.targets, restored.links, restored.linked) == linker_view(
        straight.targets, straight.links, straight.linked
    )


def test_a_target_from_a_checkpoint_of_the_python_fold_keeps_folding() -> None:
    # Before the fold ran in C a target was a slotted Python object whose recent hits were a deque;
    # pickle restores such a checkpoint by setting those attributes on the C type, then the linker's state.
    old = _Target.__new__(_Target)
    old.recent, old.accounts, old.popular = deque([(T0, "a")]), {"a": 1}, False  # type: ignore[assignment]
    state = {**Linker(load_clusters()).__dict__, "targets": OrderedDict({"template:7": old})}
    del state["_params"]
    linker = Linker.__new__(Linker)
    linker.__setstate__(state)
    linker.observe("b", T0 + 1, [("template:7", False)])
    assert old.recent == [(T0, "a"), (T0 + 1, "b")] and old.accounts == {"a": 1, "b": 1}
    assert list(linker.links) == [("a", "b")]


def test_copying_a_victims_device_or_tls_fingerprint_cannot_get_the_victim_limited() -> None:
    """Issue 22, item 7: device and TLS fingerprints are derived from what the client sends, so they link
    softly, and a member is limited or blocked only on its own evidence plus its cluster's."""
    rng = random.Random(7)
    victim = people(rng, "victim", 1)[0]
    for e in victim:
        e.update(device_fingerprint="dev-victim", tls_fingerprint="ja3-victim")
    hydra = pool(rng, "framer", 30, cards=3, days=0.5, per_day=240)
    for stream in hydra:
        for e in stream:
            e.update(device_fingerprint="dev-victim", tls_fingerprint="ja3-victim")
    decisions = run([victim, *hydra])
    assert enforced(decisions, [f"framer-{i}" for i in range(30)])  # the campaign is still enforced
    assert not enforced(decisions, ["victim-0"])  # the person whose fingerprints it copied is not


def test_a_template_burnt_by_throwaway_accounts_links_its_fleet_again_after_a_period() -> None:
    """Issue 22, item 9: a hydra that sends its template from 61 throwaway accounts makes it "popular"
    (popular targets link nobody); popularity decays, so a period later its fleet links on it again."""
    cfg = load_clusters()
    linker, template = Linker(cfg), [("template:4242", False)]
    for i in range(cfg.max_accounts_per_target + 1):
        linker.observe(f"burner-{i}", T0 + i, template)
    assert linker.targets["template:4242"].popular
    fleet = [f"fleet-{i}" for i in range(8)]

    def harvest(start: float) -> dict[str, Cluster]:
        for step in range(240):  # the fleet takes turns on the template, ten seconds apart, for 40 minutes
            linker.observe(fleet[step % len(fleet)], start + 10 * step, template)
        return linker.clusters(start + 2400)

    assert harvest(T0 + 600) == {}  # within the period the burn holds
    clusters = harvest(T0 + cfg.target_period_seconds + 3600)
    assert [c.members for c in clusters.values()] == [fleet]


def test_an_account_too_new_to_be_scored_still_feeds_the_fleet_index() -> None:
    """Issue 22, item 9: id rotation — each key sends four requests (under the floor at which an account
    is scored on its own) and is replaced; the fleet is still found through its shared cards."""
    rng = random.Random(9)
    floor = load_scoring().window.min_requests_to_score
    rotating = [s[: floor - 1] for s in pool(rng, "rotor", 150, cards=5, per_day=200)]
    decisions = run(rotating + people(rng, "person", 50))
    members = [f"rotor-{i}" for i in range(150)]
    assert all(d.cluster_id for a in members for d in decisions.get(a, []))  # none was scored alone
    assert len(enforced(decisions, members)) >= 0.9 * len(members)
    assert not any(decisions.get(f"person-{i}") for i in range(50))
