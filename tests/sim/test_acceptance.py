"""Leave-one-family-out acceptance: folds, what counts as held out, and the table it prints."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim import acceptance
from sim.acceptance import Fitted, folds, held_out, markdown, run
from sim.family import Family, load_families

FAMILIES = load_families()


def test_each_fold_fits_on_every_family_but_the_one_it_holds_out(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, ...]] = []
    real_fit = acceptance.fit

    def recording(train: tuple[Family, ...]) -> Fitted:
        seen.append(tuple(f.name for f in train))
        return real_fit(train)

    monkeypatch.setattr(acceptance, "fit", recording)
    pairs = folds(FAMILIES)
    assert [f.name for f, _ in pairs] == [f.name for f in FAMILIES]
    for (family, _), train in zip(pairs, seen, strict=True):
        assert family.name not in train and len(train) == len(FAMILIES) - 1


def test_a_persona_added_to_the_hand_set_provenance_stops_counting_as_held_out() -> None:
    fitted = acceptance.fit(FAMILIES)
    probes = next(f for f in FAMILIES if f.name == "health_probes")
    assert held_out(probes, fitted)
    tuned = replace(fitted, seen_personas=fitted.seen_personas | {"health_probe"})
    assert not held_out(probes, tuned)


def test_a_run_scores_detector_and_baselines_on_each_family_and_prints_held_out_apart() -> None:
    small = tuple(f for f in FAMILIES if f.name in ("health_probes", "selfinstruct_firehose", "drifting_accounts"))
    result = run(seed=3, families=small)
    assert result["replays"] == 1  # the hand-set fit does not depend on its training families
    rows = {r["family"]: r for r in result["rows"]}
    assert rows["health_probes"]["held_out"] and not rows["drifting_accounts"]["held_out"]
    assert set(rows["selfinstruct_firehose"]["figures"]) == {"distillguard", "volume", "cot_regex", "either"}
    # one request a second for two hours: the volume rule must catch every firehose account
    assert rows["selfinstruct_firehose"]["figures"]["volume"]["recall"] == 1.0
    text = markdown(result, "python -m sim.acceptance")
    held, rest = text.split("## Not held out")
    assert "| health_probes | benign |" in held and "drifting_accounts" not in held
    assert "| drifting_accounts | attack |" in rest
