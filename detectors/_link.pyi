"""Types of the C module built from ``_link.c``: those of its reference, ``detectors/reference/link.py``."""

from detectors.reference.link import Target as Target
from detectors.reference.link import components as components
from detectors.reference.link import merge as merge
from detectors.reference.link import observe as observe
from detectors.reference.link import targets as targets
