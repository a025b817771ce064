"""The fusion's inputs, from one declaration (``rules/features.toml``): names, order, reason codes, products.

Every other list of features is derived from this one, so adding a window feature is one table entry plus
its computation in ``reference/fold.py`` and ``_fold.c`` (both checked against :data:`VECTOR_FEATURES` at
import of ``scoring``).

>>> VECTOR_FEATURES[:3], PRODUCTS[1]
(('volume', 'burst', 'tokens'), ('cot_x_volume', ('cot_rate', 'volume')))
>>> REASON_CODES["cot_x_volume"], "ua_spread" in FITTED_INPUTS, WEIGHT_NAMES[0]
('COT_AT_SCALE', False, 'bias')
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = [
    "FITTED_INPUTS", "PRODUCTS", "REASON_CODES", "VECTOR_FEATURES", "WEIGHT_NAMES", "Registry", "load_registry",
]  # fmt: skip

_PATH = Path(__file__).parent / "rules" / "features.toml"
_KINDS = ("window", "product", "model")


class Registry(NamedTuple):
    """What the detector derives from the table."""

    vector_features: tuple[str, ...]  # the window vector, in order; all values in [0, 1]
    products: tuple[tuple[str, tuple[str, ...]], ...]  # (name, the window features it multiplies)
    weight_names: tuple[str, ...]  # what a fusion file may weigh: the bias, then every input
    reason_codes: MappingProxyType[str, str]  # input -> stable reason code (a contract)
    fitted_inputs: tuple[str, ...]  # what the fusion fit weighs, in order (``fit = false`` left out)


def derive(doc: dict[str, Any], source: str = "features table") -> Registry:
    """The registry of a parsed table, checked: unique names, a reason code each, products of window features.

    >>> extra = {"window": [{"name": "a", "reason": "A"}, {"name": "b", "reason": "B", "fit": False}],
    ...          "product": [{"name": "a_x_b", "factors": ["a", "b"], "reason": "AB"}], "model": []}
    >>> r = derive(extra)
    >>> r.weight_names, r.fitted_inputs, r.reason_codes["a_x_b"]
    (('bias', 'a', 'b', 'a_x_b'), ('a', 'a_x_b'), 'AB')
    """
    entries = [e for kind in _KINDS for e in doc.get(kind, [])]
    names = [e["name"] for e in entries]
    if len(names) != len(set(names)) or any(not e.get("reason") for e in entries):
        raise ValueError(f"{source}: every input needs a unique name and a reason code")
    window = tuple(e["name"] for e in doc.get("window", []))
    if bad := [e["name"] for e in doc.get("product", []) if not set(e["factors"]) <= set(window)]:
        raise ValueError(f"{source}: products {bad} name factors that are not window features")
    return Registry(
        vector_features=window,
        products=tuple((e["name"], tuple(e["factors"])) for e in doc.get("product", [])),
        weight_names=("bias", *names),
        reason_codes=MappingProxyType({e["name"]: e["reason"] for e in entries}),
        fitted_inputs=tuple(e["name"] for e in entries if e.get("fit", True)),
    )


def load_registry(path: Path = _PATH) -> Registry:
    """The shipped table (or ``path``), derived and checked."""
    return derive(tomllib.loads(path.read_text()), str(path))


_SHIPPED = load_registry()
VECTOR_FEATURES = _SHIPPED.vector_features
PRODUCTS = _SHIPPED.products
WEIGHT_NAMES = _SHIPPED.weight_names
REASON_CODES = _SHIPPED.reason_codes
FITTED_INPUTS = _SHIPPED.fitted_inputs
