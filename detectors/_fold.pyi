from typing import Any

"""Types of the C module built from ``_fold.c`` (see ``account_state.AccountState.add``)."""

LAYOUT: dict[str, int]
VECTOR_FEATURES: tuple[str, ...]

def fold(
    state: bytearray,
    ts: float,
    cot: float,
    ratio: float,
    flags: int,
    category: int,
    template0: int,
    template1: int,
    output_tokens: int,
    ip: str | None,
    user_agent: str | None,
    buckets: int,
    bucket_seconds: float,
    half_life_seconds: float,
    /,
) -> float: ...
def window(state: bytearray, now_index: int, buckets: int, /) -> tuple[int, int, int]: ...
def top_template(state: bytearray, /) -> tuple[int, float] | None: ...
def vector(
    state: bytearray,
    now: float,
    buckets: float,
    bucket_seconds: float,
    share_prior: float,
    requests_per_hour_cap: float,
    burst_per_minute_cap: float,
    output_tokens_per_hour_cap: float,
    ratio_cap: float,
    distinct_ips_cap: float,
    distinct_uas_cap: float,
    new_account_seconds: float,
    drift_memory_seconds: float,
    /,
) -> tuple[float, ...]: ...
def summary(state: bytearray, now: float, buckets: int, bucket_seconds: float, account_type: str, /) -> list[Any]: ...
def page_hinkley(
    state: bytearray, x: float, min_instances: float, delta: float, threshold: float, alpha: float, /
) -> bool: ...
