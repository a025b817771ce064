"""Worker settings: one dataclass, filled from CLI flags with environment-variable defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["DEV_SECRET", "WorkerSettings", "bootstrap_servers"]

#: The development signing secret: a worker or gateway refuses to start with it unless told ``--dev``
#: (anyone who reads this file could otherwise forge or lift throttle records).
DEV_SECRET = "dev-secret-change-me"


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker connects and runs. ``DISTILLGUARD_*`` environment variables give the defaults."""

    broker: str = os.environ.get("DISTILLGUARD_BROKER", "kafka://127.0.0.1:9092")
    app_id: str = os.environ.get("DISTILLGUARD_APP_ID", "distillguard")
    partitions: int = int(os.environ.get("DISTILLGUARD_PARTITIONS", "8"))
    replication: int = int(os.environ.get("DISTILLGUARD_REPLICATION", "1"))
    data_dir: str = os.environ.get("DISTILLGUARD_DATA_DIR", ".run/worker")
    metrics_port: int = int(os.environ.get("DISTILLGUARD_METRICS_PORT", "9310"))
    # /metrics and /healthz listen here: loopback by default, 0.0.0.0 in a pod for probes and scrapes.
    metrics_host: str = os.environ.get("DISTILLGUARD_METRICS_HOST", "127.0.0.1")
    # The triage page is off unless given a port; it then trusts the analyst's identity only from this
    # header, which the authenticating proxy in front of it must set (and strip from clients' requests).
    triage_port: int = int(os.environ.get("DISTILLGUARD_TRIAGE_PORT", "0"))  # 0: no triage page
    triage_identity_header: str = os.environ.get("DISTILLGUARD_TRIAGE_IDENTITY_HEADER", "X-Forwarded-User")
    mode: str = os.environ.get("DISTILLGUARD_MODE", "enforce")
    # Static group membership (KIP-345): a stable id per process (the pod name in a StatefulSet) lets a
    # restarted worker take its partitions back without a rebalance. Empty: dynamic membership.
    instance_id: str = os.environ.get("DISTILLGUARD_INSTANCE_ID", "")
    rules: str | None = os.environ.get("DISTILLGUARD_RULES")
    # A batch ends at batch_size events or batch_seconds; each touched account's state is flushed and
    # the cluster partials are sent once per batch, so at most once per batch_seconds below batch_size
    # events/s per worker. Shorter batches lower decision latency and raise changelog writes.
    batch_size: int = 10_000
    batch_seconds: float = float(os.environ.get("DISTILLGUARD_BATCH_SECONDS", "1.0"))
    # Bytes one fetch may return per partition. Faust's 1 MiB default is ~550 of these ~1.9 KB events
    # per partition per fetch, which capped a worker that only decodes at 3.3k events/s; 8 MiB: 11.5k.
    # (The restart "stall" once blamed on 8 MiB was Faust's duplicate-ack commit bug: faust_patches.py.)
    fetch_bytes_per_partition: int = int(os.environ.get("DISTILLGUARD_FETCH_BYTES", str(8 << 20)))
    # idle-account eviction and model checkpoints (to the checkpoint topic)
    housekeeping_seconds: float = float(os.environ.get("DISTILLGUARD_HOUSEKEEPING_SECONDS", "60"))
    lift_seconds: float = 5.0  # how often expired decisions are lifted with a tombstone
    cluster_idle_tick_seconds: float = 5.0  # score clusters when partials paused this long (wall clock)
    # Link shards of the cluster stage (partitions of <app>-cluster-partials when the app creates it; an
    # existing topic's count wins): linking, the per-event part of the stage, spreads over this many workers.
    stage_shards: int = int(os.environ.get("DISTILLGUARD_STAGE_SHARDS", "2"))
    # Throttle records are HMAC-signed; gateways trust DISTILLGUARD_VERIFY_KEYS="id:secret,...".
    signing_key_id: str = os.environ.get("DISTILLGUARD_SIGNING_KEY_ID", "dev")
    signing_secret: str = os.environ.get("DISTILLGUARD_SIGNING_SECRET", DEV_SECRET)
    # Dead letters carry a redacted, bounded copy of the event (no prompt text); an operator who must see
    # the original bytes opts in here (DISTILLGUARD_DLQ_KEEP_TEXT=1), knowing the DLQ then holds prompts.
    dlq_keep_text: bool = os.environ.get("DISTILLGUARD_DLQ_KEEP_TEXT", "") == "1"
    # Fault injection for the crash tests only: "kill-after-state:N" SIGKILLs the worker once the N-th
    # batch's state has reached the changelog, before its offsets are committed.
    failpoint: str = os.environ.get("DISTILLGUARD_FAILPOINT", "")
    # An event stamped further than this ahead of the worker's wall clock is scored at that limit (and
    # counted): one far-future ts would otherwise move every event-time clock (idle eviction, windows,
    # cluster ticks). Backfills of synthetic future timelines (the tests' T0) raise it.
    max_future_seconds: float = float(os.environ.get("DISTILLGUARD_MAX_FUTURE_SECONDS", "300"))

    def trusted_keys(self) -> dict[str, bytes]:
        """Keys a control record (allowlist, feedback, cluster partials and verdicts) must be signed with:
        ``DISTILLGUARD_VERIFY_KEYS`` ("id:secret,..."), else this worker's own signing key."""
        from stream.signing import parse_keys

        spec = os.environ.get("DISTILLGUARD_VERIFY_KEYS")
        return parse_keys(spec) if spec else {self.signing_key_id: self.signing_secret.encode()}

    def control_headers(self, key: bytes, value: bytes | None) -> list[tuple[str, bytes]]:
        """Signature headers for a control record this process writes (signed now)."""
        import time

        from stream.signing import signature_headers

        return signature_headers(key, value, self.signing_key_id, self.signing_secret.encode(), time.time())

    def __post_init__(self) -> None:
        if self.mode not in ("enforce", "shadow"):
            raise ValueError(f"mode must be 'enforce' or 'shadow', got {self.mode!r}")
        if self.partitions < 1 or self.replication < 1 or self.stage_shards < 1:
            raise ValueError(f"partitions, replication and stage_shards must be >= 1, got {self.partitions}, "
                             f"{self.replication}, {self.stage_shards}")  # fmt: skip
        if not self.broker.startswith("kafka://"):
            raise ValueError(f"broker must look like kafka://host:port, got {self.broker!r}")


def bootstrap_servers(broker: str) -> str:
    """Kafka clients' ``host:port,...`` from a Faust broker URL list (``;`` or ``,`` between brokers).

    >>> bootstrap_servers("kafka://10.0.0.1:9092;kafka://10.0.0.2:9092"), bootstrap_servers("kafka://k:9092")
    ('10.0.0.1:9092,10.0.0.2:9092', 'k:9092')
    """
    return ",".join(url.strip().removeprefix("kafka://") for url in broker.replace(";", ",").split(","))
