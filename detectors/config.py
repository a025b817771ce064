"""Rule files (TOML, one per rule family) loaded into frozen, validated dataclasses."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from detectors.registry import WEIGHT_NAMES  # fusion inputs a weight may name; anything else is a typo
from detectors.types import ACTIONS

__all__ = [
    "RULES_DIR",
    "load_provenance",
    "AnomalyConfig",
    "DriftConfig",
    "PolicyConfig",
    "ScalingConfig",
    "ScoringConfig",
    "SupervisedConfig",
    "WindowConfig",
    "load_fusion",
    "load_scoring",
]

RULES_DIR = Path(__file__).parent / "rules"

#: The action thresholds a fitted fusion file sets (``[thresholds]``), beside its ``[weights]``.
THRESHOLD_NAMES = ("challenge", "limit", "block")


@dataclass(frozen=True)
class WindowConfig:
    bucket_seconds: int
    buckets: int
    half_life_seconds: float
    tick_seconds: float
    min_requests_to_score: float
    idle_horizon_seconds: float
    max_tracked_accounts: int
    new_account_seconds: float
    new_model_seconds: float
    max_tokens_high: int

    def __post_init__(self) -> None:
        if self.bucket_seconds <= 0 or not 2 <= self.buckets <= 1440:
            raise ValueError(
                f"[window] needs bucket_seconds > 0 and 2 <= buckets <= 1440, got {self.bucket_seconds}, {self.buckets}"
            )
        if min(self.half_life_seconds, self.tick_seconds, self.idle_horizon_seconds, self.max_tracked_accounts) <= 0:
            raise ValueError(
                "[window] half_life_seconds, tick_seconds, idle_horizon_seconds, max_tracked_accounts must be > 0"
            )


@dataclass(frozen=True)
class ScalingConfig:
    requests_per_hour_cap: float
    burst_per_minute_cap: float
    output_tokens_per_hour_cap: float
    ratio_cap: float
    distinct_ips_cap: float
    distinct_uas_cap: float
    share_prior_requests: float

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name != "share_prior_requests" and getattr(self, f.name) <= 1:
                raise ValueError(f"[scaling] {f.name} must be > 1, got {getattr(self, f.name)}")


@dataclass(frozen=True)
class DriftConfig:
    min_instances: int
    delta: float
    threshold: float
    alpha: float
    memory_seconds: float


@dataclass(frozen=True)
class AnomalyConfig:
    n_trees: int
    height: int
    window_size: int
    seed: int
    quantile: float
    learn_every: int

    def __post_init__(self) -> None:
        if self.height > 10:
            raise ValueError(f"[anomaly] height {self.height} is too deep: height 15 costs ~835 µs per call")
        if not 0.5 < self.quantile < 1:
            raise ValueError(f"[anomaly] quantile must be in (0.5, 1), got {self.quantile}")


@dataclass(frozen=True)
class SupervisedConfig:
    evidence_half: float


@dataclass(frozen=True)
class PolicyConfig:
    challenge: float
    limit: float
    block: float
    min_requests_to_enforce: float
    escalate_after_seconds: float
    escalate_min_requests: int
    ttl_seconds: float
    renew_when_remaining: float
    limit_requests_per_minute: int
    limit_tokens_per_minute: int
    max_action: MappingProxyType[str, int]  # account type -> highest ACTIONS index allowed
    action_mode: MappingProxyType[str, str]  # action -> enforce | shadow | off (absent: enforce)

    def with_thresholds(self, thresholds: Mapping[str, float]) -> PolicyConfig:
        """This policy with other challenge, limit and block thresholds (a fitted fusion's, a cluster stage's)."""
        return replace(
            self, challenge=float(thresholds["challenge"]), limit=float(thresholds["limit"]),
            block=float(thresholds["block"]),
        )  # fmt: skip

    def __post_init__(self) -> None:
        if not 0 < self.challenge <= self.limit <= self.block <= 1:
            raise ValueError(
                f"[policy] thresholds must satisfy 0 < challenge <= limit <= block <= 1, got "
                f"{self.challenge}, {self.limit}, {self.block}; reorder them in the rule file"
            )


@dataclass(frozen=True)
class ScoringConfig:
    """Everything the per-account detector reads from ``rules/scoring.toml``.

    >>> cfg = load_scoring()
    >>> cfg.policy.challenge <= cfg.policy.limit <= cfg.policy.block
    True
    """

    rule_id: str
    window: WindowConfig
    scaling: ScalingConfig
    weights: MappingProxyType[str, float]
    drift: DriftConfig
    anomaly: AnomalyConfig
    supervised: SupervisedConfig
    policy: PolicyConfig


T = TypeVar("T")


def _section(cls: type[T], doc: dict[str, Any], name: str, path: Path, **extra: Any) -> T:
    table = doc.get(name)
    if not isinstance(table, dict):
        raise ValueError(f"{path}: section [{name}] is missing")
    wanted = {f.name for f in fields(cls)} - set(extra)  # type: ignore[arg-type]
    missing = wanted - set(table)
    unknown = set(table) - wanted - {"max_action", "action_mode"}
    if missing or unknown:
        raise ValueError(f"{path}: [{name}] missing {sorted(missing)} / unknown {sorted(unknown)}")
    try:
        return cls(**{k: table[k] for k in wanted}, **extra)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def load_scoring(path: Path | str | None = None) -> ScoringConfig:
    """Load ``rules/scoring.toml`` (or ``path``); problems raise ``ValueError`` naming file and key."""
    path = Path(path) if path is not None else RULES_DIR / "scoring.toml"
    doc = tomllib.loads(path.read_text())
    if "fusion" in doc:  # the fitted part: weights and action thresholds, in their own file
        doc = _with_fusion(doc, path.parent / str(doc["fusion"]), path)
    weights = doc.get("weights", {})
    _check_weight_names(weights, path)
    caps = doc.get("policy", {}).get("max_action", {})
    if bad := {k: v for k, v in caps.items() if v not in ACTIONS}:
        raise ValueError(f"{path}: [policy.max_action] values must be one of {ACTIONS}, got {bad}")
    modes = doc.get("policy", {}).get("action_mode", {})
    if bad := {k: v for k, v in modes.items() if k not in ACTIONS or v not in ("enforce", "shadow", "off")}:
        raise ValueError(f"{path}: [policy.action_mode] maps an action to enforce|shadow|off, got {bad}")
    return ScoringConfig(
        rule_id=str(doc.get("rule", {}).get("id", path.stem)),
        window=_section(WindowConfig, doc, "window", path),
        scaling=_section(ScalingConfig, doc, "scaling", path),
        weights=MappingProxyType({name: float(weights.get(name, 0.0)) for name in WEIGHT_NAMES}),
        drift=_section(DriftConfig, doc, "drift", path),
        anomaly=_section(AnomalyConfig, doc, "anomaly", path),
        supervised=_section(SupervisedConfig, doc, "supervised", path),
        policy=_section(
            PolicyConfig,
            doc,
            "policy",
            path,
            max_action=MappingProxyType({k: ACTIONS.index(v) for k, v in caps.items()}),
            action_mode=MappingProxyType(dict(modes)),
        ),
    )


def _with_fusion(doc: dict[str, Any], fusion_path: Path, path: Path) -> dict[str, Any]:
    """``doc`` with the fusion file's ``[weights]`` and ``[thresholds]`` in place: neither may also be set in
    the scoring file itself (one source for each number)."""
    if "weights" in doc or any(name in doc.get("policy", {}) for name in THRESHOLD_NAMES):
        raise ValueError(f"{path}: weights and thresholds come from {fusion_path.name}; remove them here")
    weights, thresholds = load_fusion(fusion_path)
    return {**doc, "weights": weights, "policy": {**doc.get("policy", {}), **thresholds}}


def load_fusion(path: Path | str | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """The fitted fusion (``rules/fusion.toml``): its weights and its action thresholds, checked.

    >>> weights, thresholds = load_fusion()
    >>> "bias" in weights, 0 < thresholds["challenge"] <= thresholds["limit"] <= thresholds["block"] <= 1
    (True, True)
    """
    path = Path(path) if path is not None else RULES_DIR / "fusion.toml"
    try:
        doc = tomllib.loads(path.read_text())
        thresholds = {name: float(doc["thresholds"][name]) for name in THRESHOLD_NAMES}
        weights = {str(k): float(v) for k, v in doc["weights"].items()}
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: needs [weights] and [thresholds] {THRESHOLD_NAMES}: {exc!r}") from None
    _check_weight_names(weights, path)
    c, lim, b = (thresholds[name] for name in THRESHOLD_NAMES)
    if not 0 < c <= lim <= b <= 1:
        raise ValueError(f"{path}: [thresholds] must satisfy 0 < challenge <= limit <= block <= 1, got {c}, {lim}, {b}")
    return weights, thresholds


def _check_weight_names(weights: Mapping[str, Any], path: Path) -> None:
    """A weight that names no fusion input is a typo: refused, naming the file."""
    if unknown := set(weights) - set(WEIGHT_NAMES):
        raise ValueError(f"{path}: [weights] has unknown names {sorted(unknown)}; known: {WEIGHT_NAMES}")


def load_provenance(path: Path | str | None = None) -> frozenset[str]:
    """The personas the hand-set rules were tuned looking at (``rules/provenance.toml``): the evaluation
    never reports a family built on one of them as held out.

    >>> "chat_user" in load_provenance()
    True
    """
    path = Path(path) if path is not None else RULES_DIR / "provenance.toml"
    try:
        personas = tomllib.loads(path.read_text())["hand_set"]["tuned_on_personas"]
    except KeyError as exc:
        raise ValueError(f"{path}: missing {exc}; see detectors/rules/provenance.toml") from None
    if not isinstance(personas, list) or not all(isinstance(p, str) for p in personas):
        raise ValueError(f"{path}: hand_set.tuned_on_personas must be a list of persona names")
    return frozenset(personas)
