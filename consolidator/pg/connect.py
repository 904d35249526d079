"""Connections to PostgreSQL servers: DSN handling, redaction and error translation.

Credentials come from the DSN, PG* environment variables or a pgpass file (libpq's own rules);
whatever the source, a password never appears in a message, a plan or a log line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from consolidator.errors import ConfigError, ConnectionFailure, PreconditionError

APPLICATION_NAME = "consolidator"
_SECRET_KEYS = ("password",)
_PASSWORD_RE = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URI_PASSWORD_RE = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)([^@\s]*)(@)")


def parse_dsn(dsn: str) -> dict[str, Any]:
    """Parse a key=value or URI DSN; a malformed one is a usage error that never echoes secrets."""
    try:
        return conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"invalid connection string: {redact(str(exc))}",
            hint="use 'host=H port=P user=U dbname=D' or postgresql://user@host:port/db",
        ) from None


def redact(text: str) -> str:
    """Remove passwords from a DSN or from an error message quoting one."""
    text = _PASSWORD_RE.sub(r"\1***", text)
    return _URI_PASSWORD_RE.sub(r"\1***\3", text)


def without_password(dsn: str) -> str:
    """The DSN with the password dropped: safe to store in a plan or print."""
    params = {k: v for k, v in parse_dsn(dsn).items() if k not in _SECRET_KEYS}
    return make_conninfo(**params)


def with_database(dsn: str, dbname: str) -> str:
    """The same server and credentials, another database (names may hold any character)."""
    return make_conninfo(dsn, dbname=dbname)


def describe(dsn: str) -> str:
    """``user@host:port/db`` for messages, with libpq's defaults filled in from the environment."""
    params = parse_dsn(dsn)
    try:
        defaults = {d.keyword: d.val for d in psycopg.pq.Conninfo.get_defaults()}
    except Exception:  # pragma: no cover - libpq without defaults API
        defaults = {}

    def pick(key: str, fallback: str) -> str:
        value = params.get(key) or defaults.get(key)
        return value.decode() if isinstance(value, bytes) else str(value or fallback)

    host = pick("host", "localhost")
    return f"{pick('user', 'postgres')}@{host}:{pick('port', '5432')}/{pick('dbname', pick('user', ''))}"


def connect(
    dsn: str,
    *,
    dbname: str | None = None,
    autocommit: bool = True,
    connect_timeout: int = 10,
    application_name: str = APPLICATION_NAME,
) -> psycopg.Connection[Any]:
    """Open a connection; translate libpq failures into errors that name the server and the fix."""
    conninfo = with_database(dsn, dbname) if dbname is not None else dsn
    params = parse_dsn(conninfo)
    _prefer_passfile(params)
    params.setdefault("connect_timeout", str(connect_timeout))
    params.setdefault("application_name", application_name)
    try:
        return psycopg.connect(make_conninfo(**params), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise translate_connect_error(exc, conninfo) from None


def _prefer_passfile(params: dict[str, Any]) -> None:
    """A conninfo naming its own passfile means that file: libpq would let PGPASSWORD win over it."""
    passfile = params.get("passfile")
    if not passfile or "password" in params or not os.environ.get("PGPASSWORD"):
        return
    password = lookup_passfile(str(passfile), params)
    if password is not None:
        params["password"] = password


def pgpass_escape(value: str) -> str:
    """A pgpass field: ``\\`` and ``:`` escaped with a backslash, as libpq reads it."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def pgpass_line(host: str, port: str, dbname: str, user: str, password: str) -> str:
    """One pgpass line; ``*`` (unescaped) matches any value of that field."""
    def field(value: str) -> str:
        return value if value == "*" else pgpass_escape(value)

    return ":".join(field(v) for v in (host, port, dbname, user, password)) + "\n"


def lookup_passfile(path: str, params: dict[str, Any]) -> str | None:
    """The password a pgpass file holds for host:port:db:user (libpq's matching and escaping)."""
    want = [str(params.get("host", "localhost")), str(params.get("port", "5432")), str(params.get("dbname", "*")),
            str(params.get("user", ""))]  # fmt: skip
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        return None
    for line in lines:
        if not line or line.startswith("#"):
            continue
        fields, current, escaped = [], "", False
        for ch in line:
            if escaped:
                current, escaped = current + ch, False
            elif ch == "\\":
                escaped = True
            elif ch == ":" and len(fields) < 4:
                fields.append(current)
                current = ""
            else:
                current += ch
        fields.append(current)
        if len(fields) == 5 and all(f in ("*", w) for f, w in zip(fields[:4], want, strict=True)):
            return fields[4]
    return None


def translate_connect_error(exc: psycopg.OperationalError, dsn: str) -> Exception:
    """Map libpq's text to one line naming the server and the fix (no secrets, no traceback)."""
    where = describe(dsn)
    text = redact(str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc))
    lowered = str(exc).lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return ConnectionFailure(
            f"authentication failed for {where}",
            hint="check the password in PGPASSWORD, ~/.pgpass (PGPASSFILE) or the DSN",
        )
    if "does not exist" in lowered and "database" in lowered:
        return PreconditionError(f"{where}: {text}", hint="check the database name (dbname=)")
    if "does not exist" in lowered and "role" in lowered:
        return ConnectionFailure(f"{where}: {text}", hint="check the user name (user=)")
    if "not permitted to log in" in lowered:
        return ConnectionFailure(f"{where}: {text}", hint="ALTER ROLE … LOGIN, or use another role")
    if "permission denied" in lowered or "connect privilege" in lowered:
        return PreconditionError(f"{where}: no CONNECT privilege", hint="GRANT CONNECT ON DATABASE to this role")
    if "pg_hba.conf" in lowered:
        return ConnectionFailure(f"{where}: {text}", hint="add a pg_hba.conf entry for this host and role")
    return ConnectionFailure(
        f"cannot connect to {where}: {text}",
        hint="check host and port, that the server is running and reachable from here",
    )


@contextmanager
def session(dsn: str, *, dbname: str | None = None, **kwargs: Any) -> Iterator[psycopg.Connection[Any]]:
    """``with session(dsn) as conn:`` — connect, yield, always close."""
    conn = connect(dsn, dbname=dbname, **kwargs)
    try:
        yield conn
    finally:
        conn.close()
