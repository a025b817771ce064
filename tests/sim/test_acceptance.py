"""Leave-one-family-out acceptance: folds, what counts as held out, and the table it prints."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim import acceptance
from sim.acceptance import Fitted, folds, held_out, markdown, run
from sim.family import Family, load_families
from sim.fusion_fit import Ticks, world_ticks

FAMILIES = load_families()


SMALL = tuple(
    f for f in FAMILIES if f.name in ("health_probes", "selfinstruct_firehose", "drifting_accounts", "ci_keys")
)


@pytest.fixture(scope="module")
def small_ticks(tmp_path_factory: pytest.TempPathFactory) -> Ticks:
    *_, ticks = world_ticks(SMALL, seed=3, folder=tmp_path_factory.mktemp("world"))
    return ticks


def test_each_held_out_fold_fits_on_every_family_but_the_one_it_holds_out(
    monkeypatch: pytest.MonkeyPatch, small_ticks: Ticks
) -> None:
    seen: list[tuple[str, ...]] = []
    real_fit = acceptance.fit

    def recording(train: tuple[Family, ...], ticks: Ticks) -> Fitted:
        seen.append(tuple(f.name for f in train))
        return real_fit(train, ticks)

    monkeypatch.setattr(acceptance, "fit", recording)
    pairs = folds(SMALL, small_ticks)
    assert [f.name for f, _ in pairs] == [f.name for f in SMALL]
    assert seen[0] == tuple(f.name for f in SMALL)  # the in-sample families' shared fit
    held = [f for f, fitted in pairs if held_out(f, fitted)]
    assert {f.name for f in held} == {"health_probes", "selfinstruct_firehose"}
    for family, train in zip(held, seen[1:], strict=True):
        assert family.name not in train and len(train) == len(SMALL) - 1


def test_a_fold_has_seen_its_training_families_personas_and_not_its_own(small_ticks: Ticks) -> None:
    train = tuple(f for f in SMALL if f.name != "health_probes")
    fitted = acceptance.fit(train, small_ticks)
    probes = next(f for f in SMALL if f.name == "health_probes")
    assert held_out(probes, fitted)
    assert not held_out(next(f for f in SMALL if f.name == "selfinstruct_firehose"), fitted)
    assert fitted.fusion is not None and fitted.fusion.training["families"] == sorted(f.name for f in train)


def test_a_persona_added_to_the_hand_set_provenance_stops_counting_as_held_out() -> None:
    fitted = acceptance.hand_set()
    probes = next(f for f in FAMILIES if f.name == "health_probes")
    assert held_out(probes, fitted)
    tuned = replace(fitted, seen_personas=fitted.seen_personas | {"health_probe"})
    assert not held_out(probes, tuned)


def test_a_run_scores_detector_and_baselines_on_each_family_and_prints_held_out_apart() -> None:
    result = run(seed=3, families=SMALL)
    assert result["replays"] == 3  # one fit per held-out family, one shared by the in-sample ones
    rows = {r["family"]: r for r in result["rows"]}
    assert rows["health_probes"]["held_out"] and not rows["drifting_accounts"]["held_out"]
    assert set(rows["selfinstruct_firehose"]["figures"]) == {"distillguard", "volume", "cot_regex", "either"}
    # one request a second for two hours: the volume rule must catch every firehose account
    assert rows["selfinstruct_firehose"]["figures"]["volume"]["recall"] == 1.0
    text = markdown(result, "python -m sim.acceptance")
    held, rest = text.split("## Not held out")
    assert "| health_probes | benign |" in held and "drifting_accounts" not in held
    assert "| drifting_accounts | attack |" in rest
