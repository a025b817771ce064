"""Types of the C module built from ``_skeleton.c``: those of its reference, ``detectors/reference/skeleton.py``
(but ``lowered_cut`` answers None for text that is not ASCII, which the reference lowers itself)."""

from detectors.reference.skeleton import fingerprint as fingerprint
from detectors.reference.skeleton import words as words

def lowered_cut(text: str, head: int, tail: int, /) -> bytes | None: ...
