"""Cross-account prompt reuse: how many other accounts sent the same prompt template lately.

One table across accounts, as Blacklight keeps (BRIEF §3): a harvesting fleet sends one template from
many accounts, each of which looks ordinary alone. A request is *reused* when its template (the
smallest hash of its skeleton's fingerprint, as the linker keys templates) was sent by at least
``min_subjects`` subjects within ``horizon_seconds``, itself included. Popular prompts do not count: a
template sent by more than ``max_subjects`` subjects in the horizon (a famous prompt-library entry, a
benchmark everyone runs on release day) is marked popular for the horizon, and short prompts (a
fingerprint of fewer than four shingles: "hello") are never keyed. A subject is the organisation when
the event names one, else the account: one product's template across its own keys is one subject.

Memory is bounded: at most ``max_templates`` templates (least recently used go) of at most
``max_subjects`` subjects each. Each worker keeps its own table over the accounts of its partitions.

>>> reuse = PromptReuse(ReuseConfig(min_subjects=3))
>>> [reuse.observe((7, 8, 9, 10), f"acct-{i}", None, 100.0 + i) for i in range(4)]
[False, False, True, True]
>>> reuse.observe((7, 8), "acct-9", None, 105.0)  # too short a prompt to key
False
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["ReuseConfig", "PromptReuse"]

_MIN_FINGERPRINT = 4  # hashes in a fingerprint: at least four word 3-shingles, so six words or more


@dataclass(frozen=True)
class ReuseConfig:
    horizon_seconds: float = 6 * 3600.0
    min_subjects: int = 3
    max_subjects: int = 64
    max_templates: int = 20_000


class PromptReuse:
    """The cross-account template table (see the module docstring)."""

    def __init__(self, cfg: ReuseConfig | None = None) -> None:
        self.cfg = cfg or ReuseConfig()
        # template -> subject -> last time it sent the template, least recent first
        self.templates: OrderedDict[int, OrderedDict[str, float]] = OrderedDict()
        self.popular: dict[int, float] = {}  # template -> until when it counts as popular

    def observe(self, template: tuple[int, ...], account: str, org: str | None, ts: float) -> bool:
        """Note that ``account`` (of ``org``) sent ``template`` at ``ts``; whether the request is reused."""
        if len(template) < _MIN_FINGERPRINT:
            return False
        cfg, key = self.cfg, template[0]
        until = self.popular.get(key)
        if until is not None:
            if ts < until:
                return False
            del self.popular[key]
        senders = self.templates.get(key)
        if senders is None:
            senders = self.templates[key] = OrderedDict()
            if len(self.templates) > cfg.max_templates:
                self.templates.popitem(last=False)
        else:
            self.templates.move_to_end(key)
        subject = f"org:{org}" if org else account
        senders[subject] = max(ts, senders.get(subject, ts))
        senders.move_to_end(subject)
        horizon = ts - cfg.horizon_seconds
        while senders and next(iter(senders.values())) < horizon:
            senders.popitem(last=False)
        if len(senders) > cfg.max_subjects:
            del self.templates[key]
            self.popular[key] = ts + cfg.horizon_seconds
            if len(self.popular) > cfg.max_templates:  # bounded too: the oldest mark goes
                del self.popular[next(iter(self.popular))]
            return False
        return len(senders) >= cfg.min_subjects
