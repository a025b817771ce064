"""Every rule file loads; a broken one fails with a message naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.clusters import load_clusters
from detectors.config import RULES_DIR, load_fusion, load_provenance, load_scoring
from detectors.features import FAMILIES, load_phrasebook
from detectors.intent import load_intent
from detectors.registry import load_registry

SCORING = RULES_DIR / "scoring.toml"
PHRASES = RULES_DIR / "phrases.toml"
FUSION = RULES_DIR / "fusion.toml"
LOADERS = {"scoring.toml": load_scoring, "fusion.toml": load_fusion, "phrases.toml": load_phrasebook,
           "clusters.toml": load_clusters, "provenance.toml": load_provenance, "intent.toml": load_intent,
           "features.toml": load_registry}  # fmt: skip


def test_every_rule_file_has_a_loader() -> None:
    assert {p.name for p in RULES_DIR.glob("*.toml")} == set(LOADERS)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_every_rule_file_loads(name: str) -> None:
    assert LOADERS[name](RULES_DIR / name) is not None


def _broken(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text, f"test fixture out of date: {old!r} not in {source.name}"
    bad = tmp_path / f"broken-{source.name}"
    bad.write_text(text.replace(old, new))
    if not (tmp_path / FUSION.name).exists():  # the scoring file names its fusion file beside it
        (tmp_path / FUSION.name).write_text(FUSION.read_text())
    return bad


@pytest.mark.parametrize(
    ("source", "old", "new", "message"),
    [
        (SCORING, "ttl_seconds = 3600\n", "", r"\[policy\] missing \['ttl_seconds'\]"),
        (SCORING, 'enterprise = "challenge"', 'enterprise = "ban"', r"max_action\] values must be one of"),
        (SCORING, "height = 8", "height = 15", r"height 15 is too deep"),
        (SCORING, "buckets = 60", "buckets = 1", r"2 <= buckets <= 1440"),
        (FUSION, "[thresholds]", "[thresholdz]", r"needs \[weights\] and \[thresholds\]"),
        (FUSION, "bias =", "biass =", r"unknown names \['biass'\]"),
    ],
)
def test_a_broken_scoring_or_fusion_file_is_refused_naming_file_and_key(
    tmp_path: Path, source: Path, old: str, new: str, message: str
) -> None:
    bad = _broken(tmp_path, source, old, new)
    with pytest.raises(ValueError, match=message) as info:
        LOADERS[source.name](bad)
    assert bad.name in str(info.value)


def test_fusion_thresholds_out_of_order_are_refused_through_the_scoring_file(tmp_path: Path) -> None:
    fusion = tmp_path / FUSION.name
    text = FUSION.read_text()
    limit = next(line for line in text.splitlines() if line.startswith("limit ="))
    fusion.write_text(text.replace(limit, "limit = 1.5"))
    (tmp_path / SCORING.name).write_text(SCORING.read_text())
    with pytest.raises(ValueError, match=r"0 < challenge <= limit <= block <= 1") as info:
        load_scoring(tmp_path / SCORING.name)
    assert FUSION.name in str(info.value)


def test_a_scoring_file_that_also_sets_weights_is_refused(tmp_path: Path) -> None:
    bad = _broken(tmp_path, SCORING, "[drift]", "[weights]\nbias = -1.0\n\n[drift]")
    with pytest.raises(ValueError, match="weights and thresholds come from fusion.toml"):
        load_scoring(bad)


def test_phrase_pattern_that_re2_cannot_compile_is_named(tmp_path: Path) -> None:
    bad = _broken(tmp_path, PHRASES, '"rubric",', '"rubric(",')
    with pytest.raises(ValueError, match=r"pattern 'rubric\(' does not compile"):
        load_phrasebook(bad)


def test_every_phrase_family_is_in_the_file() -> None:
    text = PHRASES.read_text()
    assert all(f"[families.{name}]" in text for name in FAMILIES)
