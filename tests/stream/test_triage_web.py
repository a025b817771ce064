"""The triage page's trust boundary (issue 22, item 6): identity only from the authenticating proxy, no
cross-site action, nothing a client wrote rendered as markup."""

from __future__ import annotations

import asyncio
import re
from typing import Any, cast

from aiohttp.test_utils import TestClient, TestServer

from stream.incidents import group
from stream.triage import Triage
from stream.triage_web import triage_app
from tests.demo_triage import DemoTriage

HOSTILE = "<script>alert(1)</script>"


class Alerts:
    """Stands in for Triage (its Kafka reads and writes are tested on the real broker)."""

    def __init__(self) -> None:
        self.acts: list[tuple[str, str, str]] = []

    def alerts(self, limit: int = 200) -> list[dict[str, Any]]:
        return [self.alert("a1")]

    def alert(self, alert_id: str) -> dict[str, Any]:
        return {"alert_id": alert_id, "subject": {"type": "account", "id": HOSTILE}, "severity": "high",
                "risk_score": HOSTILE, "status": "open", "decision": {"action": "block"}, "reasons": [HOSTILE],
                "top_features": [{"feature": HOSTILE, "value": HOSTILE, "typical": 0.1, "contribution": 1.0}],
                "evidence_window": {HOSTILE: HOSTILE}, "template_samples": [HOSTILE]}  # fmt: skip

    def act(self, alert_id: str, action: str, *, by: str, note: str = "") -> None:
        self.acts.append((alert_id, action, by))


async def session(calls: list[tuple[str, str, dict[str, str], dict[str, str]]]) -> tuple[list[tuple[int, str]], Alerts]:
    triage = Alerts()
    out = []
    async with TestClient(TestServer(triage_app(cast(Triage, triage)))) as client:
        for method, path, headers, data in calls:
            response = await client.request(method, path, headers=headers, data=data, allow_redirects=False)
            out.append((response.status, await response.text()))
    return out, triage


ALICE = {"X-Forwarded-User": "alice"}


def test_without_the_proxys_identity_header_nothing_is_shown_or_done() -> None:
    (index, detail, act), triage = asyncio.run(session([
        ("GET", "/", {}, {}), ("GET", "/alerts/a1", {}, {}), ("POST", "/alerts/a1/dismiss", {}, {"by": "alice"}),
    ]))  # fmt: skip
    assert [s for s, _ in (index, detail, act)] == [401, 401, 401] and triage.acts == []


def test_an_action_without_this_analysts_token_or_from_another_origin_is_refused() -> None:
    async def flow() -> tuple[list[int], Alerts]:
        triage = Alerts()
        async with TestClient(TestServer(triage_app(cast(Triage, triage)))) as client:
            page = await (await client.get("/", headers=ALICE)).text()
            token = re.search(r"name='csrf' value='([0-9a-f]+)'", page)
            assert token is not None
            attempts = [
                (ALICE, {"by": "mallory"}),  # a cross-site form: no token
                ({**ALICE, "Origin": "http://evil.example"}, {"csrf": token[1]}),  # the right token, wrong origin
                ({"X-Forwarded-User": "bob"}, {"csrf": token[1]}),  # alice's token under bob's identity
            ]
            statuses = []
            for headers, data in attempts:
                response = await client.post("/alerts/a1/dismiss", headers=headers, data=data, allow_redirects=False)
                statuses.append(response.status)
            return statuses, triage

    statuses, triage = asyncio.run(flow())
    assert statuses == [403, 403, 403] and triage.acts == []


def test_an_action_with_the_token_of_the_same_page_goes_through_as_the_signed_in_analyst() -> None:
    async def flow() -> tuple[int, Alerts]:
        triage = Alerts()
        async with TestClient(TestServer(triage_app(cast(Triage, triage)))) as client:
            page = await (await client.get("/", headers=ALICE)).text()
            token = re.search(r"name='csrf' value='([0-9a-f]+)'", page)
            assert token is not None
            response = await client.post("/alerts/a1/dismiss", headers={**ALICE, "Origin": f"http://{client.host}:{client.port}"},
                                         data={"csrf": token[1], "by": "mallory"}, allow_redirects=False)  # fmt: skip
            return response.status, triage

    status, triage = asyncio.run(flow())
    assert status == 303 and triage.acts == [("a1", "dismiss", "alice")]  # never the form's "by"


def test_nothing_an_alert_carries_is_rendered_as_markup() -> None:
    (index, detail), _ = asyncio.run(session([("GET", "/?by=" + HOSTILE, ALICE, {}), ("GET", "/alerts/a1", ALICE, {})]))
    for status, page in (index, detail):
        assert status == 200 and "<script>" not in page and "&lt;script&gt;" in page


DEMO = DemoTriage()


def test_every_alert_and_incident_page_of_the_demo_opens_without_an_error() -> None:
    """Issue 24: most of the demo's alerts (cluster members) used to answer 500."""
    incidents = group(DEMO.records)
    assert any(i.kind == "cluster" and len(i.members) > 5 for i in incidents)  # campaigns, not rows of members
    assert len(incidents) < len({a["subject"]["id"] for a in DEMO.records})

    async def flow() -> list[tuple[str, int, str]]:
        out = []
        async with TestClient(TestServer(triage_app(cast(Triage, DEMO)))) as client:
            paths = ["/"] + [f"/alerts/{a['alert_id']}" for a in DEMO.records]
            paths += [f"/incidents/{i.incident_id}" for i in incidents]
            for path in paths:
                response = await client.get(path, headers=ALICE)
                out.append((path, response.status, await response.text()))
        return out

    pages = asyncio.run(flow())
    assert [(p, s) for p, s, _ in pages if s != 200] == []
    assert all("<svg" in text for p, _, text in pages if p.startswith("/incidents/"))


def test_a_verdict_on_an_incident_goes_to_the_chosen_members_as_the_signed_in_analyst() -> None:
    incident = next(i for i in group(DEMO.records) if i.kind == "cluster")
    chosen = incident.members[:2]

    async def flow() -> int:
        async with TestClient(TestServer(triage_app(cast(Triage, DEMO)))) as client:
            page = await (await client.get(f"/incidents/{incident.incident_id}", headers=ALICE)).text()
            token = re.search(r"name='csrf' value='([0-9a-f]+)'", page)
            assert token is not None and all(f"value='{m}'" in page for m in chosen)
            form = [("csrf", token[1]), *(("member", m) for m in chosen)]
            response = await client.post(f"/incidents/{incident.incident_id}/confirm", headers=ALICE, data=form,
                                         allow_redirects=False)  # fmt: skip
            return response.status

    assert asyncio.run(flow()) == 303
    assert DEMO.incident_acts[-1] == (incident.incident_id, "confirm", "alice", chosen)
