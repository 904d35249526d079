"""Find PostgreSQL binaries by major version.

Looked up in this order: Debian's ``/usr/lib/postgresql/N/bin``, ``pg_config --bindir`` on PATH,
and the ``pgserver`` wheel (PostgreSQL 16), so one machine can run several majors side by side.
Local targets need a server install (:func:`find`); dumping, restoring and relaying COPY only need
the client tools (:func:`find_client`), which is all the copy image carries (``postgresql-client-N``).
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from consolidator.errors import PreconditionError

_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Binaries:
    """A directory holding ``initdb``, ``pg_ctl``, ``postgres``, ``pg_dump``… of one major."""

    bindir: Path
    major: int
    version: str
    bundled: bool = False  # from the pgserver wheel: few contrib extensions

    def tool(self, name: str) -> str:
        return str(self.bindir / name)

    def extensions(self) -> set[str]:
        """Extensions these binaries can CREATE (their ``.control`` files)."""
        try:
            out = subprocess.run([self.tool("pg_config"), "--sharedir"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return set()
        sharedir = Path(out.stdout.strip()) if out.returncode == 0 else self.bindir.parent / "share"
        return {p.stem for p in (sharedir / "extension").glob("*.control")}


def _probe(bindir: Path, bundled: bool) -> Binaries | None:
    postgres = bindir / "postgres"
    if not (postgres.is_file() and (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file()):
        return None
    try:
        out = subprocess.run(
            [str(postgres), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_RE.search(out)
    if not match:
        return None
    version = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
    return Binaries(bindir=bindir, major=int(match.group(1)), version=version, bundled=bundled)


def _candidate_dirs() -> list[tuple[Path, bool]]:
    dirs = [(d, False) for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"))]
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                dirs.append((Path(out.stdout.strip()), False))
        except (OSError, subprocess.SubprocessError):
            pass
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            dirs.append((Path(loc) / "pginstall" / "bin", True))
    return dirs


@functools.cache
def available() -> dict[int, Binaries]:
    """Every major found on this machine (first location wins per major)."""
    found: dict[int, Binaries] = {}
    for bindir, bundled in _candidate_dirs():
        probed = _probe(bindir, bundled)
        if probed and probed.major not in found:
            found[probed.major] = probed
    return found


CLIENT_TOOLS = ("pg_dump", "pg_restore", "psql", "vacuumdb")


def _probe_client(bindir: Path) -> Binaries | None:
    if not all((bindir / tool).is_file() for tool in CLIENT_TOOLS):
        return None
    try:
        out = subprocess.run([str(bindir / "pg_dump"), "--version"], capture_output=True, text=True, timeout=10,
                             check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_RE.search(out)
    if not match:
        return None
    return Binaries(bindir=bindir, major=int(match.group(1)), version=match.group(1) + f".{match.group(2) or 0}")


@functools.cache
def available_clients() -> dict[int, Binaries]:
    """Every major whose client tools are here: server installs first, then client-only packages."""
    found = {m: b for m, b in available().items() if all((b.bindir / t).is_file() for t in CLIENT_TOOLS)}
    for bindir, _ in _candidate_dirs():
        probed = _probe_client(bindir)
        if probed and probed.major not in found:
            found[probed.major] = probed
    return found


def _pick(found: dict[int, Binaries], major: int | None, what: str, hint: str) -> Binaries:
    """``major`` from ``found`` (default: the newest full install, else the wheel's); refuse otherwise."""
    if major is None and found:
        full = [m for m, b in found.items() if not b.bundled]
        return found[max(full or found)]
    if major is not None and major in found:
        return found[major]
    have = ", ".join(str(m) for m in sorted(found)) or "none"
    raise PreconditionError(f"PostgreSQL {major if major is not None else ''} {what} not found (available: {have})",
                            hint=hint)  # fmt: skip


def find_client(major: int | None = None) -> Binaries:
    """Client tools (pg_dump, pg_restore, psql, vacuumdb) of ``major``, default the newest full install."""
    return _pick(available_clients(), major, "client tools",
                 f"install them, e.g. apt-get install postgresql-client-{major or 15}")  # fmt: skip


def find(major: int | None = None) -> Binaries:
    """Server binaries of ``major`` (default: the newest full install, else the wheel's)."""
    return _pick(available(), major, "server binaries",
                 f"install them, e.g. apt-get install postgresql-{major or 15}, or pip install pgserver for 16")
