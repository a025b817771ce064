"""Every rule file loads; a broken one fails with a message naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.clusters import load_clusters
from detectors.config import RULES_DIR, load_provenance, load_scoring
from detectors.features import FAMILIES, load_phrasebook
from detectors.intent import load_intent

SCORING = RULES_DIR / "scoring.toml"
PHRASES = RULES_DIR / "phrases.toml"
LOADERS = {"scoring.toml": load_scoring, "phrases.toml": load_phrasebook, "clusters.toml": load_clusters,
           "provenance.toml": load_provenance, "intent.toml": load_intent}  # fmt: skip


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
    return bad


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("block = 0.92", "block = 0.3", r"0 < challenge <= limit <= block <= 1"),
        ("ttl_seconds = 3600\n", "", r"\[policy\] missing \['ttl_seconds'\]"),
        ("volume = 1.0", "volumen = 1.0", r"unknown names \['volumen'\]"),
        ('enterprise = "challenge"', 'enterprise = "ban"', r"max_action\] values must be one of"),
        ("height = 8", "height = 15", r"height 15 is too deep"),
        ("buckets = 60", "buckets = 1", r"2 <= buckets <= 1440"),
    ],
)
def test_broken_scoring_file_is_refused_naming_file_and_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    bad = _broken(tmp_path, SCORING, old, new)
    with pytest.raises(ValueError, match=message) as info:
        load_scoring(bad)
    assert bad.name in str(info.value)


def test_phrase_pattern_that_re2_cannot_compile_is_named(tmp_path: Path) -> None:
    bad = _broken(tmp_path, PHRASES, '"rubric",', '"rubric(",')
    with pytest.raises(ValueError, match=r"pattern 'rubric\(' does not compile"):
        load_phrasebook(bad)


def test_every_phrase_family_is_in_the_file() -> None:
    text = PHRASES.read_text()
    assert all(f"[families.{name}]" in text for name in FAMILIES)
