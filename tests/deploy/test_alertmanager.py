"""Alertmanager routing, checked and tested with the real amtool."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO
from tests.promtool import tool

CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("amtool"), *args], capture_output=True, text=True)


def test_config_passes_amtool_check_config() -> None:
    done = amtool("check-config", str(CONFIG))
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=DistillguardBlockStorm", "severity=critical"], "distillguard-pager"),
        (["alertname=DistillguardWorkerDown", "severity=critical"], "distillguard-pager"),
        (["alertname=DistillguardGatewayRejectingSignatures", "severity=critical"], "distillguard-pager"),
        (["alertname=DistillguardDecisionSurge", "severity=warning"], "distillguard-trust-and-safety"),
        (["alertname=DistillguardDLQRate", "severity=warning"], "distillguard-trust-and-safety"),
        (["alertname=DistillguardModelStale", "severity=warning"], "distillguard-oncall-chat"),
        (["alertname=SomethingElse", "severity=critical"], "distillguard-tickets"),
    ],
)
def test_alerts_route_to_the_right_receiver(labels: list[str], receiver: str) -> None:
    done = amtool("config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}", *labels)
    assert done.returncode == 0, done.stdout + done.stderr
