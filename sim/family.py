"""Evaluation families (``sim/families/*.toml``): one behaviour each, attack or benign, and the world they make.

A family file is a scenario file with a ``[family]`` table: its ``name``, ``kind`` (attack | benign),
``origin`` ("project": a persona the hand-set rules were tuned looking at; "red-team": written for the
held-out evaluation from the behaviour paragraph in the file's comment) and, for benign families,
``twin_of``: the detector signals this legitimate population shows. All families together, on one
clock, are the evaluation world; every account's label names its family.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from sim.scenario import Population, Scenario, populations

__all__ = ["FAMILIES", "Family", "load_families", "world"]

FAMILIES = Path(__file__).parent / "families"
_ORIGINS = ("project", "red-team")


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # attack | benign
    origin: str  # project | red-team
    twin_of: tuple[str, ...]
    populations: tuple[Population, ...]


def load_family(path: Path) -> Family:
    """One family file, checked: its populations are all of the family's kind."""
    doc = tomllib.loads(path.read_text())
    head = doc.get("family", {})
    name, kind, origin = head.get("name", path.stem), head.get("kind"), head.get("origin")
    if kind not in ("attack", "benign") or origin not in _ORIGINS:
        raise ValueError(f"{path}: [family] needs kind attack|benign and origin {'|'.join(_ORIGINS)}")
    pops = populations(path, doc, family=name)
    if any(p.kind != kind for p in pops):
        raise ValueError(f"{path}: every population of a {kind} family must be {kind}")
    return Family(name, kind, origin, tuple(head.get("twin_of", ())), pops)


def load_families(folder: Path = FAMILIES) -> tuple[Family, ...]:
    """Every family in the folder, by name."""
    return tuple(load_family(p) for p in sorted(folder.glob("*.toml")))


def world(families: tuple[Family, ...], seed: int = 7, name: str = "families") -> Scenario:
    """All families' populations on one clock (three days from the scenario epoch)."""
    return Scenario(name=name, seed=seed, start=1_800_000_000.0 - 1_800_000_000.0 % 86_400,
                    populations=tuple(p for f in families for p in f.populations))  # fmt: skip
