"""Real PostgreSQL servers for tests: testcontainers when a Docker engine answers, else local binaries.

Local servers run as an unprivileged OS user on free loopback ports in temporary directories and
are always removed. Never a mock: every test talks to a real server.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consolidator.pg.instance import LocalInstance


@dataclass
class Server:
    """A running server reachable with ``dsn`` (superuser, password in a pgpass file)."""

    dsn: str
    major: int
    instance: LocalInstance | None = None
    container: Any = None

    def conninfo(self, dbname: str = "postgres", user: str | None = None) -> str:
        from psycopg.conninfo import make_conninfo

        extra = {"dbname": dbname}
        if user:
            extra["user"] = user
        return make_conninfo(self.dsn, **extra)

    def password_of(self, user: str) -> str:
        """The password this server's pgpass holds for ``user`` (to log in as an app role elsewhere)."""
        from consolidator.pg.connect import lookup_passfile

        params = _params(self.dsn)
        found = lookup_passfile(params["passfile"], {**params, "user": user})
        assert found is not None, f"no password recorded for {user!r}"
        return found

    def add_password(self, user: str, password: str) -> None:
        if self.instance is not None:
            self.instance.add_password(user, password)
        else:  # container: same passfile layout
            passfile = Path(_params(self.dsn)["passfile"])
            with open(passfile, "a") as fh:
                fh.write(f"*:*:*:{user}:{password}\n")


def role_conninfo(target_conninfo: str, *, dbname: str, role: str, password: str, **extra: str) -> str:
    """The target's address with an app role's own credentials (instead of the admin passfile)."""
    from psycopg.conninfo import make_conninfo

    params = {k: v for k, v in _params(target_conninfo).items() if k != "passfile"}
    return make_conninfo(**{**params, "user": role, "dbname": dbname, "password": password, **extra})


def _params(dsn: str) -> dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict

    return conninfo_to_dict(dsn)


@functools.cache
def docker_available() -> bool:
    """True when a Docker engine answers (not merely a docker client on PATH)."""
    if os.environ.get("CONSOLIDATOR_TEST_NO_DOCKER"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


SERVER_SETTINGS = {
    "shared_preload_libraries": "'pg_stat_statements'",
    "track_io_timing": "on",
    "max_connections": "200",
}


@contextlib.contextmanager
def running_server(major: int | None = None, settings: dict[str, str] | None = None) -> Iterator[Server]:
    """Start a throwaway server; yield it; always tear it down."""
    merged = {**SERVER_SETTINGS, **(settings or {})}
    if docker_available():
        with _container_server(major or 15, merged) as server:
            yield server
        return
    inst = LocalInstance.create(major=major, settings=_local_settings(major, merged))
    try:
        inst.start()
        yield Server(dsn=inst.conninfo(), major=inst.binaries.major, instance=inst)
    finally:
        inst.destroy()


def _local_settings(major: int | None, settings: dict[str, str]) -> dict[str, str]:
    from consolidator.pg.binaries import find

    if find(major).bundled:  # the pgserver wheel ships no pg_stat_statements
        settings = {k: v for k, v in settings.items() if k != "shared_preload_libraries"}
    return settings


@contextlib.contextmanager
def _container_server(major: int, settings: dict[str, str]) -> Iterator[Server]:
    from testcontainers.postgres import PostgresContainer

    args = " ".join(f"-c {k}={v.strip(chr(39))}" for k, v in settings.items())
    container = PostgresContainer(f"postgres:{major}", username="postgres", dbname="postgres")
    container.with_command(f"postgres {args}")
    with container:
        tmp = Path(tempfile.mkdtemp(prefix="consolidator-tc-"))
        passfile = tmp / "pgpass"
        passfile.write_text(f"*:*:*:postgres:{container.password}\n")
        passfile.chmod(0o600)
        from psycopg.conninfo import make_conninfo

        dsn = make_conninfo(
            host=container.get_container_host_ip(),
            port=str(container.get_exposed_port(5432)),
            user="postgres",
            dbname="postgres",
            passfile=str(passfile),
        )
        try:
            yield Server(dsn=dsn, major=major, container=container)
        finally:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
