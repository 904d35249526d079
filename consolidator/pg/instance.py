"""Local PostgreSQL instances (initdb/pg_ctl) on loopback ports, run as an unprivileged user.

Used by the test harness and the demo to create throwaway legacy servers, and the base of the
``local`` target provider. ``initdb`` refuses to run as root, so when we are root every server
process runs as ``CONSOLIDATOR_PG_OS_USER`` (default ``postgres``).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.conninfo import make_conninfo

from consolidator.errors import PreconditionError, StepFailed
from consolidator.pg.binaries import Binaries, find

DEFAULT_OS_USER = "postgres"
META_FILE = "instance.json"


def free_port() -> int:
    """A currently free loopback TCP port (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_os_user() -> str | None:
    """The OS user that runs server processes: ourselves, or an unprivileged one when root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("CONSOLIDATOR_PG_OS_USER", DEFAULT_OS_USER)
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise PreconditionError(
            f"running as root, but OS user {name!r} for PostgreSQL servers does not exist",
            hint=f"create it (useradd --system {name}) or set CONSOLIDATOR_PG_OS_USER",
        ) from None
    return name


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


@dataclass
class LocalInstance:
    """One PostgreSQL server in ``root`` (``data/``, ``run/`` socket dir, ``server.log``, ``pgpass``)."""

    root: Path
    port: int
    binaries: Binaries
    superuser: str = "postgres"
    os_user: str | None = None
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def passfile(self) -> Path:
        return self.root / "pgpass"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def conninfo(self, dbname: str = "postgres", user: str | None = None) -> str:
        """Connection string without password: libpq reads it from the 0600 passfile."""
        return make_conninfo(
            host="127.0.0.1",
            port=str(self.port),
            user=user or self.superuser,
            dbname=dbname,
            passfile=str(self.passfile),
        )

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        root: Path | None = None,
        *,
        major: int | None = None,
        port: int | None = None,
        superuser: str = "postgres",
        encoding: str = "UTF8",
        locale: str = "C",
        icu_locale: str | None = None,
        settings: dict[str, str] | None = None,
    ) -> LocalInstance:
        """initdb a new instance (not started). ``root`` must not exist or be empty."""
        binaries = find(major)
        os_user = server_os_user()
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="consolidator-pg-"))
        root.mkdir(parents=True, exist_ok=True)
        if any(root.iterdir()):
            raise PreconditionError(f"instance directory {root} is not empty", hint="choose an empty directory")
        inst = cls(
            root=root,
            port=port or free_port(),
            binaries=binaries,
            superuser=superuser,
            os_user=os_user,
            settings=dict(settings or {}),
        )
        inst._check_reachable()
        try:
            inst._initdb(encoding=encoding, locale=locale, icu_locale=icu_locale)
            inst._save_meta()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return inst

    @classmethod
    def open(cls, root: Path) -> LocalInstance:
        """An instance created earlier in ``root`` (its metadata file says port and major)."""
        try:
            meta = json.loads((root / META_FILE).read_text())
        except (OSError, ValueError):
            raise PreconditionError(f"no local instance in {root}", hint="provision it first") from None
        binaries = find(int(meta["major"]))
        return cls(root=root, port=int(meta["port"]), binaries=binaries, superuser=meta["superuser"],
                   os_user=server_os_user(), settings=dict(meta.get("settings", {})))  # fmt: skip

    def _save_meta(self) -> None:
        meta = {"port": self.port, "major": self.binaries.major, "superuser": self.superuser,
                "settings": self.settings}  # fmt: skip
        (self.root / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    def _check_reachable(self) -> None:
        """As root, the server's OS user must be able to write here (initdb fails obscurely otherwise)."""
        if not self.os_user:
            return
        self._chown(self.root)
        probe = subprocess.run(["test", "-w", str(self.root)], user=self.os_user, capture_output=True)
        if probe.returncode != 0:
            shutil.rmtree(self.root, ignore_errors=True)
            raise PreconditionError(
                f"OS user {self.os_user!r} cannot reach {self.root}",
                hint=f"choose a directory every parent of which {self.os_user!r} may traverse "
                "(e.g. under /tmp or /var/lib), or chmod o+x the parents",
            )

    def _run(self, argv: list[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        try:
            return subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=True,
                cwd=self.root,
                env=env,
                user=self.os_user,
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines()[-3:]
            raise StepFailed(
                f"{Path(argv[0]).name} failed for instance {self.root}: {' '.join(detail)}",
                hint=f"see {self.log_file}",
            ) from None

    def _chown(self, path: Path) -> None:
        if self.os_user:
            shutil.chown(path, user=self.os_user)

    def _initdb(self, *, encoding: str, locale: str, icu_locale: str | None) -> None:
        self._chown(self.root)
        password = secrets.token_urlsafe(24)
        pwfile = self.root / ".initdb-pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
        self._chown(pwfile)
        argv = [
            self.binaries.tool("initdb"),
            "-D", str(self.data_dir),
            "-U", self.superuser,
            f"--pwfile={pwfile}",
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "-E", encoding,
            f"--locale={locale}",
            "--no-sync",
        ]  # fmt: skip
        if icu_locale:
            argv += ["--locale-provider=icu", f"--icu-locale={icu_locale}"]
        try:
            self._run(argv, timeout=300)
        finally:
            pwfile.unlink(missing_ok=True)
        fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"127.0.0.1:{self.port}:*:{_pgpass_escape(self.superuser)}:{password}\n")
        (self.root / "run").mkdir(exist_ok=True)
        self._chown(self.root / "run")
        self.write_settings({})

    def write_settings(self, extra: dict[str, str]) -> None:
        """(Re)write our include file; takes effect at the next start or reload."""
        self.settings.update(extra)
        if (self.root / META_FILE).exists():
            self._save_meta()
        base = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root / 'run'}'",
            "fsync": "off",
            "logging_collector": "off",
        }
        lines = [f"{k} = {v}" for k, v in {**base, **self.settings}.items()]
        conf = self.data_dir / "consolidator.conf"
        conf.write_text("\n".join(lines) + "\n")
        self._chown(conf)
        main = self.data_dir / "postgresql.conf"
        text = main.read_text()
        if "include_if_exists = 'consolidator.conf'" not in text:
            main.write_text(text + "\ninclude_if_exists = 'consolidator.conf'\n")

    def add_password(self, user: str, password: str) -> None:
        """Record another role's password in this instance's passfile (0600)."""
        with open(self.passfile, "a") as fh:
            fh.write(f"127.0.0.1:{self.port}:*:{_pgpass_escape(user)}:{_pgpass_escape(password)}\n")

    def start(self, timeout: float = 60) -> None:
        self._run(
            [
                self.binaries.tool("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                "-w", "-t", str(int(timeout)), "start",
            ],  # fmt: skip
            timeout=timeout + 10,
        )

    def stop(self, mode: str = "fast") -> None:
        if not self.is_running():
            return
        self._run(
            [self.binaries.tool("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"], timeout=120
        )

    def promote(self) -> None:
        """End recovery of a standby (idempotent: a primary stays a primary)."""
        signal = self.data_dir / "standby.signal"
        if not signal.exists():
            return
        self._run([self.binaries.tool("pg_ctl"), "-D", str(self.data_dir), "-w", "promote"], timeout=120)

    def restart(self) -> None:
        self.stop()
        self.start()

    def is_running(self) -> bool:
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists():
            return False
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError, PermissionError, OSError):
            return False
        return True

    def destroy(self) -> None:
        """Stop (immediately) and remove everything; safe to call twice."""
        try:
            if self.is_running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def wait_ready(inst: LocalInstance, timeout: float = 30) -> None:
    """Block until the server accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            [inst.binaries.tool("pg_isready"), "-h", "127.0.0.1", "-p", str(inst.port)],
            capture_output=True,
        )
        if out.returncode == 0:
            return
        time.sleep(0.1)
    raise StepFailed(f"instance {inst.root} did not become ready in {timeout:.0f}s", hint=f"see {inst.log_file}")
