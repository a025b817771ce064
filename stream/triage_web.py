"""A small triage page, served by the worker (``--triage-port``, off by default): alerts, their evidence,
and buttons to confirm, dismiss or allowlist. Plain HTML forms, no JavaScript; every action goes through
:class:`stream.triage.Triage`, so it is recorded on ``distillguard.feedback`` like the CLI's.

The page trusts one thing only: the analyst's identity in a header set by the authenticating proxy in
front of it (``X-Forwarded-User`` by default); a request without it gets 401. Every form carries a token
bound to that identity and every action checks it and the ``Origin`` (no cross-site request can act), the
verdict is recorded under the proxy's identity (never a form field), and everything shown is escaped."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from stream.triage import VERDICTS, Triage

__all__ = ["triage_app"]

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .35rem .5rem; }
tr + tr { border-top: 1px solid #ddd; } .critical { color: #b00020; font-weight: 600; } .high { color: #b35c00; }
.status-open { font-weight: 600; } form { display: inline; } code { background: #f4f4f4; padding: 0 .2rem; }
td:last-child { white-space: nowrap; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str) -> web.Response:
    doc = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
           f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>{body}</body></html>")  # fmt: skip
    return web.Response(text=doc, content_type="text/html")


def _actions(alert_id: str, token: str) -> str:
    buttons = []
    for action in VERDICTS:
        buttons.append(
            f"<form method='post' action='/alerts/{_e(alert_id)}/{action}'>"
            f"<input type='hidden' name='csrf' value='{_e(token)}'>"
            f"<button type='submit' class='{action}' name='action' value='{action}'>{action}</button></form>"
        )
    return " ".join(buttons)


def _score(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else str(value)


def triage_app(
    triage: Triage, identity_header: str = "X-Forwarded-User", secret: bytes | None = None
) -> web.Application:
    """The page's aiohttp application; Kafka calls run in a thread (kafka-python is blocking)."""
    secret = secret or os.urandom(32)

    def token(analyst: str) -> str:
        return hmac.new(secret, analyst.encode(), hashlib.sha256).hexdigest()

    @web.middleware
    async def authenticated(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        analyst = request.headers.get(identity_header, "")
        if not 0 < len(analyst) <= 128 or not analyst.isprintable():
            raise web.HTTPUnauthorized(text=f"sign in through the authenticating proxy (it sets {identity_header})")
        request["analyst"] = analyst
        return await handler(request)

    async def index(request: web.Request) -> web.Response:
        analyst = request["analyst"]
        alerts = await asyncio.to_thread(triage.alerts)
        rows = []
        for a in alerts:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(a.get("raised_at", 0)))
            status = a["status"] + (f" by {a['verdict_by']}" if a.get("verdict_by") else "")
            rows.append(
                f"<tr data-alert='{_e(a['alert_id'])}'><td class='{_e(a['severity'])}'>{_e(a['severity'])}</td>"
                f"<td><a href='/alerts/{_e(a['alert_id'])}'>{_e(a['subject']['id'])}</a></td>"
                f"<td>{_e(a['decision']['action'])}</td><td>{_e(_score(a.get('risk_score')))}</td>"
                f"<td>{_e(', '.join(a['reasons']))}</td><td>{when}</td>"
                f"<td class='status-{_e(a['status'])}'>{_e(status)}</td>"
                f"<td>{_actions(a['alert_id'], token(analyst)) if a['status'] == 'open' else ''}</td></tr>"
            )
        table = ("<table><tr><th>severity</th><th>subject</th><th>action</th><th>risk</th><th>reasons</th>"
                 "<th>raised (UTC)</th><th>status</th><th></th></tr>" + "".join(rows) + "</table>")  # fmt: skip
        intro = f"<p>{len(alerts)} alerts. Acting as <code id='analyst'>{_e(analyst)}</code>.</p>"
        return _page("distillguard triage", intro + table)

    async def detail(request: web.Request) -> web.Response:
        try:
            alert = await asyncio.to_thread(triage.alert, request.match_info["alert_id"])
        except KeyError:
            raise web.HTTPNotFound(text="no such alert") from None
        features = "".join(  # cluster explanations have no cohort value: a dash, not a 500
            f"<tr><td>{_e(f.get('feature', ''))}</td><td>{_e(f.get('value', '–'))}</td>"
            f"<td>{_e(f.get('typical', '–'))}</td><td>{_e(f.get('contribution', '–'))}</td></tr>"
            for f in alert["top_features"]
        )
        window = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in alert["evidence_window"].items())
        samples = "".join(f"<li><code>{_e(s)}</code></li>" for s in alert["template_samples"])
        body = (
            f"<p>{_e(alert['severity'])} · {_e(alert['decision']['action'])} · "
            f"risk {_e(_score(alert.get('risk_score')))} · "
            f"status {_e(alert['status'])}</p><h2>Top features against the cohort</h2>"
            f"<table><tr><th>feature</th><th>value</th><th>typical</th><th>contribution</th></tr>{features}</table>"
            f"<h2>Evidence window</h2><table>{window}</table>"
            f"<h2>Template frames (content masked)</h2><ul>{samples}</ul>"
            f"<p>{_actions(alert['alert_id'], token(request['analyst']))}</p>"
        )
        return _page(f"alert for {alert['subject']['id']}", body)

    async def act(request: web.Request) -> web.Response:
        form = await request.post()
        by = request["analyst"]  # who acts is who the proxy signed in, never a form field
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            raise web.HTTPForbidden(text="cross-origin action refused")
        if not hmac.compare_digest(str(form.get("csrf") or ""), token(by)):
            raise web.HTTPForbidden(text="missing or stale form token: reload the page")
        try:
            await asyncio.to_thread(
                triage.act, request.match_info["alert_id"], request.match_info["action"], by=by,
                note=str(form.get("note") or ""),
            )  # fmt: skip
        except KeyError:
            raise web.HTTPNotFound(text="no such alert") from None
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        raise web.HTTPSeeOther(location="/")

    app = web.Application(middlewares=[authenticated])
    app.router.add_get("/", index)
    app.router.add_get("/alerts/{alert_id}", detail)
    app.router.add_post("/alerts/{alert_id}/{action}", act)
    return app
