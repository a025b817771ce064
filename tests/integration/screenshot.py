"""Regenerate the triage page's screenshots in docs/img (the demo's largest campaign, its incident page):

    python -m tests.integration.screenshot        # or: make screenshots

The page is served from the demo scenario's alerts replayed in process (no broker), opened in Debian's
headless Chromium as the analyst "oncall" signed in by the proxy header.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import cast

from aiohttp import web

from stream.incidents import group
from stream.triage import Triage
from stream.triage_web import triage_app
from tests.conftest import REPO, free_port
from tests.demo_triage import DemoTriage
from tests.integration.browser import Browser

OUT = REPO / "docs" / "img"


async def capture(out: Path = OUT) -> list[Path]:
    demo = DemoTriage()
    incident = max((i for i in group(demo.records) if i.kind == "cluster"), key=lambda i: len(i.members))
    runner = web.AppRunner(triage_app(cast(Triage, demo)))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    out.mkdir(parents=True, exist_ok=True)
    shots = {"triage-incidents.png": "/", "triage-incident.png": f"/incidents/{incident.incident_id}"}
    try:
        with tempfile.TemporaryDirectory() as profile:
            async with Browser(Path(profile)) as browser:
                await browser.sign_in("X-Forwarded-User", "oncall")
                await browser.send("Emulation.setDeviceMetricsOverride", width=1100, height=900,
                                   deviceScaleFactor=1, mobile=False)  # fmt: skip
                for name, path in shots.items():
                    await browser.goto(f"http://127.0.0.1:{port}{path}")
                    await browser.wait_for("document.querySelector('h1') !== null")
                    await browser.screenshot(out / name)
    finally:
        await runner.cleanup()
    return [out / name for name in shots]


def main() -> int:
    for path in asyncio.run(capture()):
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
