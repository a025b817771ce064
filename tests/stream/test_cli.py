"""The operator's first minutes: what the commands refuse, and what they create for themselves."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

from aiohttp.test_utils import TestClient, TestServer

from stream.triage import Triage
from stream.triage_web import triage_app
from tests.conftest import REPO


def run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DISTILLGUARD_")}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env={**clean, "PYTHONPATH": str(REPO), **env},
                           capture_output=True, text=True, timeout=60)  # fmt: skip


def test_the_worker_refuses_the_development_signing_secret_without_dev(tmp_path: Path) -> None:
    done = run("stream.cli", "worker", "--broker", "kafka://127.0.0.1:1", cwd=tmp_path, env={})
    assert done.returncode == 2 and "DISTILLGUARD_SIGNING_SECRET" in done.stderr
    assert not (tmp_path / ".run").exists()  # refused before it touched anything


def test_the_gateway_refuses_the_development_verify_key_without_dev(tmp_path: Path) -> None:
    done = run("gateway.server", "--broker", "127.0.0.1:1", cwd=tmp_path, env={})
    assert done.returncode == 2 and "DISTILLGUARD_VERIFY_KEYS" in done.stderr
    mixed = run(
        "gateway.server", cwd=tmp_path, env={"DISTILLGUARD_VERIFY_KEYS": "prod:s3cret,dev:dev-secret-change-me"}
    )
    assert mixed.returncode == 2  # a development key among real ones is refused too


class OneAlert:
    """Stands in for Triage (whose Kafka reads are tested on the real broker): serves one cluster alert."""

    def alerts(self, limit: int = 200) -> list[dict[str, Any]]:
        return [self.alert("a1")]

    def alert(self, alert_id: str) -> dict[str, Any]:
        return {"alert_id": alert_id, "subject": {"type": "account", "id": "h-1"}, "severity": "high",
                "risk_score": 0.97, "status": "open", "decision": {"action": "block"},
                "top_features": [{"feature": "members", "value": 60, "contribution": 1.2}, {"feature": "<b>x</b>"}],
                "evidence_window": {"requests": 12}, "template_samples": ["you are · · ·"]}  # fmt: skip


def test_a_cluster_alert_page_opens_though_cluster_features_have_no_cohort_value() -> None:
    async def fetch() -> tuple[int, str]:
        async with TestClient(TestServer(triage_app(cast(Triage, OneAlert())))) as client:
            response = await client.get("/alerts/a1", headers={"X-Forwarded-User": "alice"})
            return response.status, await response.text()

    status, page = asyncio.run(fetch())
    assert status == 200 and "members" in page and "–" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page  # escaped
