"""The ``distillguard`` command: ``worker`` (Faust on Kafka) and ``replay`` (the same engine over a file)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from stream.settings import bootstrap_servers

__all__ = ["main"]


def _worker(args: argparse.Namespace) -> int:
    import faust

    from stream.app import create_app
    from stream.health import Health, serve, watch_broker
    from stream.settings import DEV_SECRET, WorkerSettings
    from stream.topics import CLUSTER_PARTIALS, REQUESTS

    if WorkerSettings().signing_secret == DEV_SECRET and not args.dev:
        print("distillguard worker: DISTILLGUARD_SIGNING_SECRET is the development secret, which anyone can read "
              "in the source; set a secret of your own, or pass --dev for a local trial", file=sys.stderr)  # fmt: skip
        return 2
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)  # a fresh clone or a container has no .run/ yet
    print(f"distillguard worker: connecting to {args.broker} (retrying until it answers)", file=sys.stderr)
    settings = WorkerSettings(
        broker=args.broker,
        app_id=args.app_id,
        partitions=args.partitions,
        replication=args.replication,
        data_dir=args.data_dir,
        metrics_port=args.metrics_port,
        triage_port=args.triage_port,
        mode=args.mode,
        rules=args.rules,
        lift_seconds=args.lift_seconds,
        batch_seconds=args.batch_seconds,
        max_future_seconds=args.max_future_seconds,
    )
    health = Health()
    if settings.metrics_port:
        serve(settings.metrics_port, health, host=settings.metrics_host)  # /metrics and /healthz
    # An operator's first mistake is a wrong broker address: say so on stderr and on /healthz while it lasts.
    bootstrap = bootstrap_servers(args.broker)
    watch_broker(health, bootstrap, lambda line: print(line, file=sys.stderr, flush=True))

    settings = dataclasses.replace(
        settings,
        partitions=_adopted(bootstrap, REQUESTS.name, args.partitions, "--partitions ",
                            "so state stays co-partitioned"),
        stage_shards=_adopted(bootstrap, f"{args.app_id}-{CLUSTER_PARTIALS.name}", settings.stage_shards,
                              "DISTILLGUARD_STAGE_SHARDS=", "one link shard per partition"),
    )  # fmt: skip
    app = create_app(settings, health=health)
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0


def _adopted(bootstrap: str, topic: str, wanted: int, setting: str, why: str) -> int:
    """The partition count to use for ``topic``: an existing topic's wins over the setting (said on
    stderr), since a topic keeps its count."""
    from stream.topics import existing_partitions

    found = existing_partitions(bootstrap, topic)
    if found is None or found == wanted:
        return wanted
    print(f"distillguard: {topic} exists with {found} partitions; using {found}, not {setting}{wanted}, {why}",
          file=sys.stderr)  # fmt: skip
    return found


def _replay(args: argparse.Namespace) -> int:
    from detectors.config import load_scoring
    from stream.replay import replay

    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(args.out, "wb"))
        alerts = stack.enter_context(open(args.alerts, "wb")) if args.alerts else None
        rejects = stack.enter_context(open(args.rejects, "wb")) if args.rejects else None
        summary = replay(
            Path(args.events),
            out,
            alerts=alerts,
            rejects=rejects,
            cfg=load_scoring(args.rules),
            mode=args.mode,
        )
    print(summary, file=sys.stderr)
    return 0


def _acls(args: argparse.Namespace) -> int:
    from stream.acls import ROLES, apply_acls, grants
    from stream.settings import bootstrap_servers

    principals = {role: getattr(args, role) or f"User:{role}" for role in ROLES}
    if args.action == "show":
        for g in grants(args.app_id):
            name = g.name + ("*" if g.prefixed else "")
            print(f"{principals[g.role]:<20} {g.resource:<6} {name:<32} {','.join(g.operations)}")
        return 0
    made = apply_acls(bootstrap_servers(args.broker), args.app_id, principals)
    print(f"{made} ACLs in place for {', '.join(principals.values())}")
    return 0


def _allowlist(args: argparse.Namespace) -> int:
    """Add, remove or list allowlist entries on the compacted topic; workers pick them up live."""
    import getpass
    import time

    from kafka import KafkaConsumer, KafkaProducer

    from stream.connection import kafka_python_config
    from stream.settings import WorkerSettings
    from stream.topics import ALLOWLIST
    from stream.triage import allowlist_entry

    bootstrap = bootstrap_servers(args.broker)
    if args.action == "list":
        consumer = KafkaConsumer(ALLOWLIST.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                 enable_auto_commit=False, consumer_timeout_ms=3000,
                                 **kafka_python_config())  # fmt: skip
        entries: dict[str, bytes | None] = {}
        for record in consumer:
            entries[record.key.decode()] = record.value
        consumer.close()
        for subject, value in sorted(entries.items()):
            if value is not None:
                print(subject, value.decode())
        return 0
    subjects = [f"account:{a}" for a in args.account] + [f"org:{o}" for o in args.org]
    if not subjects:
        print("distillguard allowlist: name at least one --account or --org", file=sys.stderr)
        return 2
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **kafka_python_config())
    for subject in subjects:
        value = None
        if args.action == "add":
            value = allowlist_entry(args.reason, args.by or getpass.getuser(), time.time())
        headers = WorkerSettings().control_headers(subject.encode(), value)  # workers ignore unsigned entries
        producer.send(ALLOWLIST.name, key=subject.encode(), value=value, headers=headers)
        print(f"{args.action} {subject}")
    producer.flush()
    producer.close()
    return 0


def _triage(args: argparse.Namespace) -> int:
    """list / show / confirm / dismiss / allowlist / log: the on-call view of distillguard.alerts."""
    import getpass
    import json
    import time

    from stream.triage import Triage

    triage = Triage(bootstrap_servers(args.broker))
    if args.action == "list":
        for a in triage.alerts(limit=args.limit):
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(a.get("raised_at", 0)))
            print(f"{a['alert_id']}  {a['severity']:<8} {a['subject']['id']:<24} {a['decision']['action']:<6} "
                  f"{a['risk_score']:.2f}  {when}  {a['status']:<14} {', '.join(a['reasons'])}")  # fmt: skip
        return 0
    if args.action == "log":
        for v in triage.log():
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(v["at"]))
            print(f"{when}  {v['by']:<12} {v['action']:<9} {v['alert_id']}  {v['subject']['id']}  {v.get('note', '')}")
        return 0
    if not args.alert_id:
        print(f"distillguard triage {args.action}: which alert? (see 'distillguard triage list')", file=sys.stderr)
        return 2
    if args.action == "show":
        print(json.dumps(triage.alert(args.alert_id), indent=2))
        return 0
    action = "allowlist" if args.action == "dismiss" and args.allowlist else args.action
    verdict = triage.act(args.alert_id, action, by=args.by or getpass.getuser(), note=args.note)
    print(f"{verdict['verdict']}: alert {args.alert_id} ({verdict['subject']['id']}) by {verdict['by']}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses
    import time

    import orjson

    from sim.scenario import load_scenario, resized, write
    from sim.send import to_gateway, to_kafka
    from stream.replay import read_lines

    scenario = resized(load_scenario(args.scenario, seed=args.seed), args.scale_benign, args.scale_attack)
    if args.live:
        scenario = dataclasses.replace(scenario, start=time.time() + 5.0)
    started = time.perf_counter()
    n, accounts = write(scenario, Path(args.events), Path(args.labels))
    print(f"wrote {n} events from {accounts} accounts in {time.perf_counter() - started:.1f}s "
          f"to {args.events}; labels in {args.labels}", file=sys.stderr)  # fmt: skip
    events = (orjson.loads(line) for line in read_lines(Path(args.events)))
    if args.to_kafka:
        sent = to_kafka(events, args.to_kafka, progress=lambda i: print(f"  {i}/{n} sent", end="\r", file=sys.stderr))
        print(f"\nproduced {sent} events to llm.requests on {args.to_kafka}", file=sys.stderr)
    if args.via_gateway:
        url = args.via_gateway.rstrip("/") + "/v1/messages"
        delivery = asyncio.run(to_gateway(events, url, progress=lambda d: print(
            f"  {d.sent}/{n} requests, statuses {dict(d.statuses)}", end="\r", file=sys.stderr)))  # fmt: skip
        print(f"\nsent {delivery.sent} requests through {url}: statuses {dict(delivery.statuses)}, "
              f"{delivery.errors} connection errors", file=sys.stderr)  # fmt: skip
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from stream.evaluate import evaluate, format_report, plot

    report = evaluate(Path(args.events), Path(args.labels), Path(args.decisions) if args.decisions else None)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in report.items() if not k.startswith("_")}, indent=2))
    if args.plot:
        plot(report, Path(args.labels), Path(args.plot))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from stream.settings import WorkerSettings

    defaults = WorkerSettings()
    parser = argparse.ArgumentParser(prog="distillguard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    w = sub.add_parser("worker", help="run the streaming detector against Kafka")
    w.add_argument("--broker", default=defaults.broker, help="kafka://host:port (default %(default)s)")
    w.add_argument("--app-id", default=defaults.app_id, help="consumer group and changelog prefix")
    w.add_argument("--partitions", type=int, default=defaults.partitions, help="partitions of topics it creates")
    w.add_argument("--replication", type=int, default=defaults.replication, help="replication factor of topics")
    w.add_argument("--data-dir", default=defaults.data_dir, help="Faust data directory (created if missing)")
    w.add_argument("--dev", action="store_true", help="allow the development signing secret (local trials only)")
    w.add_argument(
        "--max-future-seconds",
        type=float,
        default=defaults.max_future_seconds,
        help="events stamped further ahead of the wall clock are scored at that limit (%(default)s)",
    )
    w.add_argument("--metrics-port", type=int, default=defaults.metrics_port, help="0 disables /metrics")
    w.add_argument("--triage-port", type=int, default=defaults.triage_port, help="0 disables the triage page")
    w.add_argument("--mode", choices=("enforce", "shadow"), default=defaults.mode)
    w.add_argument("--rules", default=defaults.rules, help="scoring rules TOML (default: detectors/rules/scoring.toml)")
    w.add_argument(
        "--lift-seconds",
        type=float,
        default=defaults.lift_seconds,
        help="how often expired decisions are lifted (default %(default)s)",
    )
    w.add_argument(
        "--batch-seconds",
        type=float,
        default=defaults.batch_seconds,
        help="longest wait for a batch: decision latency vs. changelog writes per hot account (default %(default)s)",
    )
    w.add_argument("--loglevel", default="warning")
    w.set_defaults(func=_worker)

    r = sub.add_parser("replay", help="backtest: run the detector over an events file, no broker")
    r.add_argument("events", help="events as JSONL, optionally .gz")
    r.add_argument("--out", required=True, help="decisions JSONL to write")
    r.add_argument("--alerts", help="alerts JSONL to write")
    r.add_argument("--rejects", help="invalid lines (number and reason) JSONL to write")
    r.add_argument("--rules", default=None, help="scoring rules TOML (default: detectors/rules/scoring.toml)")
    r.add_argument("--mode", choices=("enforce", "shadow"), default="enforce")
    r.set_defaults(func=_replay)

    a = sub.add_parser("allowlist", help="exempt accounts or orgs from automatic decisions (no restart needed)")
    a.add_argument("action", choices=("add", "remove", "list"))
    a.add_argument("--account", action="append", default=[], help="account id (repeatable)")
    a.add_argument("--org", action="append", default=[], help="organisation id (repeatable)")
    a.add_argument("--reason", default="", help="why (kept with the entry)")
    a.add_argument("--by", default="", help="who (default: the OS user)")
    a.add_argument("--broker", default=defaults.broker)
    a.set_defaults(func=_allowlist)

    k = sub.add_parser("acls", help="Kafka ACLs per principal: show the grants, or apply them (as an admin)")
    k.add_argument("action", choices=("show", "apply"))
    k.add_argument("--app-id", default=defaults.app_id, help="the workers' Faust app id (their group and prefix)")
    for role in ("gateway", "worker", "triage"):
        k.add_argument(f"--{role}", default="", help=f"the {role}'s principal (default User:{role})")
    k.add_argument("--broker", default=defaults.broker)
    k.set_defaults(func=_acls)

    t = sub.add_parser("triage", help="on-call triage of alerts: list, show, confirm, dismiss, allowlist, log")
    t.add_argument("action", choices=("list", "show", "confirm", "dismiss", "allowlist", "log"))
    t.add_argument("alert_id", nargs="?", default="")
    t.add_argument("--by", default="", help="who you are (default: the OS user); recorded with the verdict")
    t.add_argument("--note", default="")
    t.add_argument("--allowlist", action="store_true", help="with dismiss: allowlist the subject for good")
    t.add_argument("--limit", type=int, default=50)
    t.add_argument("--broker", default=defaults.broker)
    t.set_defaults(func=_triage)

    s = sub.add_parser("simulate", help="generate labelled traffic from a scenario file (sim/scenarios/)")
    s.add_argument("scenario")
    s.add_argument("--events", required=True, help="events JSONL (.gz to compress)")
    s.add_argument("--labels", required=True, help="ground truth JSONL: account, population, kind, campaign")
    s.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    s.add_argument("--scale-benign", type=float, default=1.0, help="scale every benign population (a mixture)")
    s.add_argument("--scale-attack", type=float, default=1.0, help="scale every attack population")
    s.add_argument("--to-kafka", metavar="HOST:PORT", help="also produce the events to llm.requests there")
    s.add_argument(
        "--via-gateway",
        metavar="URL",
        help="also send them as requests through a reference gateway "
        "(paced in real time; use --live, and run the gateway with --trust-edge-headers)",
    )
    s.add_argument("--live", action="store_true", help="start the scenario now instead of at its fixed start")
    s.set_defaults(func=_simulate)

    e = sub.add_parser("evaluate", help="precision, recall, FPR, delays and harvested-token reduction by population")
    e.add_argument("--events", required=True)
    e.add_argument("--labels", required=True)
    e.add_argument("--decisions", help="decisions JSONL (default: run replay over the events)")
    e.add_argument("--json", help="write the report as JSON")
    e.add_argument("--plot", help="write score distributions and detection delays as a PNG")
    e.set_defaults(func=_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # faust.Worker reads sys.argv; hide our own flags from it.
    sys.argv = [sys.argv[0]]
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
