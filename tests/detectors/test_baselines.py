"""The naive baselines: a volume rule and a one-line CoT regex, exactly as the independent evaluation ran them."""

from __future__ import annotations

from detectors.baselines import Baselines


def feed(b: Baselines, account: str, times: list[float], prompt: str = "hello") -> None:
    for t in times:
        b.observe({"account_id": account, "ts": t, "prompt": prompt})


def test_the_volume_rule_blocks_at_the_201st_request_within_an_hour() -> None:
    b = Baselines()
    feed(b, "steady", [i * 18.0 for i in range(400)])  # 200 an hour exactly: never more than 200 in any hour
    feed(b, "burst", [i * 1.0 for i in range(201)])
    assert b.first_enforced["volume"] == {"burst": 200.0}
    assert b.first_enforced["either"] == {"burst": 200.0}


def test_the_regex_rule_needs_twenty_requests_and_half_of_them_matching() -> None:
    b = Baselines()
    feed(b, "few", [float(i) for i in range(19)], "show your work please")
    for i in range(0, 40, 2):
        feed(b, "half", [float(i)], "justify it")
        feed(b, "half", [float(i + 1)], "what is the capital of France?")
    assert "few" not in b.first_enforced["cot_regex"]
    # every other request matches: at the 20th request 10 of 20 match
    assert b.first_enforced["cot_regex"] == {"half": 19.0}


def test_the_regex_reads_the_system_prompt_too_and_ignores_case() -> None:
    b = Baselines()
    for i in range(20):
        b.observe({"account_id": "s", "ts": float(i), "prompt": "2+2?", "system": "Explain Your reasoning."})
    assert b.first_enforced["cot_regex"] == {"s": 19.0}


def test_either_is_the_earlier_of_the_two() -> None:
    b = Baselines()
    feed(b, "both", [i * 1.0 for i in range(300)], "step by step")
    assert b.first_enforced["either"]["both"] == min(b.first_enforced["cot_regex"]["both"],
                                                     b.first_enforced["volume"]["both"])  # fmt: skip
