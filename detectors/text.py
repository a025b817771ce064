"""The part of a prompt the detectors read: its head and tail, lowercased, as UTF-8 bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from detectors.accelerators import accelerator
from detectors.reference import skeleton as _reference

if TYPE_CHECKING:
    from detectors import _skeleton
else:
    _skeleton = accelerator("_skeleton")

__all__ = ["lowered_cut"]


def lowered_cut(text: str, head: int, tail: int) -> bytes:
    """The first ``head`` and last ``tail`` characters of ``text`` (all of it if shorter), lowercased,
    as UTF-8: what the phrase scan and the skeleton read. ASCII text is cut and lowered in C when the
    accelerator is built (``_skeleton.lowered_cut``); the rest by its reference.

    >>> lowered_cut("Say HELLO to the World", 3, 5), lowered_cut("Ünïcode OK", 3, 2)
    (b'say\\nworld', b'\\xc3\\xbcn\\xc3\\xaf\\nok')
    """
    cut = None if _skeleton is None else _skeleton.lowered_cut(text, head, tail)
    return _reference.lowered_cut(text, head, tail) if cut is None else cut
