"""The part of a prompt the detectors read: its head and tail, lowercased, as UTF-8 bytes."""

from __future__ import annotations

from detectors import _skeleton

__all__ = ["lowered_cut"]


def lowered_cut(text: str, head: int, tail: int) -> bytes:
    """The first ``head`` and last ``tail`` characters of ``text`` (all of it if shorter), lowercased,
    as UTF-8: what the phrase scan and the skeleton read. In C (``_skeleton.lowered_cut``), which leaves
    to Python only a cut holding a capital sigma (its lowercase depends on context) or a lone surrogate.

    >>> lowered_cut("Say HELLO to the World", 3, 5), lowered_cut("Ünïcode OK", 3, 2)
    (b'say\\nworld', b'\\xc3\\xbcn\\xc3\\xaf\\nok')
    """
    cut = _skeleton.lowered_cut(text, head, tail)
    if cut is None:
        if len(text) > head + tail:
            text = text[:head] + "\n" + text[-tail:]
        cut = text.lower().encode("utf-8", "replace")
    return cut
