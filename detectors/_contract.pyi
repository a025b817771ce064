"""Types of the C module built from ``_contract.c`` (see ``events.validate_event``)."""

from typing import Any

KINDS: dict[str, int]

def valid(
    event: dict[str, Any],
    required_names: tuple[str, ...],
    required_kinds: tuple[int, ...],
    optional_kinds: dict[str, int],
    account_types: frozenset[str],
    max_id_chars: int,
    max_ts: float,
    /,
) -> bool: ...
