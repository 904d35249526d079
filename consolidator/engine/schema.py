"""Schema steps: dump the schema once, restore pre-data before the copy and post-data after it.

pg_dump/pg_restore of the *target* major (newer binaries read older servers). The dump lives in
the plan directory's work area, so a resumed run restores the same definitions.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from consolidator.pg.binaries import Binaries
from consolidator.pg.connect import with_database
from consolidator.pg.tools import run_tool


def dump_schema(binaries: Binaries, source_dsn: str, dbname: str, out_dir: Path, snapshot: str | None = None) -> Path:
    """``pg_dump -Fd --schema-only`` into ``out_dir`` (replaced if a previous attempt left one)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    args = ["-Fd", "--schema-only", "--no-sync", "-f", str(out_dir), "-d", with_database(source_dsn, dbname)]
    if snapshot:
        args[0:0] = ["--snapshot", snapshot]
    run_tool(binaries, "pg_dump", args, what=f"dumping the schema of {dbname!r}")
    return out_dir


def restore_section(binaries: Binaries, dump_dir: Path, target_dsn: str, dbname: str, section: str,
                    jobs: int = 1, clean: bool = False) -> None:  # fmt: skip
    """``pg_restore --section`` into the target database, stopping at the first error.

    ``clean`` drops the section's objects first (IF EXISTS), which makes a retried restore idempotent.
    """
    args = ["--section", section, "--exit-on-error", "-d", with_database(target_dsn, dbname)]
    if clean:
        args[0:0] = ["--clean", "--if-exists"]
    if jobs > 1:
        args[0:0] = ["-j", str(jobs)]
        args.remove("--exit-on-error")  # parallel restore reports errors at the end instead
    run_tool(binaries, "pg_restore", [*args, str(dump_dir)], what=f"restoring {section} of {dbname!r}")
