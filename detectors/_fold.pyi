"""Types of the C module built from ``_fold.c`` (see ``account_state.AccountState.add``)."""

LAYOUT: dict[str, int]

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
) -> None: ...
def window(state: bytearray, now_index: int, buckets: int, /) -> tuple[int, int, int]: ...
def top_template(state: bytearray, /) -> tuple[int, float] | None: ...
