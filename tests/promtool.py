"""Run the real promtool / amtool from Debian's prometheus packages (installed by .ci/run)."""

from __future__ import annotations

import shutil
import subprocess


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found: install Debian's prometheus and prometheus-alertmanager (see .ci/run)"
    return path


def check_metrics(exposition: bytes) -> str:
    """promtool check metrics on an exposition; returns its complaints ('' when clean)."""
    done = subprocess.run([tool("promtool"), "check", "metrics"], input=exposition, capture_output=True)
    complaints = (done.stdout + done.stderr).decode().strip()
    assert done.returncode == 0, complaints
    return complaints
