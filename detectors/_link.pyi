"""Types of the C module built from ``_link.c`` (see ``clusters.Linker``)."""

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

class Target:
    recent: list[tuple[float, str]]
    accounts: dict[str, int]
    popular: bool
    since: float
    def __init__(
        self,
        recent: list[tuple[float, str]] = ...,
        accounts: dict[str, int] = ...,
        popular: bool = ...,
        since: float = ...,
    ) -> None: ...

def observe(
    targets: OrderedDict[Any, Target],
    links: OrderedDict[tuple[str, str], list[Any]],
    linked: set[tuple[str, str]],
    params: tuple[float | int, ...],
    obs: Iterable[Sequence[Any]],
    /,
) -> None: ...
def targets(
    event: Mapping[str, Any], template: int | None, strong: tuple[str, ...], soft: tuple[str, ...], /
) -> list[tuple[str, bool]]: ...
def components(
    links: Mapping[tuple[str, str], list[Any]],
    linked: set[tuple[str, str]],
    now: float,
    half_life: float,
    threshold: float,
    /,
) -> tuple[dict[str, tuple[list[str], list[str]]], set[str]]: ...
