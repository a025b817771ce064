"""Which implementation runs each accelerated step: its C extension, or its reference in Python.

The extensions are optional (as msgpack's or PyYAML's are): a build without a C compiler, or
``DISTILLGUARD_PURE_PYTHON=1`` in the environment, runs every step on the reference it is pinned to by
tests; the decisions are the same, only slower (``docs/performance.md``).

>>> running = status()
>>> ACCELERATED == {name for name, on in running.items() if on}
True
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["ACCELERATED", "PURE_PYTHON", "accelerator", "status"]

_NAMES = ("_contract", "_fold", "_hst", "_intent", "_link", "_phrases", "_skeleton")
_SWITCH = os.environ.get("DISTILLGUARD_PURE_PYTHON", "")
#: Every step has its Python reference; ``DISTILLGUARD_PURE_PYTHON=1`` runs them all, a comma-separated
#: list of names (``_fold,_link``) only those.
PURE_PYTHON: frozenset[str] = frozenset(
    () if _SWITCH in ("", "0") else _NAMES if _SWITCH == "1" else (n.strip() for n in _SWITCH.split(","))
)
#: The names of the extensions in use in this process.
ACCELERATED: set[str] = set()


def accelerator(name: str) -> ModuleType | None:
    """The C extension ``detectors.<name>``, or None: switched off, or not built here."""
    if name not in _NAMES:
        raise ValueError(f"no accelerator named {name!r}")
    if name in PURE_PYTHON:
        return None
    try:
        module = importlib.import_module(f"detectors.{name}")
    except ImportError:
        return None
    ACCELERATED.add(name)
    return module


def status() -> dict[str, bool]:
    """Each accelerator and whether it runs (for the worker's start-up log and health page)."""
    for name in _NAMES:
        accelerator(name)
    return {name: name in ACCELERATED for name in _NAMES}
