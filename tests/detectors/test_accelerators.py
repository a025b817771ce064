"""The C accelerators compute exactly what their references in Python define, and the package runs
without them: the same decisions, the same state bytes, the same cluster ids."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest

from detectors import _fold, _link, _skeleton, accelerators
from detectors.account_state import AccountState
from detectors.clusters import load_clusters
from detectors.config import load_scoring
from detectors.features import skeleton_bytes
from detectors.reference import fold as fold_reference
from detectors.reference import link as link_reference
from detectors.reference import skeleton as skeleton_reference
from detectors.scoring import vector_params
from sim import personas, realdata
from tests.detectors.histories import linker_view, random_observations, random_state, small_caps

CFG = load_scoring()
ROOT = Path(__file__).resolve().parents[2]


# -- the fold of packed account state -------------------------------------------------------------


def random_request(rng: random.Random, ts: float) -> tuple[Any, ...]:
    """fold()'s arguments after the state: edge values included (NaN and infinite ratios, huge token
    counts, empty and non-ASCII agents, templates of every width)."""
    return (
        ts, rng.choice([0.0, 0.0, 0.8, 1.0, 0.31]), rng.choice([0.0, 3.5, 250.0, float("inf"), float("nan")]),
        rng.randrange(64), rng.randrange(8),
        rng.choice([-1, 7, rng.randrange(2**32), 2**32 - 2]), rng.choice([-1, 8, rng.randrange(2**32)]),
        rng.choice([0, 900, 2**31, -5]),
        rng.choice([None, "", f"10.0.{rng.randrange(3)}.{rng.randrange(256)}", "2001:db8::1"]),
        rng.choice([None, "", "curl/8", "Mözilla ✓", f"agent-{rng.randrange(20)}"]),
    )  # fmt: skip


def random_times(rng: random.Random, n: int) -> list[float]:
    """Event times with bursts, idle hours, late events, bucket and hour boundaries, integer times."""
    t, out = 1_800_000_000.0 + rng.uniform(0, 86_400), []
    for _ in range(n):
        t += rng.choice([0.0, rng.expovariate(0.3), rng.uniform(0, 4000), rng.uniform(0, 90_000)])
        late = t - rng.uniform(0, 7200) if rng.random() < 0.1 else t
        out.append(rng.choice([late, late, (late // 60) * 60, (late // 3600) * 3600, float(int(late))]))
    return out


def test_the_c_fold_writes_the_same_bytes_as_the_reference_fold() -> None:
    w = CFG.window
    folded = 0
    for seed in range(40):
        rng = random.Random(seed)
        c_state = bytearray(fold_reference.fresh_state(w.buckets))
        py_state = bytearray(c_state)
        for ts in random_times(rng, rng.choice([1, 5, 60, 400])):
            request = random_request(rng, ts)
            params = (w.buckets, w.bucket_seconds, w.half_life_seconds)
            assert _fold.fold(c_state, *request, *params) == fold_reference.fold(py_state, *request, *params)
            assert c_state == py_state, (seed, request)
            x = rng.random()
            drift = (20, 0.005, 2.0, 0.9999)
            assert _fold.page_hinkley(c_state, x, *drift) == fold_reference.page_hinkley(py_state, x, *drift)
            assert c_state == py_state
            folded += 1
    assert folded > 3000


def test_the_c_readers_read_the_state_as_the_reference_does() -> None:
    rng = random.Random(5)
    params = vector_params(CFG)
    w = CFG.window
    for _ in range(800):
        state, now = random_state(rng)
        data = state.data
        assert _fold.vector(data, now, *params) == fold_reference.vector(data, now, *params), (state, now)
        index = int(now // w.bucket_seconds)
        assert _fold.window(data, index, w.buckets) == fold_reference.window(data, index, w.buckets)
        assert _fold.top_template(data) == fold_reference.top_template(data)
        assert _fold.summary(data, now, w.buckets, w.bucket_seconds, "trial") == fold_reference.summary(
            data, now, w.buckets, w.bucket_seconds, "trial"
        )


def test_the_fold_puts_a_moment_on_a_bucket_boundary_where_its_readers_look_for_it() -> None:
    """A time whose quotient rounds up to the next bucket while floor division does not: the fold and the
    window read it in the same bucket (the C fold once used floor(a / b) while its readers floored, so
    with 0.3 s buckets such a request vanished from its own window)."""
    n, seconds = CFG.window.buckets, 0.3
    ts = next(t for t in (1_000_000.0 + i * 0.1 for i in range(10**7)) if math.floor(t / seconds) != t // seconds)
    for module in (_fold, fold_reference):
        state = bytearray(fold_reference.fresh_state(n))
        module.fold(state, ts, 0.0, 1.0, 0, 0, -1, -1, 10, None, None, n, seconds, 3600.0)
        assert module.window(state, int(ts // seconds), n) == (1, 10, 1), module


def test_both_folds_refuse_what_is_not_a_state_of_this_ring_size() -> None:
    w = CFG.window
    for module in (_fold, fold_reference):
        with pytest.raises(ValueError, match="not a packed state"):
            module.fold(bytearray(10), 1.0, 0.0, 1.0, 0, 0, -1, -1, 0, None, None, w.buckets, 60.0, 3600.0)
        with pytest.raises(ValueError, match="category"):
            module.fold(bytearray(fold_reference.fresh_state(w.buckets)), 1.0, 0.0, 1.0, 0, 9, -1, -1, 0, None, None,
                        w.buckets, 60.0, 3600.0)  # fmt: skip
        with pytest.raises(ValueError, match="not a packed state"):
            module.page_hinkley(bytearray(10), 1.0, 20, 0.1, 10.0, 0.9999)


def test_the_c_layout_and_vector_are_the_references() -> None:
    assert _fold.LAYOUT == fold_reference.LAYOUT
    assert _fold.VECTOR_FEATURES == fold_reference.VECTOR_FEATURES
    assert AccountState.new(CFG.window, 0.0).pack() == fold_reference.fresh_state(CFG.window.buckets)


# -- the linker -----------------------------------------------------------------------------------


def test_the_c_linker_folds_and_joins_exactly_as_the_reference() -> None:
    # Small caps, so that targets and links are evicted, soft targets turn popular and decayed links drop out.
    cfg = small_caps(max_targets=25, max_links=80, max_accounts_per_target=12, recent_per_target=5,
                     window_seconds=30.0, half_life_seconds=200.0, link_threshold=1.2,
                     target_period_seconds=900.0)  # fmt: skip
    params = (cfg.window_seconds, cfg.max_accounts_per_target, cfg.max_targets, cfg.recent_per_target,
              cfg.strong_weight, cfg.half_life_seconds, cfg.link_threshold, cfg.max_links,
              cfg.target_period_seconds)  # fmt: skip
    popular = hubs = dropped = restarted = 0
    for seed in range(6):
        obs = random_observations(random.Random(seed), 3000)
        c: tuple[Any, ...] = (OrderedDict(), OrderedDict(), set())
        py: tuple[Any, ...] = (OrderedDict(), OrderedDict(), set())
        since: dict[str, float] = {}
        for i in range(0, len(obs), 100):
            _link.observe(*c, params, obs[i : i + 100])
            link_reference.observe(*py, params, obs[i : i + 100])
            assert linker_view(*c) == linker_view(*py), (seed, i)
            popular += any(t.popular for t in c[0].values())
            restarted += any(t.since > since.get(k, t.since) for k, t in c[0].items())
            since = {k: t.since for k, t in c[0].items()}
            now = obs[i][1] + (i % 300)  # a tick now or a while later: decayed links leave `linked`
            before = len(c[2])
            groups = _link.components(c[1], c[2], now, cfg.half_life_seconds, cfg.link_threshold)
            assert groups == link_reference.components(py[1], py[2], now, cfg.half_life_seconds, cfg.link_threshold)
            assert c[2] == py[2]
            hubs += sum(len(h) for _, h in groups[0].values())
            dropped += before - len(c[2])
        assert len(c[1]) == cfg.max_links
    assert popular and hubs and dropped and restarted  # the streams reached every branch


def test_the_c_merge_of_link_deltas_is_the_references_and_both_refuse_the_same_deltas() -> None:
    cfg = small_caps(max_links=60, half_life_seconds=200.0, link_threshold=1.2)
    params = (cfg.window_seconds, cfg.max_accounts_per_target, cfg.max_targets, cfg.recent_per_target,
              cfg.strong_weight, cfg.half_life_seconds, cfg.link_threshold, cfg.max_links,
              cfg.target_period_seconds)  # fmt: skip
    rng = random.Random(4)
    c: tuple[Any, ...] = (OrderedDict(), set())
    py: tuple[Any, ...] = (OrderedDict(), set())
    for step in range(40):  # out-of-order times, ints and floats, strong hubs, LRU eviction past 60 links
        deltas = [[f"a{rng.randrange(30)}", f"@card:{rng.randrange(3)}" if strong else f"a{rng.randrange(30)}",
                   rng.choice([0.4, 1, 0.75]), rng.choice([step * 10, step * 10 - 25.5]), strong]
                  for strong in (rng.random() < 0.2 for _ in range(30))]  # fmt: skip
        _link.merge(*c, params, deltas)
        link_reference.merge(*py, params, deltas)
        assert linker_view(OrderedDict(), *c) == linker_view(OrderedDict(), *py), step
    assert len(c[0]) == cfg.max_links and c[1]
    bad = ([["a", "b", -1.0, 1.0, False]], [["a", "b", "1", 1.0, False]], [["a", "b", 1.0, 1.0, 1]],
           [["a", 2, 1.0, 1.0, False]], [["a", "b", True, 1.0, False]], [["a", "b", 1.0]], ["ab"], [None])  # fmt: skip
    for deltas in bad:
        for merge in (_link.merge, link_reference.merge):
            with pytest.raises(ValueError):
                merge(OrderedDict(), set(), params, deltas)


def test_the_c_targets_of_an_event_are_the_references() -> None:
    rng = random.Random(5)
    values: list[Any] = [None, "", 0, 7, "pf-1", "fp-ü", True, 3.5]
    ips = [None, "", "203.0.113.9", "2001:db8::1", "10.0.0", "1.2.3.4.5", "١٢.٣.٤.٥", "a.b.c.d", "...", 7]
    names = ("payment_fingerprint", "device_fingerprint", "tls_fingerprint", "asn", "user_agent")
    for cfg in (load_clusters(), small_caps(strong_targets=("asn",), soft_targets=("ip24", "payment_fingerprint"))):
        for _ in range(2000):
            event = {name: rng.choice(values) for name in names}
            event = {k: v for k, v in event.items() if v is not None or rng.random() < 0.5}
            if (ip := rng.choice(ips)) is not None:
                event["ip"] = ip
            template = rng.choice([None, rng.getrandbits(32)])
            args = (event, template, cfg.strong_targets, cfg.soft_targets)
            assert _link.targets(*args) == link_reference.targets(*args), args


# -- the skeleton and the cut ---------------------------------------------------------------------


def edge_texts() -> list[str]:
    rng = random.Random(5)
    vocabulary = ["a", "ab", "abc", "abcd", "abcde", "größe", "日本語", "x_y", "you", "step", "Über", "ça"]
    texts = ["", "one", "one two", "one two three", "Café crème, s'il vous plaît!", "\t\x0b\x0c tabs\r\n"]
    texts += [" ".join(f"w{i}" for i in range(n)) for n in (31, 32, 33, 40, 200)]
    texts += [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 60))) for _ in range(300)]
    texts += [t.format(content="why is the sky blue?") for t in personas.COT_TEMPLATES]
    quoting = ['"', "`", "```", "\n", " ", "q", "é", "日", "İ"]  # quotes open and close at odd places
    texts += ["".join(rng.choice(quoting) for _ in range(rng.randint(0, 80))) for _ in range(600)]
    texts += [f'a "{"é" * n}" b `{"x" * (n // 2)}` c' for n in (0, 1, 199, 200, 201, 399, 400, 401)]
    texts += ["say ```" + "日本 " * 300 + "``` then", 'one "unclosed and ```also', "```a``` x ```b```"]
    texts += ["ΣΟΦΙΑ", "x\ud800y", "MiXeD ÄSCII", "x" * 2000 + "É"]
    return texts


def test_the_c_skeleton_words_and_fingerprint_are_the_references() -> None:
    texts = edge_texts() + list(realdata.benign_prompts()[:3000]) + list(realdata.distill_prompts()[:3000])
    for text in texts:
        skeleton = skeleton_bytes(text)
        assert _skeleton.words(skeleton) == skeleton_reference.words(skeleton), text
        assert _skeleton.fingerprint(skeleton, 4) == skeleton_reference.fingerprint(skeleton, 4), text
    repeats = ["a b c " * 12, "x y " * 20 + "z", "one two three one two three four"]  # repeated shingles
    for text in repeats + edge_texts()[::7]:
        skeleton = skeleton_bytes(text)
        for k in (0, 1, 2, 3, 9, 30, 64):  # bottom-k for every k, past the number of shingles too
            assert _skeleton.fingerprint(skeleton, k) == skeleton_reference.fingerprint(skeleton, k), (text, k)


def test_the_c_word_count_splits_on_exactly_the_references_separators_for_every_byte() -> None:
    """The C count reads sixteen bytes a step: every byte value (quotes aside, which strip input) at every
    offset splits words or not as the reference does."""
    rng = random.Random(3)
    alphabet = [bytes([b]) for b in range(256) if b not in b'"`']
    runs = [rng.choice(alphabet) * rng.choice((1, 1, 3)) for _ in range(5000)]  # words of every length
    for text in (b"".join(rng.sample(runs, n)) for n in range(90) for _ in range(20)):
        assert _skeleton.fingerprint(text, 0)[0] == skeleton_reference.fingerprint(text, 0)[0], text


def test_the_c_cut_of_ascii_text_is_the_references_and_leaves_the_rest_to_it() -> None:
    every_ascii = "".join(map(chr, range(128)))  # the 16-byte lowering's edges: '@' and '[' around A-Z, DEL
    texts = edge_texts() + ["AbC" * n for n in (0, 1, 183, 184, 367, 400)]
    texts += [every_ascii[i:] + every_ascii[:i] * (n // 128 + 1) for i in range(0, 128, 7) for n in (15, 31, 700)]
    for text in texts:
        for head, tail in ((400, 150), (800, 300), (0, 5), (3, 1), (10, 0)):
            got = _skeleton.lowered_cut(text, head, tail)
            if text.isascii() and tail >= 1:
                assert got == skeleton_reference.lowered_cut(text, head, tail), (text, head, tail)
            else:
                assert got is None, (text, head, tail)


# -- the package without its accelerators ---------------------------------------------------------


def replay_small_world() -> list[dict[str, Any]]:
    """Decisions on a small world that reaches every accelerated step: people chatting, a CoT harvester
    alone, and a low-and-slow pool linked by shared cards (as JSON-ready records)."""
    from detectors.engine import Engine, MemoryStore
    from sim import personas as P

    rng, t0 = random.Random(3), 1_800_000_000.0 - 1_800_000_000.0 % 86_400
    streams = [P.chat_user(f"person-{i}", rng, t0, days=1.0, per_day=25) for i in range(30)]
    streams.append(P.cot_harvester("harvester", rng, t0 + 3600, hours=2))
    for i in range(40):
        ip = f"100.{rng.randrange(64, 128)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        streams.append(P.low_and_slow(f"pool-{i}", rng, t0 + rng.uniform(0, 3600), payment_fingerprint=f"card-{i % 4}",
                                      ip=ip))  # fmt: skip
    engine = Engine(MemoryStore())
    out = []
    for event in P.merged(streams):
        for d in engine.process(event):
            out.append({"id": d.decision_id, "subject": d.subject_id, "action": d.action, "at": d.issued_at,
                        "score": round(d.score, 9), "reason": list(d.reason), "cluster": d.cluster_id})  # fmt: skip
    return out


def test_the_package_runs_without_its_accelerators_and_decides_the_same() -> None:
    """A small world replayed with every accelerator and with none: the same decisions at the same times,
    for the same reasons (the reference paths are what the figures mean)."""
    script = (
        "import json, sys\n"
        "from detectors import accelerators\n"
        "from tests.detectors.test_accelerators import replay_small_world\n"
        "print(json.dumps({'on': sorted(accelerators.ACCELERATED), 'decisions': replay_small_world()}))\n"
    )
    runs = {}
    for pure in ("0", "1"):
        env = {**os.environ, "DISTILLGUARD_PURE_PYTHON": pure, "PYTHONHASHSEED": "0"}
        out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                             check=True)  # fmt: skip
        runs[pure] = json.loads(out.stdout.strip().splitlines()[-1])
    assert runs["1"]["on"] == [] and {"_fold", "_link", "_skeleton"} <= set(runs["0"]["on"])
    assert runs["1"]["decisions"] == runs["0"]["decisions"]
    assert any(d["action"] in ("limit", "block") for d in runs["0"]["decisions"])


def test_every_accelerator_can_be_switched_off_and_a_name_outside_them_is_refused() -> None:
    assert set(accelerators.status()) == {"_contract", "_fold", "_hst", "_intent", "_link", "_phrases", "_skeleton"}
    with pytest.raises(ValueError, match="no accelerator"):
        accelerators.accelerator("_nope")
