"""The worker's own health check: ``GET /healthz`` next to ``/metrics``, for Kubernetes probes and people.

A worker is *stalled* when records wait on its assigned ``llm.requests`` partitions and it has processed
nothing for ``stall_seconds`` (Faust's "has not started processing" case: a stuck rebalance, a hung
agent, an await that never returns). A stalled worker answers 503 so that its pod is restarted, and the worker sets
``distillguard_worker_stalled`` from the same check so that the ``DistillguardWorkerStalled`` alert fires.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import make_server

import orjson
from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

__all__ = ["Health", "serve", "watch_broker"]


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
        self.broker_error: str | None = None  # set while no bootstrap server accepts a connection

    def progressed(self) -> None:
        self.last_progress = self.clock()

    def check(self) -> tuple[bool, str]:
        if self.broker_error is not None:
            return False, self.broker_error
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


def broker_reachable(bootstrap: str, timeout: float = 3.0) -> str | None:
    """None when some ``host:port`` of ``bootstrap`` (comma-separated) accepts a TCP connection, else why not.

    >>> broker_reachable("127.0.0.1:1", timeout=0.5) is not None
    True
    """
    errors = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "localhost", int(port)), timeout=timeout):
                return None
        except (OSError, ValueError) as exc:
            errors.append(f"{server.strip()}: {exc.__class__.__name__}: {exc}")
    return "; ".join(errors) or "no bootstrap server given"


def watch_broker(
    health: Health, bootstrap: str, say: Callable[[str], object], every: float = 5.0, repeat: float = 30.0
) -> threading.Thread:
    """A daemon thread that checks the brokers every ``every`` s: while none answers, /healthz says which
    address and why, and ``say`` tells the operator (at once, then every ``repeat`` s); once it answers, once."""

    def run() -> None:
        last_said = -math.inf
        while True:
            error = broker_reachable(bootstrap)
            if error is None:
                if health.broker_error is not None:
                    say(f"distillguard worker: broker {bootstrap} answers")
                health.broker_error = None
            else:
                health.broker_error = f"broker {bootstrap} unreachable ({error}); retrying every {every:.0f} s"
                if time.monotonic() - last_said >= repeat:
                    say(f"distillguard worker: cannot reach {bootstrap} ({error}); retrying every {every:.0f} s")
                    last_said = time.monotonic()
            time.sleep(every)

    thread = threading.Thread(target=run, name="broker-watch", daemon=True)
    thread.start()
    return thread
