"""The worker's own health check: ``GET /healthz`` next to ``/metrics``, for Kubernetes probes and people.

A worker is *stalled* when records wait on its assigned ``llm.requests`` partitions and it has processed
nothing for ``stall_seconds`` (Faust's "has not started processing" case: a stuck rebalance, a hung
agent, an await that never returns). A stalled worker answers 503 so that its pod is restarted, and the worker sets
``distillguard_worker_stalled`` from the same check so that the ``DistillguardWorkerStalled`` alert fires.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import make_server

import orjson
from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

__all__ = ["Health", "serve"]


class Health:
    """Progress bookkeeping; the agent calls :meth:`progressed`, a timer sets :attr:`waiting`.

    >>> now = [0.0]
    >>> h = Health(stall_seconds=60, clock=lambda: now[0])
    >>> h.waiting = 500; now[0] = 30.0; h.check()
    (True, 'ok')
    >>> now[0] = 90.0; h.check()
    (False, 'stalled: 500 records waiting, nothing processed for 90 s')
    >>> h.progressed(); h.check()
    (True, 'ok')
    >>> h.waiting = 0; now[0] = 1000.0; h.check()  # idle with nothing to do is healthy
    (True, 'ok')
    """

    def __init__(self, stall_seconds: float = 120.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self.clock = clock
        self.last_progress = clock()
        self.waiting = 0  # records not yet processed on the assigned partitions (consumer lag)

    def progressed(self) -> None:
        self.last_progress = self.clock()

    def check(self) -> tuple[bool, str]:
        idle = self.clock() - self.last_progress
        if self.waiting > 0 and idle >= self.stall_seconds:
            return False, f"stalled: {self.waiting} records waiting, nothing processed for {idle:.0f} s"
        return True, "ok"


def serve(port: int, health: Health, registry: CollectorRegistry = REGISTRY, host: str = "127.0.0.1") -> Any:
    """``/metrics`` and ``/healthz`` on ``host``:``port`` from a daemon thread; returns the server."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            ok, reason = health.check()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [orjson.dumps({"ok": ok, "reason": reason})]
        return metrics_app(environ, start_response)  # type: ignore[no-any-return]

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="metrics+healthz", daemon=True).start()
    return server
