"""Specification of ``distillguard replay``: a backtest over a file, no broker."""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
from pathlib import Path

import orjson

from detectors.types import ACTIONS
from sim import personas as P
from tests.conftest import REPO, make_event

T0 = 1_800_000_000.0
SECRET = "my secret prompt text"


def write_events(path: Path) -> None:
    harvest = P.cot_harvester("hot", random.Random(3), T0, hours=1)[:200]
    for e in harvest:
        e["prompt"] += " " + SECRET
    lines = [orjson.dumps(e) for e in harvest]
    lines += [orjson.dumps(make_event(i, account="calm", ts=T0 + i * 30.0, prompt=SECRET)) for i in range(20)]
    lines.sort(key=lambda raw: orjson.loads(raw)["ts"])
    lines.insert(5, b"{broken " + SECRET.encode())
    lines.insert(9, orjson.dumps({"event_id": "x", "prompt": SECRET}))
    with gzip.open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n\n")


def run_replay(tmp_path: Path) -> tuple[list[dict[str, object]], subprocess.CompletedProcess[str]]:
    events = tmp_path / "events.jsonl.gz"
    write_events(events)
    out, rejects, alerts = tmp_path / "decisions.jsonl", tmp_path / "rejects.jsonl", tmp_path / "alerts.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "replay",
            str(events),
            "--out",
            str(out),
            "--rejects",
            str(rejects),
            "--alerts",
            str(alerts),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return [orjson.loads(line) for line in out.read_bytes().splitlines()], proc


def test_replay_writes_the_decisions_the_worker_would_publish(tmp_path: Path) -> None:
    decisions, proc = run_replay(tmp_path)
    assert {d["subject"]["id"] for d in decisions} == {"hot"}  # type: ignore[index]
    actions = [d["action"] for d in decisions]
    assert actions[-1] in ("limit", "block") and actions == sorted(actions, key=ACTIONS.index)  # escalates
    for d in decisions:
        assert T0 <= d["issued_at"] < d["expires_at"]  # type: ignore[operator]
        assert d["reason"] and 0 < d["score"] <= 1  # type: ignore[operator]
    assert "replayed 222 events" in proc.stderr and "not_json=1" in proc.stderr and "missing_field=1" in proc.stderr
    alerts = (tmp_path / "alerts.jsonl").read_bytes().splitlines()
    assert [orjson.loads(a)["decision"]["action"] for a in alerts] == [a for a in actions if a in ("limit", "block")]


def test_replay_is_repeatable(tmp_path: Path) -> None:
    runs = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        runs.append(run_replay(tmp_path / name)[0])
    assert runs[0] == runs[1]


def test_replay_never_copies_prompt_text(tmp_path: Path) -> None:
    run_replay(tmp_path)
    rejects = (tmp_path / "rejects.jsonl").read_bytes()
    assert [orjson.loads(r)["line"] for r in rejects.splitlines()] == [6, 10]
    for name in ("decisions.jsonl", "rejects.jsonl", "alerts.jsonl"):
        assert SECRET.encode() not in (tmp_path / name).read_bytes(), name


def test_replay_scores_events_with_bad_optional_fields_as_the_worker_does(tmp_path: Path) -> None:
    from io import BytesIO

    from stream.replay import replay

    harvest = P.cot_harvester("sly", random.Random(4), T0, hours=1)[:300]
    for i, e in enumerate(harvest):
        e.update([{"n_tools": -1}, {"account_type": "vip"}, {"temperature": "hot"}][i % 3])
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in harvest))
    out = BytesIO()
    summary = replay(path, out)
    assert summary.invalid == {} and summary.repaired == {"n_tools": 100, "account_type": 100, "temperature": 100}
    assert any(orjson.loads(line)["action"] in ("limit", "block") for line in out.getvalue().splitlines())
