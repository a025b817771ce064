"""Types of the C module built from ``_fold.c``: those of its reference, ``detectors/reference/fold.py``."""

from detectors.reference.fold import LAYOUT as LAYOUT
from detectors.reference.fold import VECTOR_FEATURES as VECTOR_FEATURES
from detectors.reference.fold import fold as fold
from detectors.reference.fold import page_hinkley as page_hinkley
from detectors.reference.fold import summary as summary
from detectors.reference.fold import top_template as top_template
from detectors.reference.fold import vector as vector
from detectors.reference.fold import window as window
