"""Fetch the Compose specification's JSON schema (for tests/deploy/test_compose.py) into the cache.

    python deploy/compose/fetch_schema.py      # make setup runs it; a no-op once cached

The schema ships in the docker-compose 1.29.2 wheel on PyPI (compose/config/compose_spec.json);
only that file is kept, under ~/.cache/distillguard (DISTILLGUARD_CACHE), beside Kafka's jars.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

CACHE = Path(os.environ.get("DISTILLGUARD_CACHE", Path.home() / ".cache" / "distillguard"))
SCHEMA = CACHE / "compose_spec.json"


def main() -> int:
    if SCHEMA.exists():
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp,
                        "docker-compose==1.29.2"], check=True)  # fmt: skip
        (wheel,) = Path(tmp).glob("docker_compose-*.whl")
        with zipfile.ZipFile(wheel) as z:
            data = z.read("compose/config/compose_spec.json")
    CACHE.mkdir(parents=True, exist_ok=True)
    SCHEMA.write_bytes(data)
    print(f"fetch_schema: {SCHEMA}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
