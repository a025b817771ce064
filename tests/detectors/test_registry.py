"""The feature registry: one declaration, from which every list of the fusion's inputs follows."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from detectors import _fold
from detectors.registry import _PATH, REASON_CODES, VECTOR_FEATURES, WEIGHT_NAMES, derive


def test_a_made_up_window_feature_needs_one_declaration_to_be_weighed_explained_and_fitted() -> None:
    doc = tomllib.loads(_PATH.read_text())
    doc["window"].append({"name": "night_owl", "reason": "NIGHT_OWL", "about": "share of requests at 2-5 am"})
    registry = derive(doc)
    assert registry.vector_features[-1] == "night_owl"
    assert "night_owl" in registry.weight_names and registry.reason_codes["night_owl"] == "NIGHT_OWL"
    assert "night_owl" in registry.fitted_inputs


def test_the_c_window_vector_is_the_declared_one_in_the_declared_order() -> None:
    assert _fold.VECTOR_FEATURES == VECTOR_FEATURES


def test_every_input_has_a_distinct_reason_code() -> None:
    assert set(REASON_CODES) == set(WEIGHT_NAMES) - {"bias"}
    assert len(set(REASON_CODES.values())) == len(REASON_CODES)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda doc: doc["window"].append({"name": "volume", "reason": "AGAIN"}), "unique name"),
        (lambda doc: doc["window"].append({"name": "quiet"}), "reason code"),
        (lambda doc: doc["product"].append({"name": "p", "factors": ["nope"], "reason": "P"}), "not window features"),
    ],
)
def test_a_broken_table_is_refused(change: Callable[[dict[str, Any]], None], message: str) -> None:
    doc = tomllib.loads(_PATH.read_text())
    change(doc)
    with pytest.raises(ValueError, match=message):
        derive(doc)
