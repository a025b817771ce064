"""Drive Debian's headless Chromium over the DevTools protocol (no Playwright download needed)."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import free_port

_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync")  # fmt: skip


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium not found: install Debian's chromium package (see .ci/run)"
    return path


class Browser:
    """One headless Chromium with one page; ``evaluate`` runs JavaScript in it and returns the value."""

    def __init__(self, profile: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [chromium(), *_FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={self.port}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> Browser:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list") as r:
                    pages = [t for t in json.load(r) if t["type"] == "page"]
                if pages:
                    break
            except OSError:
                pass
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("chromium did not open its DevTools port")
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        await self.send("Page.enable")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        assert self._ws is not None
        message_id = next(self._ids)
        await self._ws.send_json({"id": message_id, "method": method, "params": params})
        while True:
            reply = await self._ws.receive_json(timeout=30)
            if reply.get("id") == message_id:
                assert "error" not in reply, reply
                return dict(reply.get("result", {}))

    async def sign_in(self, header: str, analyst: str) -> None:
        """Send ``header: analyst`` with every request, as the authenticating proxy in front of a page would."""
        await self.send("Network.enable")
        await self.send("Network.setExtraHTTPHeaders", headers={header: analyst})

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete' && location.href.startsWith('http')")

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 20.0) -> None:
        for _ in range(int(timeout * 10)):
            if await self.evaluate(expression):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")

    async def screenshot(self, path: Path) -> None:
        import base64

        data = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(data["data"]))
