"""``consolidator tui``: the interactive face over the same core."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("tui", help="the interactive terminal UI: inventory, apps, manifests, execute, cutover",
                       description="Open the terminal UI on a source (--source) or a plan directory (DIR); "
                                   "without either it starts on the connect screen.")  # fmt: skip
    p.add_argument("plan_dir", metavar="DIR", nargs="?", help="a plan directory to open (or to save into)")
    p.add_argument("--source", metavar="DSN", help="the legacy server (password from PGPASSWORD or pgpass)")
    p.add_argument("--target", choices=("local", "cnpg"), default=None, help="target provider of new plans")
    p.add_argument("--local-root", metavar="DIR", help="where local targets live")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from consolidator.tui.app import run_tui

    return run_tui(source=args.source, plan_dir=Path(args.plan_dir) if args.plan_dir else None,
                   provider=args.target, local_root=args.local_root)  # fmt: skip
