"""The evaluation families: enough of them, held out where they claim to be, and a benign twin for every signal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from detectors.clusters import load_clusters
from detectors.config import load_fusion
from sim.acceptance import hand_set, held_out
from sim.family import FAMILIES as FOLDER
from sim.family import load_families, load_family, world
from sim.fusion_fit import INPUTS
from sim.scenario import PERSONAS, generate

FAMILIES = load_families()


def test_there_are_at_least_ten_attack_and_twelve_benign_families_held_out_from_the_hand_set_rules() -> None:
    fitted = hand_set()
    held = [f for f in FAMILIES if held_out(f, fitted)]
    assert sum(f.kind == "attack" for f in held) >= 10
    assert sum(f.kind == "benign" for f in held) >= 12


def test_a_family_is_held_out_only_when_none_of_its_personas_was_seen() -> None:
    fitted = hand_set()
    for family in FAMILIES:
        personas = {p.persona for p in family.populations}
        assert held_out(family, fitted) == personas.isdisjoint(fitted.seen_personas), family.name
        if family.origin == "project":  # the project's own personas are never held out
            assert not held_out(family, fitted), family.name


def test_every_signal_the_detector_fuses_has_a_legitimate_twin() -> None:
    """For every input of the account and cluster fusions, some benign family shows it and is scored."""
    signals = set(INPUTS)  # what the fusion fit may weigh (supervised learns from verdicts, not from families)
    assert {name for name, w in load_fusion()[0].items() if w} <= signals | {"bias", "supervised"}
    signals |= {f"cluster_{w}" for w in load_clusters().weights if w != "bias"}
    twins = {t for f in FAMILIES if f.kind == "benign" for t in f.twin_of}
    assert signals - twins == set()
    assert all(not f.twin_of for f in FAMILIES if f.kind == "attack")


def test_every_family_names_known_personas_and_has_one_kind() -> None:
    names = [f.name for f in FAMILIES]
    assert len(names) == len(set(names))
    for f in FAMILIES:
        assert all(p.persona in PERSONAS and p.kind == f.kind and p.family == f.name for p in f.populations)


def test_red_team_families_keep_their_behaviour_paragraph_in_the_file() -> None:
    for path in sorted(FOLDER.glob("*.toml")):
        text = path.read_text()
        if 'origin = "red-team"' in text:
            paragraph = [line for line in text.splitlines() if line.startswith("# ")]
            assert text.startswith("# Behaviour, written before the detector was run") and len(paragraph) >= 3, path


def test_a_family_file_with_a_population_of_the_other_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[family]\nname = "x"\nkind = "benign"\norigin = "red-team"\n\n[[population]]\nname = "x"\n'
                    'persona = "cot_harvester"\naccounts = 1\nkind = "attack"\ncampaign = "X"\n')  # fmt: skip
    with pytest.raises(ValueError, match="every population of a benign family"):
        load_family(path)


def test_the_world_labels_every_account_with_its_family() -> None:
    small = tuple(f for f in FAMILIES if f.name in ("health_probes", "selfinstruct_firehose"))
    _, labels = generate(world(small))
    assert {label["family"] for label in labels} == {"health_probes", "selfinstruct_firehose"}


def test_the_simulator_reads_only_the_corpus_shipped_in_the_repository_unless_told_otherwise() -> None:
    """A fresh clone has no ../shared: nothing may read it by default (DISTILLGUARD_DATA opts in)."""
    import os

    from sim import realdata

    if not os.environ.get("DISTILLGUARD_DATA"):
        assert realdata.DATA_DIR == Path(realdata.__file__).parent / "data"
    repo = Path(realdata.__file__).resolve().parents[1]
    literal = re.compile(r"""["'](\.\./)?shared(/data)?["'/]""")  # "shared", '../shared/data/...' as a path
    for path in [*repo.glob("[a-z]*/**/*.py"), repo / "Makefile", repo / ".ci" / "run"]:
        if ".venv" not in path.parts and path.name != "test_family.py":
            assert not literal.search(path.read_text()), path
