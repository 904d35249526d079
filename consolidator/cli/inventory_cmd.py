"""``consolidator inventory``: read-only inventory of a legacy server."""

from __future__ import annotations

import argparse

from consolidator.cli.output import ProgressPrinter, print_json
from consolidator.cli.render import render_inventory
from consolidator.inventory.collect import InventoryOptions, run_inventory
from consolidator.serde import to_data


def add_source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True, metavar="DSN",
                   help="legacy server: 'host=… port=… user=…' or postgresql://user@host:port/db "
                        "(password from PGPASSWORD or ~/.pgpass, never printed)")  # fmt: skip
    p.add_argument("--sample-seconds", type=float, default=10.0, metavar="N",
                   help="activity sampling window in seconds (default 10)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=4, metavar="N",
                   help="parallel connections for the catalog pass (default 4)")
    p.add_argument("--exclude", action="append", default=[], metavar="DB", help="leave a database out (repeatable)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("inventory", help="inventory a legacy server (read-only)",
                       description="Inventory a legacy PostgreSQL server without changing anything.")  # fmt: skip
    add_source_options(p)
    p.add_argument("--json", action="store_true", help="print the whole inventory as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inv = run_inventory(
        args.source,
        InventoryOptions(sample_seconds=args.sample_seconds, jobs=args.jobs, exclude=args.exclude),
        sink=ProgressPrinter(quiet=args.quiet),
    )
    if args.json:
        print_json(to_data(inv))
    else:
        render_inventory(inv)
    return 0
