"""Run PostgreSQL client programs (pg_dump, pg_restore, pg_basebackup…) safely.

Arguments are lists (no shell); credentials travel in the conninfo's ``passfile=`` or the
environment, never as a password argument; output is parsed in the C locale; failures become
one-line errors with the tool's last message.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from consolidator.errors import StepFailed
from consolidator.pg.binaries import Binaries
from consolidator.pg.connect import redact

log = logging.getLogger(__name__)


def run_tool(binaries: Binaries, name: str, args: list[str], *, what: str, timeout: float | None = None,
             cwd: Path | None = None) -> str:  # fmt: skip
    """Run ``name`` from ``binaries`` with ``args``; return stdout; raise StepFailed naming ``what``."""
    argv = [binaries.tool(name), *args]
    log.info("running %s", redact(" ".join(argv)))
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PGAPPNAME": "consolidator"}
    if any("passfile=" in a for a in args):
        env.pop("PGPASSWORD", None)  # libpq would prefer it over the passfile named for this server
    try:
        out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"{name} timed out after {timeout:.0f}s while {what}", hint="retry with --resume") from None
    if out.returncode != 0:
        lines = [ln for ln in (out.stderr or out.stdout).strip().splitlines() if ln.strip()]
        detail = redact(" | ".join(lines[-3:]))[:800] if lines else f"exit code {out.returncode}"
        raise StepFailed(f"{name} failed while {what}: {detail}", hint="fix the cause, then execute --resume")
    return out.stdout
