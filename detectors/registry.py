"""The fusion's inputs, from one declaration (``rules/features.toml``): names, order, reason codes, products.

Every other list of features is derived from this one, so adding a window feature is one table entry plus
its computation in ``_fold.c`` (checked against :data:`VECTOR_FEATURES` at import of ``scoring``).

>>> VECTOR_FEATURES[:3], PRODUCTS[1]
(('volume', 'burst', 'tokens'), ('cot_x_volume', ('cot_rate', 'volume')))
>>> REASON_CODES["cot_x_volume"], "ua_spread" in FITTED_INPUTS, WEIGHT_NAMES[0]
('COT_AT_SCALE', False, 'bias')
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["FITTED_INPUTS", "PRODUCTS", "REASON_CODES", "VECTOR_FEATURES", "WEIGHT_NAMES", "load_registry"]

_PATH = Path(__file__).parent / "rules" / "features.toml"


def load_registry(path: Path = _PATH) -> dict[str, Any]:
    """The table, checked: unique names, a reason code for each, products of declared window features."""
    doc = tomllib.loads(path.read_text())
    entries = [(kind, e) for kind in ("window", "product", "model") for e in doc.get(kind, [])]
    names = [e["name"] for _, e in entries]
    if len(names) != len(set(names)) or any(not e.get("reason") for _, e in entries):
        raise ValueError(f"{path}: every input needs a unique name and a reason code")
    window = [e["name"] for e in doc.get("window", [])]
    if bad := [e["name"] for e in doc.get("product", []) if not set(e["factors"]) <= set(window)]:
        raise ValueError(f"{path}: products {bad} name factors that are not window features")
    return doc


_DOC = load_registry()

#: The window vector every account is scored on, in this order; all values in [0, 1].
VECTOR_FEATURES: tuple[str, ...] = tuple(e["name"] for e in _DOC["window"])
#: The fusion's product terms: each the product of the window features it names.
PRODUCTS: tuple[tuple[str, tuple[str, ...]], ...] = tuple((e["name"], tuple(e["factors"])) for e in _DOC["product"])
_MODELS = tuple(e["name"] for e in _DOC["model"])
#: Names a fusion file may weigh: the bias, then every input.
WEIGHT_NAMES: tuple[str, ...] = ("bias", *VECTOR_FEATURES, *(name for name, _ in PRODUCTS), *_MODELS)
#: Stable reason codes for fusion inputs: what gateways, dashboards and analysts key on.
REASON_CODES: MappingProxyType[str, str] = MappingProxyType(
    {e["name"]: e["reason"] for kind in ("window", "product", "model") for e in _DOC[kind]}
)
#: What the fusion fit weighs, in this order: window features, products, model inputs (not ``fit = false``).
FITTED_INPUTS: tuple[str, ...] = tuple(
    e["name"] for kind in ("window", "product", "model") for e in _DOC[kind] if e.get("fit", True)
)
