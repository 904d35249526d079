"""Local PostgreSQL instances (initdb/pg_ctl) on loopback ports, run as an unprivileged user.

Used by the test harness and the demo to create throwaway legacy servers, and the base of the
``local`` target provider, whose physical targets are pg_basebackup clones (``create_standby``).
``initdb`` refuses to run as root, so when we are root every server process runs as
``CONSOLIDATOR_PG_OS_USER`` (default ``postgres``).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo

from consolidator.errors import PreconditionError, StepFailed
from consolidator.pg.binaries import Binaries, find
from consolidator.pg.connect import pgpass_line

DEFAULT_OS_USER = "postgres"
META_FILE = "instance.json"
BUILD_MARKER = ".standby-build"  # present while pg_basebackup fills the directory: a rerun starts over
PRIMARY_PASSFILE = "primary.pgpass"  # the walreceiver's credentials, owned by the server OS user
_PROGRESS_RE = re.compile(r"(\d+)/(\d+) kB")
# Read by the server from the clone's own files unless the source kept them elsewhere (Debian's /etc).
_DEFAULT_HBA = """# written by consolidator: the source keeps pg_hba.conf outside its data directory
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
"""
# A clone runs the source's configuration: nothing of it may act on the legacy side (archive pushes,
# archive cleanup) or block commits after promotion (waiting for the source's synchronous standbys).
CLONE_SETTINGS = {
    "hot_standby": "on",
    "archive_mode": "off",
    "archive_cleanup_command": "''",
    "recovery_end_command": "''",
    "synchronous_standby_names": "''",
    "primary_slot_name": "''",
    "external_pid_file": "''",
}


# Log lines that say the server itself is in trouble rather than one statement failing.
SERVER_TROUBLE = ("PANIC:", "No space left on device", "could not bind", "out of memory", "Too many open files",
                  "terminated by signal")


_SEVERITY = re.compile(r"\b(PANIC|FATAL|ERROR|WARNING|LOG|HINT|DETAIL):\s+")


def _without_prefix(line: str) -> str:
    """``2026-… UTC [123] PANIC:  could not …`` → ``PANIC: could not …`` (the log_line_prefix dropped)."""
    found = _SEVERITY.search(line)
    return f"{found.group(1)}: {line[found.end():]}" if found else line


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


def conf_quote(value: str) -> str:
    """A postgresql.conf string literal (the file parser de-escapes backslashes too)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _write_private(path: Path, text: str, owner: str | None = None) -> None:
    """A 0600 file (pgpass) owned by ``owner`` (default: us); never readable by anyone else."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)
        if owner:
            shutil.chown(path, user=owner)
        fh.write(text)


def _pgpass_line(host: str, port: str, user: str, password: str | None) -> str:
    """One pgpass line (empty without a password: trust/peer sources need none)."""
    if password is None:
        return ""
    return pgpass_line(host, port, "*", user, password)


def _clear_half_built(root: Path) -> None:
    """Remove what an interrupted pg_basebackup left behind; refuse a directory holding anything else."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root / BUILD_MARKER
    if marker.exists():
        _stop_leftover_basebackup(marker, root)
        try:
            shutil.rmtree(root)
        except OSError as exc:
            raise StepFailed(f"cannot remove the half-built standby in {root}: {exc.strerror}",
                             hint=f"remove {root} by hand, then resume") from None  # fmt: skip
        root.mkdir()
    elif any(root.iterdir()):
        raise PreconditionError(f"instance directory {root} is not empty",
                                hint="remove it (consolidator teardown) or choose another --local-root")  # fmt: skip


def remove_half_built(root: Path, timeout: float = 10) -> None:
    """Remove a directory an interrupted initdb left, ending its orphaned processes first.

    A killed run leaves initdb (and the bootstrap ``postgres`` it forks) writing into ``root``;
    only processes whose command line names ``root`` or whose working directory is inside it (our
    tools run with ``cwd=root``) are signalled.
    """
    needle, resolved = str(root).encode(), root.resolve()
    deadline = time.monotonic() + timeout
    while True:
        pids = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if int(proc.name) == os.getpid():
                    continue
                cwd = Path(os.readlink(proc / "cwd"))
                if needle in (proc / "cmdline").read_bytes() or cwd == resolved or resolved in cwd.parents:
                    pids.append(int(proc.name))
            except (OSError, ValueError):
                continue
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise StepFailed(f"processes still write into {root}", hint=f"stop them and remove {root}, then resume")
        time.sleep(0.05)
    for _ in range(20):  # files of just-killed processes may still vanish under rmtree
        shutil.rmtree(root, ignore_errors=True)
        if not root.exists():
            return
        time.sleep(0.05)
    raise StepFailed(f"cannot remove the half-built instance in {root}", hint=f"remove {root} by hand, then resume")


def _basebackup_pids(group: int, root: Path) -> list[int]:
    """Live pg_basebackup processes of process group ``group`` writing into ``root`` (its WAL streamer too)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and b"pg_basebackup" in cmdline and str(root).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


def _stop_leftover_basebackup(marker: Path, root: Path) -> None:
    """A killed run's pg_basebackup (and its forked WAL streamer) may still write into ``root``: end them.

    Only processes of the group recorded in the marker whose command line names ``root`` are signalled.
    """
    try:
        group = int(json.loads(marker.read_text()).get("pid") or 0)
    except (OSError, ValueError):
        return
    if not group:
        return
    deadline = time.monotonic() + 10
    sig = signal.SIGTERM
    while pids := _basebackup_pids(group, root):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            sig = signal.SIGKILL
        time.sleep(0.1)


def _conf_key(line: str) -> str | None:
    """The parameter a postgresql.conf line sets (None for comments and blanks)."""
    match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=|\s)", line)
    return match.group(1).lower() if match and not line.lstrip().startswith("#") else None


@dataclass
class LocalInstance:
    """One PostgreSQL server in ``root`` (``data/``, ``run/`` socket dir, ``server.log``, ``pgpass``)."""

    root: Path
    port: int
    binaries: Binaries
    superuser: str = "postgres"
    os_user: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    standby_of: dict[str, Any] | None = None  # a clone: the source it was built from (no secret)

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
                   os_user=server_os_user(), settings=dict(meta.get("settings", {})),
                   standby_of=meta.get("standby_of"))  # fmt: skip

    @classmethod
    def create_standby(
        cls,
        root: Path,
        *,
        major: int,
        source_conninfo: str,
        user: str,
        password: str | None,
        settings: dict[str, str] | None = None,
        origin: dict[str, Any] | None = None,
        temp_slot: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> LocalInstance:
        """pg_basebackup a streaming standby of the source into ``root`` (not started).

        ``source_conninfo`` holds no password: ``password`` (the source's, for ``user``) only goes into two
        0600 pgpass files in ``root``: ``primary.pgpass`` for the walreceiver, owned by the server OS user,
        and ``pgpass`` for the tool, because the clone carries the source's roles and password hashes.
        A directory left by an interrupted build is wiped and built again.
        """
        binaries = find(major)
        _clear_half_built(root)
        inst = cls(root=root, port=free_port(), binaries=binaries, superuser=user, os_user=server_os_user(),
                   settings=dict(settings or {}), standby_of=dict(origin or {}))  # fmt: skip
        (root / BUILD_MARKER).write_text("{}\n")
        inst._check_reachable()
        try:
            primary = root / PRIMARY_PASSFILE
            _write_private(primary, _pgpass_line("*", "*", user, password), owner=inst.os_user)
            conninfo = make_conninfo(source_conninfo, passfile=str(primary))
            inst._basebackup(conninfo, temp_slot=temp_slot, progress=progress)
            inst._prepare_clone(conninfo)
            _write_private(inst.passfile, _pgpass_line("127.0.0.1", str(inst.port), user, password))
            inst._save_meta()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        (root / BUILD_MARKER).unlink()
        return inst

    def _basebackup(self, conninfo: str, *, temp_slot: bool, progress: Callable[[int, int], None] | None) -> None:
        """Run pg_basebackup as the server OS user; its pid goes into the build marker for a rerun."""
        from consolidator.pg.connect import redact

        argv = [self.binaries.tool("pg_basebackup"), "-d", conninfo, "-D", str(self.data_dir), "-X", "stream",
                "-R", "-c", "fast", "-P"]  # fmt: skip
        if not temp_slot:
            argv.append("--no-slot")
        # its own process group: the WAL streamer it forks can be ended with it, also by a later run
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=self.root,
                                env=self._env(), user=self.os_user, start_new_session=True)  # fmt: skip
        (self.root / BUILD_MARKER).write_text(json.dumps({"pid": proc.pid}) + "\n")
        tail: list[str] = []
        try:
            for line in proc.stderr or []:
                match = _PROGRESS_RE.search(line)
                if match and progress is not None:
                    progress(int(match.group(1)) * 1024, int(match.group(2)) * 1024)
                elif line.strip() and not match:
                    tail = [*tail[-4:], redact(line.strip())]
            code = proc.wait()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if code != 0:
            raise StepFailed(
                f"pg_basebackup into {self.data_dir} failed: {' '.join(tail[-3:]) or f'exit code {code}'}",
                hint="the source must accept a replication connection from this host (pg_hba 'replication' entry, "
                "a REPLICATION or superuser role, two free max_wal_senders); fix it, then resume",
            )

    def _prepare_clone(self, primary_conninfo: str) -> None:
        """Make the copied data directory ours: own port, socket and include file, passfile-only conninfo."""
        data = self.data_dir
        if not (data / "standby.signal").exists():
            raise StepFailed(f"pg_basebackup -R wrote no standby.signal into {data}", hint="check the PostgreSQL tools")
        defaults = {
            "postgresql.conf": "# written by consolidator: the source keeps its configuration elsewhere\n",
            "pg_hba.conf": _DEFAULT_HBA,
            "pg_ident.conf": "",
        }
        for name, text in defaults.items():
            if not (data / name).exists():
                (data / name).write_text(text)
                self._chown(data / name)
        (self.root / "run").mkdir(exist_ok=True)
        self._chown(self.root / "run")
        self.settings.update(CLONE_SETTINGS)
        self.settings.update({
            "primary_conninfo": conf_quote(primary_conninfo),
            "hba_file": conf_quote(str(data / "pg_hba.conf")),
            "ident_file": conf_quote(str(data / "pg_ident.conf")),
        })  # fmt: skip
        self.write_settings({})
        self._strip_auto_conf()

    def _strip_auto_conf(self) -> None:
        """postgresql.auto.conf wins over our include: drop the source's (and -R's) values for what we set.

        That includes the ``primary_conninfo`` pg_basebackup -R writes, which holds a password whenever
        libpq got one from the environment; ours (in the include file) names the passfile instead.
        """
        path = self.data_dir / "postgresql.auto.conf"
        if not path.exists():
            return
        ours = set(self._base_settings()) | set(self.settings)
        kept = [line for line in path.read_text().splitlines() if _conf_key(line) not in ours]
        path.write_text("\n".join(kept) + "\n")

    def wait_streaming(self, timeout: float = 120) -> None:
        """Block until the walreceiver streams from the primary (a promoted clone passes at once)."""
        from consolidator.pg.connect import connect

        deadline = time.monotonic() + timeout
        with connect(self.conninfo()) as conn:
            while True:
                row = conn.execute("SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)").fetchone()
                if row is None or not row[0] or row[1] == "streaming":
                    return
                if time.monotonic() > deadline:
                    raise StepFailed(
                        f"standby {self.root} does not stream from its primary (walreceiver "
                        f"{row[1] or 'not running'}){self.last_log_error()}",
                        hint=f"see {self.log_file}; the source needs a pg_hba 'replication' entry for this host and "
                        "must still hold the WAL the standby asks for (wal_keep_size)",
                    )
                time.sleep(0.2)

    def _log_tail(self, lines: int) -> list[str]:
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - 256 * 1024))
                return fh.read().decode(errors="replace").splitlines()[-lines:]
        except OSError:
            return []

    def last_log_error(self) -> str:
        """``: <last FATAL/ERROR line of server.log>`` for messages (passwords redacted), or empty."""
        from consolidator.pg.connect import redact

        errors = [line for line in self._log_tail(50) if "FATAL:" in line or "ERROR:" in line]
        return f": {redact(errors[-1].strip())}" if errors else ""

    def log_problems(self, limit: int = 2) -> list[str]:
        """Server-level troubles (disk full, crash, port taken) logged since the postmaster last started."""
        from consolidator.pg.connect import redact

        tail = self._log_tail(400)
        starts = [i for i, line in enumerate(tail) if "starting PostgreSQL" in line]
        found: list[str] = []
        for line in tail[starts[-1] if starts else 0:]:  # only since the postmaster last started
            text = line.strip()
            if any(mark in text for mark in SERVER_TROUBLE) and text not in found:
                found.append(text)
        return [redact(_without_prefix(t)) for t in found[-limit:]]

    def forget_primary(self) -> None:
        """After promotion: drop primary_conninfo and the walreceiver's passfile (the source's credentials)."""
        if self.settings.pop("primary_conninfo", None) is not None:
            self.write_settings({})
        (self.root / PRIMARY_PASSFILE).unlink(missing_ok=True)

    def _save_meta(self) -> None:
        meta = {"port": self.port, "major": self.binaries.major, "superuser": self.superuser,
                "settings": self.settings}  # fmt: skip
        if self.standby_of is not None:
            meta["standby_of"] = self.standby_of
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

    @staticmethod
    def _env() -> dict[str, str]:
        """A clean environment: no PGPASSWORD or PG* variable of ours reaches a server tool."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}

    def _run(self, argv: list[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = self._env()
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
            fh.write(pgpass_line("127.0.0.1", str(self.port), "*", self.superuser, password))
        (self.root / "run").mkdir(exist_ok=True)
        self._chown(self.root / "run")
        self.write_settings({})

    def _base_settings(self) -> dict[str, str]:
        return {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root / 'run'}'",
            "fsync": "off",
            "logging_collector": "off",
        }

    def write_settings(self, extra: dict[str, str]) -> None:
        """(Re)write our include file; takes effect at the next start or reload."""
        self.settings.update(extra)
        if (self.root / META_FILE).exists():
            self._save_meta()
        lines = [f"{k} = {v}" for k, v in {**self._base_settings(), **self.settings}.items()]
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
            fh.write(pgpass_line("127.0.0.1", str(self.port), "*", user, password))

    def start(self, timeout: float = 60) -> None:
        try:
            self._run(
                [
                    self.binaries.tool("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                    "-w", "-t", str(int(timeout)), "start",
                ],  # fmt: skip
                timeout=timeout + 10,
            )
        except StepFailed as exc:
            problems = self.log_problems() or [self.last_log_error().lstrip(": ")]
            reason = "; ".join(p for p in problems if p)
            raise StepFailed(f"the server in {self.root} does not start" + (f": {reason}" if reason else ""),
                             hint=f"fix the cause (see {self.log_file}), then run the command again") from exc

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
