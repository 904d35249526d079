"""Entry point: parse arguments, run one command, map errors to the documented exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from consolidator import __version__
from consolidator.cli import (
    demo_cmd,
    execute_cmd,
    inventory_cmd,
    lifecycle_cmd,
    plan_cmd,
    report_cmd,
    s3_cmd,
    show_cmd,
    tui_cmd,
    verify_cmd,
)
from consolidator.cli.output import print_error
from consolidator.errors import ConfigError, ConsolidatorError, ExitCode, exit_code_for
from consolidator.pg.connect import redact

COMMANDS = (inventory_cmd, plan_cmd, show_cmd, report_cmd, execute_cmd, lifecycle_cmd, verify_cmd, s3_cmd,
            demo_cmd, tui_cmd)


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors; our table says 3."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}", hint=f"see '{self.prog} --help'")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="consolidator", description=__doc__.splitlines()[0] if __doc__ else None,
                     epilog="exit codes: 0 ok, 1 failed, 3 usage/config, 4 refused precondition, "
                            "5 connection/auth, 130 interrupted")  # fmt: skip
    parser.description = "Move a shared legacy PostgreSQL server onto one CloudNativePG cluster per app."
    parser.add_argument("--version", action="version", version=f"consolidator {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr,
                            format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
        if not args.verbose:  # psycopg's own cleanup warnings repeat an error the event stream already reports
            logging.getLogger("psycopg").setLevel(logging.ERROR)
        return int(args.func(args))
    except ConsolidatorError as exc:
        print_error(exc)
        return int(exit_code_for(exc))
    except KeyboardInterrupt:
        print_error("interrupted")
        return int(ExitCode.INTERRUPTED)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0) if isinstance(exc.code, int) else 0
    except Exception as exc:  # an unexpected failure: still no traceback unless asked for
        if os.environ.get("CONSOLIDATOR_DEBUG"):
            raise
        print_error(f"unexpected {type(exc).__name__}: {redact(str(exc).strip().splitlines()[0] if str(exc) else '')}",
                    hint="re-run with CONSOLIDATOR_DEBUG=1 for a traceback and report it")  # fmt: skip
        return int(ExitCode.FAILED)
