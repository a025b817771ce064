"""A small triage page, served by the worker (``--triage-port``, off by default): incidents (one per
campaign, :mod:`stream.incidents`) with a timeline and actions on all or chosen members, then alerts,
their evidence and timeline, and buttons to confirm, dismiss or allowlist. Plain HTML forms and SVG, no
JavaScript; every action goes through :class:`stream.triage.Triage`, so it is recorded on
``distillguard.feedback`` like the CLI's.

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

from stream.incidents import Incident, group
from stream.timeline import points_and_marks, svg
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


def _actions(alert_id: str, token: str, base: str = "/alerts") -> str:
    buttons = []
    for action in VERDICTS:
        buttons.append(
            f"<form method='post' action='{base}/{_e(alert_id)}/{action}'>"
            f"<input type='hidden' name='csrf' value='{_e(token)}'>"
            f"<button type='submit' class='{action}' name='action' value='{action}'>{action}</button></form>"
        )
    return " ".join(buttons)


def _when(at: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(at) if isinstance(at, int | float) else 0.0))


def _incident_rows(incidents: list[Incident], token: str) -> str:
    rows = []
    for i in incidents:
        counts = ", ".join(f"{n} {a}" for a, n in sorted(i.actions.items()))
        rows.append(
            f"<tr data-incident='{_e(i.incident_id)}'><td><a href='/incidents/{_e(i.incident_id)}'>"
            f"{_e(i.key)}</a></td><td>{len(i.members)}</td><td>{len(i.alerts)} ({_e(counts)})</td>"
            f"<td>{_e(i.highest)}</td><td>{_when(i.first_seen)}</td><td>{_when(i.last_seen)}</td>"
            f"<td class='status-{_e(i.status)}'>{_e(i.status)}</td>"
            f"<td>{_actions(i.incident_id, token, '/incidents') if i.status == 'open' else ''}</td></tr>"
        )
    return (
        "<table class='incidents'><tr><th>incident</th><th>members</th><th>alerts</th><th>highest rung</th>"
        "<th>first seen (UTC)</th><th>last seen</th><th>status</th><th>on every member</th></tr>"
        + "".join(rows) + "</table>"
    )  # fmt: skip


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
        incidents = group(alerts)
        rows = []
        for a in alerts:
            when = _when(a.get("raised_at", 0))
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
        intro = (f"<p>{len(incidents)} incidents, {len(alerts)} alerts. Acting as "
                 f"<code id='analyst'>{_e(analyst)}</code>.</p>")  # fmt: skip
        body = (intro + "<h2>Incidents (one per campaign)</h2>" + _incident_rows(incidents, token(analyst))
                + "<h2>Alerts</h2>" + table)  # fmt: skip
        return _page("distillguard triage", body)

    async def incident_page(request: web.Request) -> web.Response:
        try:
            incident = await asyncio.to_thread(triage.incident, request.match_info["incident_id"])
        except KeyError:
            raise web.HTTPNotFound(text="no such incident") from None
        tok = token(request["analyst"])
        joined = incident.joined()
        rows = "".join(
            f"<tr data-member='{_e(m)}'><td><input type='checkbox' name='member' value='{_e(m)}' form='chosen'></td>"
            f"<td><a href='/alerts/{_e(a['alert_id'])}'>{_e(m)}</a></td><td>{_e(a['decision']['action'])}</td>"
            f"<td>{_e(_score(a.get('risk_score')))}</td><td>{_when(joined[m])}</td>"
            f"<td class='status-{_e(a.get('status', 'open'))}'>{_e(a.get('status', 'open'))}</td></tr>"
            for m, a in incident.latest().items()
        )
        shared = (
            "".join(f"<li><code>{_e(x)}</code></li>" for x in incident.shared_infrastructure) or "<li>none named</li>"
        )
        points, marks = points_and_marks(incident.alerts, members=incident.kind == "cluster")
        chosen = "".join(
            f"<button type='submit' form='chosen' formaction='/incidents/{_e(incident.incident_id)}/{a}' "
            f"class='chosen-{a}'>{a} chosen</button> "
            for a in VERDICTS
        )
        body = (
            f"<p>{_e(incident.kind)} · {len(incident.members)} members · {len(incident.alerts)} alerts · highest "
            f"{_e(incident.highest)} · first seen {_when(incident.first_seen)} · last seen {_when(incident.last_seen)}"
            f" UTC · status {_e(incident.status)}</p>"
            f"<p>On every member: {_actions(incident.incident_id, tok, '/incidents')}</p>"
            f"<h2>Timeline</h2>{svg(points, marks, f'timeline of {incident.key}')}"
            f"<h2>Members</h2><form id='chosen' method='post'><input type='hidden' name='csrf' value='{_e(tok)}'>"
            f"<input type='text' name='note' placeholder='why'></form>"
            f"<table class='members'><tr><th></th><th>member</th><th>latest rung</th><th>risk</th>"
            f"<th>joined (UTC)</th><th>status</th></tr>{rows}</table><p>{chosen}</p>"
            f"<h2>Shared infrastructure (fingerprints masked)</h2><ul>{shared}</ul>"
        )
        return _page(f"incident {incident.key}", body)

    async def detail(request: web.Request) -> web.Response:
        everything = await asyncio.to_thread(triage.alerts, 100_000)  # one read of the topic: the alert, its history
        alert = next((a for a in everything if a["alert_id"] == request.match_info["alert_id"]), None)
        if alert is None:
            raise web.HTTPNotFound(text="no such alert")
        features = "".join(  # cluster explanations have no cohort value: a dash, not a 500
            f"<tr><td>{_e(f.get('feature', ''))}</td><td>{_e(f.get('value', '–'))}</td>"
            f"<td>{_e(f.get('typical', '–'))}</td><td>{_e(f.get('contribution', '–'))}</td></tr>"
            for f in alert["top_features"]
        )
        window = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in alert["evidence_window"].items())
        points, marks = points_and_marks([a for a in everything if a["subject"]["id"] == alert["subject"]["id"]])
        samples = "".join(f"<li><code>{_e(s)}</code></li>" for s in alert["template_samples"])
        body = (
            f"<p>{_e(alert['severity'])} · {_e(alert['decision']['action'])} · "
            f"risk {_e(_score(alert.get('risk_score')))} · "
            f"status {_e(alert['status'])}</p><h2>Top features against the cohort</h2>"
            f"<table><tr><th>feature</th><th>value</th><th>typical (cohort accounts under no decision)</th>"
            f"<th>contribution</th></tr>{features}</table>"
            f"<h2>Timeline</h2>{svg(points, marks, 'timeline of ' + str(alert['subject']['id']))}"
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
        note = str(form.get("note") or "")
        try:
            if "incident_id" in request.match_info:
                members = [str(m) for m in form.getall("member", [])]
                await asyncio.to_thread(
                    triage.act_incident, request.match_info["incident_id"], request.match_info["action"], by=by,
                    note=note, members=members or None,
                )  # fmt: skip
            else:
                await asyncio.to_thread(
                    triage.act, request.match_info["alert_id"], request.match_info["action"], by=by, note=note
                )
        except KeyError:
            raise web.HTTPNotFound(text="no such alert or incident") from None
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        raise web.HTTPSeeOther(location="/")

    app = web.Application(middlewares=[authenticated])
    app.router.add_get("/", index)
    app.router.add_get("/alerts/{alert_id}", detail)
    app.router.add_post("/alerts/{alert_id}/{action}", act)
    app.router.add_get("/incidents/{incident_id}", incident_page)
    app.router.add_post("/incidents/{incident_id}/{action}", act)
    return app
