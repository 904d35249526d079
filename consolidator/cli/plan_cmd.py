"""``consolidator plan``: inventory, size, choose strategies, write plan.yaml and manifests."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consolidator.apps import parse_mapping
from consolidator.cli.inventory_cmd import add_source_options
from consolidator.cli.output import ProgressPrinter
from consolidator.cli.render import render_plan
from consolidator.errors import ConfigError
from consolidator.inventory.collect import InventoryOptions, run_inventory
from consolidator.plan.build import PlanOptions, build_plan
from consolidator.plan.model import Plan
from consolidator.plan.store import load_previous
from consolidator.plan.write import write_plan_dir


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("plan", help="plan one right-sized cluster per app; write DIR/plan.yaml and manifests",
                       description="Inventory the source, size one cluster per app and write a reviewable plan.")
    add_source_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="plan directory (plan.yaml, manifests/)")
    p.add_argument("--target", choices=("local", "cnpg"), default="local", help="target provider (default local)")
    p.add_argument("--local-root", metavar="DIR", help="where local target instances live (local target)")
    p.add_argument("--strategy", action="append", default=[], metavar="S|APP=S",
                   help="auto (default), dump, logical, physical or import; APP may be a source database name")
    p.add_argument("--map", action="append", default=[], metavar="DB=APP", help="group databases into one app")
    p.add_argument("--group-by-owner", action="store_true", help="one app per owning role")
    p.add_argument("--instances", type=int, metavar="N", help="instances per cluster (default: 3 active, 1 idle)")
    p.add_argument("--storage-class", metavar="NAME", help="StorageClass for data and WAL volumes")
    p.add_argument("--target-version", type=int, metavar="N", help="target major (default: the source's)")
    p.add_argument("--namespace", default="default", help="Kubernetes namespace of the clusters")
    p.add_argument("--backup-s3", metavar="s3://BUCKET/PREFIX", help="Barman Cloud plugin backups to this path")
    p.add_argument("--backup-endpoint", metavar="URL", help="S3 endpoint URL (Ceph RGW, MinIO…)")
    p.add_argument("--pod-monitor", action="store_true", help="add a PodMonitor per cluster")
    p.add_argument("--network-policy", action="store_true", help="add a NetworkPolicy per cluster")
    p.add_argument("--app-namespace", action="append", default=[], metavar="NS",
                   help="namespace whose pods may connect (with --network-policy)")
    p.add_argument("--priority-class", metavar="NAME", help="PriorityClass for the cluster pods (created)")
    p.add_argument("--source-from-cluster", metavar="HOST[:PORT]",
                   help="how the target cluster's pods reach the legacy server, when not as --source does "
                        "(cnpg: externalClusters, subscriptions, base backups)")
    p.set_defaults(func=run)


def _strategies(items: list[str]) -> tuple[str, dict[str, str]]:
    default = "auto"
    per_app: dict[str, str] = {}
    for item in items:
        if "=" in item:
            per_app.update(parse_mapping([item], "--strategy"))
        else:
            default = item
    return default, per_app


def options_from_args(args: argparse.Namespace) -> PlanOptions:
    default, per_app = _strategies(args.strategy)
    if args.instances is not None and not 1 <= args.instances <= 10:
        raise ConfigError(f"--instances {args.instances}: use 1 to 10")
    return PlanOptions(
        provider=args.target, local_root=args.local_root, namespace=args.namespace,
        storage_class=args.storage_class, target_version=args.target_version, instances=args.instances,
        default_strategy=default, strategies=per_app, mapping=parse_mapping(args.map),
        group_by_owner=args.group_by_owner, backup_s3=args.backup_s3, backup_endpoint=args.backup_endpoint,
        pod_monitor=args.pod_monitor, network_policy=args.network_policy, app_namespaces=args.app_namespace,
        priority_class=args.priority_class, source_from_cluster=args.source_from_cluster,
    )  # fmt: skip


def make_plan(args: argparse.Namespace, out: Path) -> Plan:
    """Everything but writing: a failure here leaves the directory untouched."""
    opts = options_from_args(args)
    if opts.group_by_owner and opts.mapping:
        raise ConfigError("--map and --group-by-owner cannot be combined", hint="use one way of grouping")
    previous = load_previous(out)
    inv = run_inventory(
        args.source,
        InventoryOptions(sample_seconds=args.sample_seconds, jobs=args.jobs, exclude=args.exclude),
        sink=ProgressPrinter(quiet=args.quiet),
    )
    return build_plan(inv, args.source, opts, previous)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    plan = make_plan(args, out)
    written = write_plan_dir(plan, out)
    render_plan(plan, str(out))
    print(f"wrote {written[0]} and {len(written) - 1} manifest files", file=sys.stderr)
    print(f"next: consolidator report {out} --format html", file=sys.stderr)
    return 0
