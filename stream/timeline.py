"""A timeline drawn as server-rendered SVG (no script, no network at run time): what the triage page shows
of an account's or an incident's traffic over time, its rungs and the moments members joined.

Points come from the alerts themselves: each carries the evidence window at the moment of its decision
(requests and output tokens in the last hour, the extraction-intent rate). Nothing is stored for it.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Mark", "Point", "points_and_marks", "svg"]

_W, _H, _PAD = 760, 220, 44
_COLOURS = {"requests": "#1f77b4", "tokens": "#ff7f0e", "intent": "#2ca02c"}
_RUNG_COLOURS = {"challenge": "#b35c00", "limit": "#b00020", "block": "#5c0010"}


@dataclass(frozen=True)
class Point:
    at: float
    requests: float  # in the last hour
    tokens: float  # output tokens in the last hour
    intent: float  # extraction-intent rate in [0, 1]


@dataclass(frozen=True)
class Mark:
    at: float
    label: str  # a rung ("limit") or "joined <member>"
    kind: str  # "rung" | "joined"


def points_and_marks(alerts: Sequence[dict[str, Any]], members: bool = False) -> tuple[list[Point], list[Mark]]:
    """A series from the alerts' evidence windows, a mark at each rung change (per subject) and, for an
    incident (``members``), when each member joined.

    >>> a = [{"raised_at": 60.0, "subject": {"id": "x"}, "decision": {"action": "challenge"},
    ...       "evidence_window": {"requests_last_hour": 40, "output_tokens_last_hour": 9000, "cot_rate": 0.7}},
    ...      {"raised_at": 960.0, "subject": {"id": "x"}, "decision": {"action": "limit"}, "evidence_window": {}}]
    >>> points, marks = points_and_marks(a)
    >>> [p.requests for p in points], [m.label for m in marks]
    ([40.0, 0.0], ['challenge', 'limit'])
    """
    points: list[Point] = []
    joins: dict[float, list[str]] = {}
    rungs: dict[tuple[float, str], None] = {}
    last_rung: dict[str, str] = {}
    joins_at: list[float] = []
    for alert in sorted(alerts, key=lambda a: float(a.get("raised_at", 0.0))):
        at, subject = float(alert.get("raised_at", 0.0)), str(alert["subject"]["id"])
        points.append(_point(alert, at))
        action = str(alert["decision"]["action"])
        if not joins_at or at - joins_at[-1] >= 60:  # marks within a minute of the last are drawn as one
            joins_at.append(at)
        if members and subject not in last_rung:
            joins.setdefault(joins_at[-1], []).append(subject)
        if last_rung.get(subject) != action:
            rungs[(joins_at[-1], action)] = None
        last_rung[subject] = action
    marks = [
        Mark(at, f"joined {who[0]}" if len(who) == 1 else f"{len(who)} joined", "joined") for at, who in joins.items()
    ]
    marks += [Mark(at, action, "rung") for at, action in rungs]
    return points, sorted(marks, key=lambda m: (m.at, m.kind))


def _point(alert: dict[str, Any], at: float) -> Point:
    """An account alert's evidence window; a cluster alert's figures are in its decision's evidence."""
    window = alert.get("evidence_window") or {}
    evidence = (alert.get("decision") or {}).get("evidence") or {}
    cluster = evidence.get("features") or {}
    return Point(
        at,
        _num(window.get("requests_last_hour", evidence.get("requests"))),
        _num(window.get("output_tokens_last_hour", cluster.get("output_tokens_last_hour"))),
        min(1.0, _num(window.get("cot_rate", cluster.get("cot_rate")))),
    )


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def svg(points: Sequence[Point], marks: Sequence[Mark], title: str) -> str:
    """The chart: requests/h and output tokens/h (each scaled to its own maximum), the intent rate (0-1),
    vertical lines at rung changes and member joins. Escaped: labels may carry client-chosen ids.

    >>> out = svg([Point(0, 10, 100, 0.5), Point(60, 20, 300, 0.9)], [Mark(60, "limit", "rung")], "acct <x>")
    >>> out.startswith("<svg") and "acct &lt;x&gt;" in out and "<polyline" in out
    True
    """
    if not points:
        return "<p>No evidence windows to draw.</p>"
    t0, t1 = min(p.at for p in points), max(p.at for p in points)
    span = max(t1 - t0, 60.0)

    def x(at: float) -> float:
        return _PAD + (at - t0) / span * (_W - 2 * _PAD)

    def y(value: float, top: float) -> float:
        return _H - _PAD - (value / top if top > 0 else 0.0) * (_H - 2 * _PAD)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' class='timeline' width='{_W}' height='{_H}' role='img' "
             f"aria-label='{html.escape(title, quote=True)}'>",
             f"<title>{html.escape(title)}</title>",
             f"<line x1='{_PAD}' y1='{_H - _PAD}' x2='{_W - _PAD}' y2='{_H - _PAD}' stroke='#999'/>"]  # fmt: skip
    tops = {"requests": max(p.requests for p in points), "tokens": max(p.tokens for p in points), "intent": 1.0}
    for name, top in tops.items():
        coords = " ".join(f"{x(p.at):.1f},{y(getattr(p, name), top):.1f}" for p in points)
        parts.append(f"<polyline class='series-{name}' fill='none' stroke='{_COLOURS[name]}' stroke-width='2' "
                     f"points='{coords}'/>")  # fmt: skip
    for i, m in enumerate(marks):
        colour = _RUNG_COLOURS.get(m.label, "#888")
        parts.append(f"<line class='mark-{m.kind}' x1='{x(m.at):.1f}' y1='{_PAD - 8}' x2='{x(m.at):.1f}' "
                     f"y2='{_H - _PAD}' stroke='{colour}' stroke-dasharray='3,3'/>"
                     f"<text x='{x(m.at) + 2:.1f}' y='{_PAD - 10 + 11 * (i % 3)}' font-size='10' fill='{colour}'>"
                     f"{html.escape(m.label)}</text>")  # fmt: skip
    legend = (f"requests/h (max {tops['requests']:,.0f})", f"output tokens/h (max {tops['tokens']:,.0f})",
              "extraction-intent rate (0-1)")  # fmt: skip
    for i, (name, text) in enumerate(zip(_COLOURS, legend, strict=True)):
        parts.append(f"<text x='{_PAD + 230 * i}' y='{_H - 8}' font-size='11' fill='{_COLOURS[name]}'>"
                     f"{html.escape(text)}</text>")  # fmt: skip
    for at, anchor in ((t0, "start"), (t1, "end")):
        stamp = time.strftime("%m-%d %H:%M", time.gmtime(at))
        parts.append(
            f"<text x='{x(at):.1f}' y='{_H - _PAD + 14}' font-size='10' text-anchor='{anchor}'>{stamp} UTC</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
