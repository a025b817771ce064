"""The fusion fit: monotone weights learned from ticks, thresholds that keep benign families within budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors.config import load_fusion, load_scoring
from sim.family import load_families
from sim.fusion_fit import INPUTS, L2_GRID, Ticks, _ladder, fit, out_of_family_scores, world_ticks, write

NAMES = ("health_probes", "selfinstruct_firehose", "aged_explainers", "ci_keys")
SMALL = tuple(f for f in load_families() if f.name in NAMES)


@pytest.fixture(scope="module")
def ticks(tmp_path_factory: pytest.TempPathFactory) -> Ticks:
    *_, ticks = world_ticks(SMALL, seed=3, folder=tmp_path_factory.mktemp("world"))
    return ticks


def test_attackers_ticks_before_their_harvest_are_left_out_of_the_labels(ticks: Ticks) -> None:
    labels = ticks.label()
    kinds = np.array(ticks.kind)[ticks.account]
    assert set(labels[kinds == "benign"]) == {0}
    aged = np.array([ticks.family[a] == "aged_explainers" for a in ticks.account])
    assert (labels[aged] == -1).any() and (labels[aged] == 1).any()  # they behave normally, then harvest
    assert set(labels[kinds == "attack"]) <= {-1, 1}


def test_every_learned_weight_is_non_negative_so_more_of_a_signal_never_lowers_suspicion(ticks: Ticks) -> None:
    fusion = fit(ticks, set(NAMES))
    assert all(fusion.weights[name] >= 0 for name in INPUTS)
    assert "ua_spread" not in fusion.weights  # no benign family shows it: never weighed
    assert any(fusion.weights[name] > 0 for name in INPUTS)


def test_the_thresholds_keep_every_benign_training_account_below_enforcement(ticks: Ticks) -> None:
    fusion = fit(ticks, set(NAMES))
    weights = np.array([fusion.weights[name] for name in INPUTS])
    z = ticks.x @ weights + fusion.weights["bias"]
    order = np.lexsort((ticks.ts, ticks.account))
    ordered = Ticks(ticks.x[order], ticks.account[order], ticks.ts[order], ticks.requests[order],
                    ticks.recent[order], ticks.accounts, ticks.cohort, ticks.family, ticks.kind,
                    ticks.harvest_start)  # fmt: skip
    benign = np.array([a for a, kind in enumerate(ticks.kind) if kind == "benign"])
    outcome = _ladder(ordered, z[order], benign, fusion.thresholds, load_scoring())
    assert all(top < 2 for top, _ in outcome.values())
    assert fusion.training["benign_over_budget"] == 0
    assert fusion.thresholds["challenge"] <= fusion.thresholds["limit"] <= fusion.thresholds["block"]


def test_a_written_fusion_loads_back_with_its_weights_and_thresholds(ticks: Ticks, tmp_path: Path) -> None:
    fusion = fit(ticks, set(NAMES))
    path = tmp_path / "fusion.toml"
    write(fusion, "python -m sim.fusion_fit --write", seed=3, path=path)
    weights, thresholds = load_fusion(path)
    assert weights == fusion.weights and thresholds == fusion.thresholds
    assert "python -m sim.fusion_fit --write" in path.read_text()


def test_a_familys_out_of_family_scores_never_saw_its_own_ticks(ticks: Ticks) -> None:
    """The thresholds are walked over scores from weights fitted without the family (issue 21: a budget
    met only in-sample is not met): hiding a family's labels leaves its scores exactly as they were."""
    labels = ticks.label()
    mine = np.array([ticks.family[a] == "aged_explainers" for a in ticks.account])
    z = out_of_family_scores(ticks, labels, set(NAMES), 1e-2)
    hidden = out_of_family_scores(ticks, np.where(mine, -1, labels), set(NAMES), 1e-2)
    assert np.array_equal(z[mine], hidden[mine])
    assert not np.allclose(z[~mine], hidden[~mine])  # the others' fits did learn from it


def test_the_fit_says_which_regularisation_the_out_of_family_walk_chose(ticks: Ticks) -> None:
    fusion = fit(ticks, set(NAMES))
    assert fusion.training["out_of_family"] and fusion.training["l2"] in L2_GRID
