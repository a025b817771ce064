"""Scenario files (TOML) → labelled request-event streams, reproducible from a seed.

    distillguard simulate sim/scenarios/mixed.toml --events events.jsonl.gz --labels labels.jsonl

A scenario lists populations; each is a persona from :mod:`sim.personas` run for a number of
accounts whose start times are spread over the scenario. Events go to one file in event-time order
(the documented contract, no labels inside); ground truth (account → population, kind, campaign) goes
to a separate labels file.
"""

from __future__ import annotations

import gzip
import random
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from sim.personas import PERSONAS, Event, merged

__all__ = ["Population", "Scenario", "generate", "load_scenario", "write"]


@dataclass(frozen=True)
class Population:
    name: str
    persona: str
    accounts: int
    kind: str  # benign | attack
    campaign: str | None = None
    start_within_hours: float = 24.0  # accounts start at a random time within this many hours
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    start: float
    populations: tuple[Population, ...]


def load_scenario(path: Path | str, seed: int | None = None) -> Scenario:
    """Read and check a scenario file; mistakes raise ``ValueError`` naming the population."""
    path = Path(path)
    doc = tomllib.loads(path.read_text())
    head = doc.get("scenario", {})
    populations = []
    for raw in doc.get("population", []):
        name = raw.get("name", "?")
        if raw.get("persona") not in PERSONAS:
            raise ValueError(f"{path}: population {name!r}: persona must be one of {sorted(PERSONAS)}")
        if raw.get("kind") not in ("benign", "attack"):
            raise ValueError(f"{path}: population {name!r}: kind must be 'benign' or 'attack'")
        if raw["kind"] == "attack" and not raw.get("campaign"):
            raise ValueError(f"{path}: population {name!r}: an attack needs a campaign id")
        populations.append(
            Population(
                name=name, persona=raw["persona"], accounts=int(raw.get("accounts", 1)), kind=raw["kind"],
                campaign=raw.get("campaign"), start_within_hours=float(raw.get("start_within_hours", 24.0)),
                params=dict(raw.get("params", {})),
            )
        )  # fmt: skip
    if not populations:
        raise ValueError(f"{path}: no [[population]] tables")
    return Scenario(
        name=str(head.get("name", path.stem)),
        seed=int(seed if seed is not None else head.get("seed", 1)),
        start=float(head.get("start", 1_800_000_000.0 - 1_800_000_000.0 % 86_400)),
        populations=tuple(populations),
    )


def generate(scenario: Scenario) -> tuple[Iterator[Event], list[dict[str, Any]]]:
    """(events in event-time order, labels). Same scenario and seed, same bytes."""
    rng = random.Random(scenario.seed)
    streams: list[list[Event]] = []
    labels: list[dict[str, Any]] = []
    for pop in scenario.populations:
        persona = PERSONAS[pop.persona]
        for i in range(pop.accounts):
            account = f"{pop.name}-{i:05d}"
            start = scenario.start + rng.uniform(0, pop.start_within_hours * 3600)
            streams.append(persona(account, rng, start, **pop.params))
            labels.append({"account_id": account, "population": pop.name, "kind": pop.kind,
                           "campaign": pop.campaign})  # fmt: skip
    return merged(streams), labels


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "wb", compresslevel=3)  # type: ignore[return-value]
    return open(path, "wb")


def write(scenario: Scenario, events_path: Path, labels_path: Path) -> tuple[int, int]:
    """Write events and labels files; returns (events, accounts)."""
    events, labels = generate(scenario)
    n = 0
    with _open(events_path) as out:
        for event in events:
            out.write(orjson.dumps(event) + b"\n")
            n += 1
    with open(labels_path, "wb") as out:
        for label in labels:
            out.write(orjson.dumps(label) + b"\n")
    return n, len(labels)
