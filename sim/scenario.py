"""Scenario files (TOML) → labelled request-event streams, reproducible from a seed.

    distillguard simulate sim/scenarios/mixed.toml --events events.jsonl.gz --labels labels.jsonl

A scenario lists populations; each is a persona from :mod:`sim.personas` run for a number of
accounts whose start times are spread over the scenario. Events go to one file in event-time order
(the documented contract, no labels inside); ground truth (account → population, kind, campaign) goes
to a separate labels file.

A population's ``infra`` table says what its accounts share and how they churn, which is what makes a
hydra a hydra (see ``sim/scenarios/hydra.toml``):

- ``cards = N`` / ``devices = N``: member i pays with card i mod N / uses device i mod N;
- ``proxy = "name"``, ``proxy_ips = N``: every request leaves from one of the N exit IPs of that proxy
  network; populations naming the same proxy share its IPs (a reseller's customers and its campaign);
- ``nat = "name"``: all members share one IP (a university or office NAT);
- ``strip_metadata = true``: no IP and no user agent reach the detector (an aggregator strips them);
- ``lifetime_hours = H``: each member's traffic is carried by a fresh account every ~H hours (a banned
  or burnt account replaced at once); each replacement is its own labelled account.

Personas that coordinate receive ``member``, ``members`` and ``pool_start`` (one schedule for the pool)
and ``origin`` (the scenario's start, for events such as a model release) when they ask for them.
"""

from __future__ import annotations

import gzip
import inspect
import random
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import IO, Any

import orjson

from sim.personas import PERSONAS as PROJECT_PERSONAS
from sim.personas import Event, merged
from sim.redteam import REDTEAM_PERSONAS

__all__ = ["PERSONAS", "Population", "Scenario", "generate", "load_scenario", "populations", "resized", "write"]

#: Every persona a scenario file may name: the project's own and the red team's (``sim/redteam.py``).
PERSONAS: dict[str, Callable[..., list[Event]]] = {**PROJECT_PERSONAS, **REDTEAM_PERSONAS}


@dataclass(frozen=True)
class Population:
    name: str
    persona: str
    accounts: int
    kind: str  # benign | attack
    campaign: str | None = None
    start_within_hours: float = 24.0  # accounts start at a random time within this many hours …
    start_after_hours: float = 0.0  # … counted from this long after the scenario's start
    params: dict[str, Any] = field(default_factory=dict)
    infra: dict[str, Any] = field(default_factory=dict)
    family: str | None = None  # the evaluation family it belongs to (``sim/families/``); None: its own name


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
    return Scenario(
        name=str(head.get("name", path.stem)),
        seed=int(seed if seed is not None else head.get("seed", 1)),
        start=float(head.get("start", 1_800_000_000.0 - 1_800_000_000.0 % 86_400)),
        populations=populations(path, doc),
    )


def populations(path: Path, doc: dict[str, Any], family: str | None = None) -> tuple[Population, ...]:
    """The checked ``[[population]]`` tables of a parsed scenario or family file."""
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
                start_after_hours=float(raw.get("start_after_hours", 0.0)),
                params=dict(raw.get("params", {})), infra=_checked_infra(path, name, raw.get("infra", {})),
                family=family,
            )
        )  # fmt: skip
    if not populations:
        raise ValueError(f"{path}: no [[population]] tables")
    return tuple(populations)


def resized(scenario: Scenario, benign: float = 1.0, attack: float = 1.0) -> Scenario:
    """The same scenario with every benign / attack population's account count scaled (another mixture).

    >>> from pathlib import Path
    >>> s = load_scenario(Path(__file__).parent / "scenarios" / "mixed.toml")
    >>> [p.accounts for p in resized(s, benign=2, attack=0.5).populations][:2]
    [600, 20]
    """
    scale = {"benign": benign, "attack": attack}
    pops = tuple(replace(p, accounts=max(1, round(p.accounts * scale[p.kind]))) for p in scenario.populations)
    return replace(scenario, populations=pops)


_INFRA_KEYS = {"cards", "devices", "proxy", "proxy_ips", "nat", "strip_metadata", "lifetime_hours"}


def _checked_infra(path: Path, name: str, infra: dict[str, Any]) -> dict[str, Any]:
    if unknown := set(infra) - _INFRA_KEYS:
        raise ValueError(f"{path}: population {name!r}: unknown infra keys {sorted(unknown)}; "
                         f"known: {sorted(_INFRA_KEYS)}")  # fmt: skip
    return dict(infra)


@cache  # the same for every member of every population naming the proxy: build it once
def _exit_ips(proxy: str, n: int) -> tuple[str, ...]:
    """A proxy network's exit IPs: residential-looking addresses over many /24s, fixed by its name."""
    r = random.Random(f"proxy:{proxy}")
    return tuple(
        f"{r.randrange(70, 100)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}" for _ in range(n)
    )


def _with_infra(events: list[Event], pop: Population, member: int, rng: random.Random, tag: str) -> None:
    """Rewrite a member's events in place with what its population shares."""
    infra = pop.infra
    shared: dict[str, Any] = {}
    if "cards" in infra:
        shared["payment_fingerprint"] = f"{tag}-card-{member % int(infra['cards'])}"
    if "devices" in infra:
        shared["device_fingerprint"] = f"{tag}-device-{member % int(infra['devices'])}"
    if "nat" in infra:
        shared["ip"] = _exit_ips(f"nat:{infra['nat']}", 1)[0]
    exits = _exit_ips(str(infra["proxy"]), int(infra.get("proxy_ips", 50))) if "proxy" in infra else None
    for event in events:
        event.update(shared)
        if exits is not None:
            event["ip"] = rng.choice(exits)
        if infra.get("strip_metadata"):
            event.pop("ip", None)
            event.pop("user_agent", None)


def _replacements(events: list[Event], account: str, hours: float, rng: random.Random) -> list[tuple[str, list[Event]]]:
    """Split one member's traffic over successive fresh accounts, each living about ``hours`` hours."""
    accounts: list[tuple[str, list[Event]]] = []
    end = -1.0
    for event in events:
        if event["ts"] >= end:
            name = account if not accounts else f"{account}-r{len(accounts)}"
            accounts.append((name, []))
            end = event["ts"] + hours * 3600 * rng.uniform(0.5, 1.5)
            created = event["ts"] - rng.uniform(60, 3600)
        name, own = accounts[-1]
        event["account_id"] = name
        event["event_id"] = f"{name}-{len(own)}"
        event["account_created_ts"] = round(created, 3)
        own.append(event)
    return accounts


def generate(scenario: Scenario) -> tuple[Iterator[Event], list[dict[str, Any]]]:
    """(events in event-time order, labels). Same scenario and seed, same bytes."""
    rng = random.Random(scenario.seed)
    streams: list[list[Event]] = []
    labels: list[dict[str, Any]] = []
    for pop in scenario.populations:
        persona = PERSONAS[pop.persona]
        wants = set(inspect.signature(persona).parameters)
        begin = scenario.start + pop.start_after_hours * 3600
        pool_start = begin + rng.uniform(0, pop.start_within_hours * 3600)
        context = {"members": pop.accounts, "pool_start": pool_start, "origin": scenario.start}
        tag = f"{scenario.name}-{scenario.seed}-{pop.campaign or pop.name}"
        for i in range(pop.accounts):
            account = f"{pop.name}-{i:05d}"
            start = begin + rng.uniform(0, pop.start_within_hours * 3600)
            extra = {k: v for k, v in {**context, "member": i}.items() if k in wants}
            events = persona(account, rng, start, **pop.params, **extra)
            _with_infra(events, pop, i, rng, tag)
            owned = ([(account, events)] if "lifetime_hours" not in pop.infra
                     else _replacements(events, account, float(pop.infra["lifetime_hours"]), rng))  # fmt: skip
            for name, own in owned:
                streams.append(own)
                labels.append(_label(name, pop, own))
    return merged(streams), labels


def _label(account: str, pop: Population, events: list[Event]) -> dict[str, Any]:
    """Ground truth of one account. Personas mark harvesting requests ``_harvest`` (stripped here, never
    written to the events): an attacker's harvest starts at its first marked request (its first request
    when it marks none) and its harvested tokens are the output tokens from then on."""
    marked = [e.pop("_harvest", False) for e in events]
    label: dict[str, Any] = {"account_id": account, "population": pop.name, "kind": pop.kind,
                             "campaign": pop.campaign, "family": pop.family or pop.name}  # fmt: skip
    if pop.kind == "attack" and events:
        first = marked.index(True) if any(marked) else 0
        label["harvest_start"] = events[first]["ts"]
        label["harvest_tokens"] = sum(e["output_tokens"] for e in events[first:])
    return label


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
