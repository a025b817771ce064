"""Naive baselines the detector must beat, scored on the same stream (``distillguard evaluate``).

Their numbers come from the independent evaluation that motivated them (issue 19), not from our data:
a volume rule (more than 200 requests in any hour) and a one-line chain-of-thought regex (an account
with at least 20 requests of which at least half match). Each blocks an account for good the moment
its rule first holds; :class:`Baselines` reports when that was.

>>> b = Baselines()
>>> for i in range(25):
...     b.observe({"account_id": "a", "ts": 100.0 + i, "prompt": "Explain your reasoning step by step."})
>>> b.first_enforced["cot_regex"], b.first_enforced["volume"]
({'a': 119.0}, {})
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

__all__ = ["BASELINES", "COT_REGEX", "Baselines"]

COT_REGEX = re.compile(
    r"step[- ]by[- ]step|reasoning|justify|show your work|thought process|walk me through"
    r"|explain (your|each|the logic)",
    re.IGNORECASE,
)
VOLUME_PER_HOUR = 200
COT_MIN_REQUESTS = 20
COT_MIN_SHARE = 0.5

#: Baseline names, in the order tables show them; "either" enforces when either rule would.
BASELINES = ("volume", "cot_regex", "either")


class Baselines:
    """Every baseline over one event stream, one pass, per-account state only."""

    def __init__(self) -> None:
        self.first_enforced: dict[str, dict[str, float]] = {name: {} for name in BASELINES}
        self._recent: dict[str, deque[float]] = {}
        self._counts: dict[str, list[int]] = {}  # account -> [requests, regex matches]

    def observe(self, event: dict[str, Any]) -> None:
        account, ts = event["account_id"], float(event["ts"])
        recent = self._recent.setdefault(account, deque())
        recent.append(ts)
        while recent[0] <= ts - 3600:
            recent.popleft()
        counts = self._counts.setdefault(account, [0, 0])
        counts[0] += 1
        text = f"{event.get('system') or ''}\n{event.get('prompt') or ''}"
        counts[1] += COT_REGEX.search(text) is not None
        if len(recent) > VOLUME_PER_HOUR:
            self._enforce("volume", account, ts)
        if counts[0] >= COT_MIN_REQUESTS and counts[1] >= COT_MIN_SHARE * counts[0]:
            self._enforce("cot_regex", account, ts)

    def _enforce(self, rule: str, account: str, ts: float) -> None:
        for name in (rule, "either"):
            self.first_enforced[name].setdefault(account, ts)
