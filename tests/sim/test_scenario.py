"""Scenario files → labelled traffic → the evaluation report."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from sim.scenario import load_scenario, write

SMALL = """
[scenario]
name = "small"
seed = 3

[[population]]
name = "chat"
persona = "chat_user"
accounts = 25
kind = "benign"
params = { days = 1.0 }

[[population]]
name = "harvesters"
persona = "cot_harvester"
accounts = 2
kind = "attack"
campaign = "A"
start_within_hours = 6
params = { hours = 1.0, gap = 3.0 }
"""


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


def test_simulation_is_reproducible_and_keeps_labels_out_of_events(scenario_file: Path, tmp_path: Path) -> None:
    runs = []
    for name in ("one", "two"):
        events, labels = tmp_path / f"{name}.jsonl.gz", tmp_path / f"{name}-labels.jsonl"
        n, accounts = write(load_scenario(scenario_file), events, labels)
        assert accounts == 27 and n > 500
        runs.append((gzip.decompress(events.read_bytes()), labels.read_bytes()))
    assert runs[0] == runs[1]
    first = orjson.loads(runs[0][0].splitlines()[0])
    assert not {"population", "kind", "campaign"} & set(first)
    timestamps = [orjson.loads(line)["ts"] for line in runs[0][0].splitlines()]
    assert timestamps == sorted(timestamps)


def test_another_seed_gives_other_traffic(scenario_file: Path, tmp_path: Path) -> None:
    write(load_scenario(scenario_file), tmp_path / "a.jsonl", tmp_path / "al.jsonl")
    write(load_scenario(scenario_file, seed=4), tmp_path / "b.jsonl", tmp_path / "bl.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "b.jsonl").read_bytes()


def test_labels_name_the_family_and_where_each_attacker_starts_harvesting(scenario_file: Path, tmp_path: Path) -> None:
    events, labels = tmp_path / "e.jsonl", tmp_path / "l.jsonl"
    write(load_scenario(scenario_file), events, labels)
    truth = [orjson.loads(line) for line in labels.read_bytes().splitlines()]
    sent = [orjson.loads(line) for line in events.read_bytes().splitlines()]
    assert {t["family"] for t in truth} == {"chat", "harvesters"}  # no [family] table: the population's name
    for label in (t for t in truth if t["kind"] == "attack"):
        own = [e for e in sent if e["account_id"] == label["account_id"]]
        assert label["harvest_start"] == own[0]["ts"]  # a persona that marks nothing harvests from its first request
        assert label["harvest_tokens"] == sum(e["output_tokens"] for e in own)
    assert not any("_harvest" in e for e in sent)  # the mark never reaches the events


def test_a_drifting_account_harvests_only_from_its_switch(tmp_path: Path) -> None:
    path = tmp_path / "drift.toml"
    path.write_text(
        SMALL.replace('persona = "cot_harvester"', 'persona = "drifting_account"').replace(
            "params = { hours = 1.0, gap = 3.0 }", "params = { switch_after = 86400.0, hours_after = 0.5 }"
        )
    )
    events, labels = tmp_path / "e.jsonl", tmp_path / "l.jsonl"
    write(load_scenario(path), events, labels)
    sent = [orjson.loads(line) for line in events.read_bytes().splitlines()]
    for label in (t for t in map(orjson.loads, labels.read_bytes().splitlines()) if t["kind"] == "attack"):
        own = [e for e in sent if e["account_id"] == label["account_id"]]
        late = [e for e in own if e["event_id"].endswith("-late")]
        assert len(late) < len(own) and label["harvest_start"] == late[0]["ts"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [('persona = "chat_user"', 'persona = "alien"', "persona must be one of"),
     ('campaign = "A"\n', "", "an attack needs a campaign id"),
     ('kind = "benign"', 'kind = "maybe"', "kind must be")],
)  # fmt: skip
def test_bad_scenario_files_are_refused_with_the_population_named(tmp_path: Path, old: str, new: str,
                                                                  message: str) -> None:  # fmt: skip
    path = tmp_path / "bad.toml"
    path.write_text(SMALL.replace(old, new, 1))
    with pytest.raises(ValueError, match=message):
        load_scenario(path)


HYDRA = """
[scenario]
name = "infra"
seed = 9

[[population]]
name = "customers"
persona = "chat_user"
accounts = 20
kind = "benign"
infra = { proxy = "reseller", proxy_ips = 6 }
params = { days = 1.0 }

[[population]]
name = "students"
persona = "chat_user"
accounts = 10
kind = "benign"
infra = { nat = "uni" }
params = { days = 1.0 }

[[population]]
name = "app"
persona = "chat_user"
accounts = 2
kind = "benign"
infra = { strip_metadata = true }
params = { days = 1.0 }

[[population]]
name = "hydra"
persona = "low_and_slow"
accounts = 12
kind = "attack"
campaign = "H"
start_after_hours = 2.0
start_within_hours = 1.0
infra = { proxy = "reseller", proxy_ips = 6, cards = 3, lifetime_hours = 4 }
params = { days = 1.0, per_day = 40 }
"""


def _generated(tmp_path: Path, text: str) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    from sim.scenario import generate

    (tmp_path / "s.toml").write_text(text)
    events, labels = generate(load_scenario(tmp_path / "s.toml"))
    return list(events), labels


def test_infra_shares_cards_proxy_exits_and_nat_and_strips_metadata(tmp_path: Path) -> None:
    events, _ = _generated(tmp_path, HYDRA)
    by_pop: dict[str, list[dict[str, object]]] = {}
    for e in events:
        by_pop.setdefault(str(e["account_id"]).split("-")[0], []).append(e)
    hydra_ips = {e["ip"] for e in by_pop["hydra"]}
    assert len(hydra_ips) == 6 and {e["ip"] for e in by_pop["customers"]} == hydra_ips  # one proxy network
    assert len({e["payment_fingerprint"] for e in by_pop["hydra"]}) == 3
    assert not any("payment_fingerprint" in e for e in by_pop["customers"])
    assert len({e["ip"] for e in by_pop["students"]}) == 1
    assert not any("ip" in e or "user_agent" in e for e in by_pop["app"])
    start = load_scenario(tmp_path / "s.toml").start
    assert min(float(e["ts"]) for e in by_pop["hydra"]) >= start + 2 * 3600  # type: ignore[arg-type]


def test_burnt_hydra_accounts_are_replaced_by_fresh_labelled_accounts(tmp_path: Path) -> None:
    events, labels = _generated(tmp_path, HYDRA)
    hydra = [lab for lab in labels if lab["population"] == "hydra"]
    assert len(hydra) > 12 * 3  # a day of traffic over ~4 h lifetimes: several generations per member
    assert all(lab["kind"] == "attack" and lab["campaign"] == "H" for lab in hydra)
    ids = {lab["account_id"] for lab in hydra}
    spans: dict[object, list[float]] = {}
    for e in events:
        if e["account_id"] in ids:
            assert float(e["account_created_ts"]) < float(e["ts"])  # type: ignore[arg-type]
            spans.setdefault(e["account_id"], []).append(float(e["ts"]))  # type: ignore[arg-type]
    assert set(spans) == ids and max(max(t) - min(t) for t in spans.values()) <= 6 * 3600 + 1


def test_resized_scenarios_change_the_mixture_not_the_populations() -> None:
    from sim.scenario import resized

    s = load_scenario(Path("sim/scenarios/hydra.toml"))
    r = resized(s, benign=0.5, attack=2.0)
    assert [p.name for p in r.populations] == [p.name for p in s.populations]
    for before, after in zip(s.populations, r.populations, strict=True):
        assert after.accounts == max(1, round(before.accounts * (0.5 if before.kind == "benign" else 2.0)))


def test_unknown_infra_keys_are_refused(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(HYDRA.replace("cards = 3", "cardz = 3"))
    with pytest.raises(ValueError, match="unknown infra keys"):
        load_scenario(tmp_path / "s.toml")


def test_shipped_scenarios_load() -> None:
    for path in Path("sim/scenarios").glob("*.toml"):
        assert load_scenario(path).populations
