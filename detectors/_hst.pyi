"""Types of the C module built from ``_hst.c`` (see ``scoring.CohortAnomaly``)."""

def walk(
    nodes: bytes,
    masses: bytes,
    x: dict[str, float],
    names: tuple[str, ...],
    n_trees: int,
    height: int,
    size_limit: float,
    /,
) -> float | None: ...
def learn(
    nodes: bytes,
    l_mass: bytearray,
    x: dict[str, float],
    names: tuple[str, ...],
    n_trees: int,
    height: int,
    /,
) -> None: ...
