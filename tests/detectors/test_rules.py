"""Every rule file loads into a valid rule; broken files fail with a message that names them."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.config import RULES_DIR, load_rate_rule

RULE_FILES = sorted(RULES_DIR.glob("*.toml"))


@pytest.mark.parametrize("path", RULE_FILES, ids=[p.name for p in RULE_FILES])
def test_every_rule_file_loads(path: Path) -> None:
    rule = load_rate_rule(path)
    assert rule.rule_id and rule.reason_code.isupper()


def test_rule_with_thresholds_out_of_order_is_refused(tmp_path: Path) -> None:
    text = (RULES_DIR / "rate.toml").read_text().replace("block_rpm = 600", "block_rpm = 50")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ValueError, match="challenge_rpm <= limit_rpm <= block_rpm"):
        load_rate_rule(bad)


def test_rule_missing_a_key_names_the_file_and_key(tmp_path: Path) -> None:
    text = (RULES_DIR / "rate.toml").read_text().replace("ttl_seconds = 900\n", "")
    bad = tmp_path / "missing.toml"
    bad.write_text(text)
    with pytest.raises(ValueError, match=r"missing.toml: missing \[decision\] ttl_seconds"):
        load_rate_rule(bad)
