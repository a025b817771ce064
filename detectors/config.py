"""Rule files (TOML, one per rule family) loaded into frozen, validated dataclasses."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RULES_DIR", "RateRule", "load_rate_rule"]

RULES_DIR = Path(__file__).parent / "rules"


@dataclass(frozen=True)
class RateRule:
    """Thresholds of the per-account request-rate rule (``rules/rate.toml``).

    >>> rule = load_rate_rule()
    >>> rule.limit_rpm < rule.block_rpm
    True
    """

    rule_id: str
    reason_code: str
    severity: str
    bucket_seconds: int
    buckets: int
    challenge_rpm: float
    limit_rpm: float
    block_rpm: float
    ttl_seconds: float
    limit_requests_per_minute: int
    limit_tokens_per_minute: int
    idle_horizon_seconds: float

    def __post_init__(self) -> None:
        if not 0 < self.challenge_rpm <= self.limit_rpm <= self.block_rpm:
            raise ValueError(
                f"{self.rule_id}: thresholds must satisfy 0 < challenge_rpm <= limit_rpm <= block_rpm, got "
                f"{self.challenge_rpm}, {self.limit_rpm}, {self.block_rpm}; reorder them in the rule file"
            )
        if self.bucket_seconds <= 0 or not 2 <= self.buckets <= 1440:
            raise ValueError(
                f"{self.rule_id}: window needs bucket_seconds > 0 and 2 <= buckets <= 1440, got "
                f"{self.bucket_seconds}, {self.buckets}"
            )
        if self.ttl_seconds <= 0 or self.idle_horizon_seconds <= 0:
            raise ValueError(f"{self.rule_id}: ttl_seconds and idle_horizon_seconds must be > 0")


def load_rate_rule(path: Path | str | None = None) -> RateRule:
    """Load ``rules/rate.toml`` (or ``path``); a missing key raises ``ValueError`` naming file and key."""
    path = Path(path) if path is not None else RULES_DIR / "rate.toml"
    doc = tomllib.loads(path.read_text())
    get = _getter(doc, path)
    return RateRule(
        rule_id=get("rule", "id"),
        reason_code=get("rule", "reason_code"),
        severity=get("rule", "severity"),
        bucket_seconds=int(get("window", "bucket_seconds")),
        buckets=int(get("window", "buckets")),
        challenge_rpm=float(get("thresholds", "challenge_rpm")),
        limit_rpm=float(get("thresholds", "limit_rpm")),
        block_rpm=float(get("thresholds", "block_rpm")),
        ttl_seconds=float(get("decision", "ttl_seconds")),
        limit_requests_per_minute=int(get("decision", "limit_requests_per_minute")),
        limit_tokens_per_minute=int(get("decision", "limit_tokens_per_minute")),
        idle_horizon_seconds=float(get("state", "idle_horizon_seconds")),
    )


def _getter(doc: dict[str, Any], path: Path) -> Any:
    def get(table: str, key: str) -> Any:
        try:
            return doc[table][key]
        except KeyError:
            raise ValueError(f"{path}: missing [{table}] {key}; see detectors/rules/rate.toml") from None

    return get
