"""Process-level tuning shared by the worker, replay and benchmarks."""

from __future__ import annotations

import gc
import socket

__all__ = ["free_port", "tune_gc"]

#: Young-generation threshold. The default (700) runs the cyclic collector every few events of ours;
#: state is packed bytes without reference cycles, so collecting rarely is safe. Measured ~11% faster.
_GEN0_THRESHOLD = 100_000


def tune_gc() -> None:
    """Freeze start-up objects out of the collector's sight and make young collections rare."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GEN0_THRESHOLD, 50, 100)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for brokers and servers we start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
