"""A safety net before a cutover: ``pg_dump -Fc`` of a source database streamed to S3.

Nothing touches the local disk: pg_dump's stdout feeds a multipart upload while a reader counts
the bytes and hashes them, so the record proves which bytes were stored. The password, if the DSN
carries one, moves into a 0600 passfile for the duration of the dump: never on the command line,
where ``ps`` would show it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from consolidator.errors import StepFailed
from consolidator.pg.binaries import Binaries, find_client
from consolidator.pg.connect import parse_dsn, pgpass_line, redact, with_database
from consolidator.s3.client import connection_failure, describe_endpoint, error_code, s3_client
from consolidator.s3.location import S3Location

log = logging.getLogger(__name__)
PART_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class SafetyDump:
    """What was stored: the object, its size and sha256 as streamed, and how long it took."""

    bucket: str
    key: str
    bytes: int
    sha256: str
    seconds: float

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def safety_key(location: S3Location, cluster: str, dbname: str, now: dt.datetime | None = None) -> str:
    """``<prefix>/safety/<cluster>/<db>-<UTC time>.dump``: beside, never inside, a WAL archive."""
    stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return location.key("safety", cluster, f"{dbname}-{stamp}.dump")


class _HashingReader:
    """A read-only file object over pg_dump's stdout that counts and hashes what boto3 reads."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.bytes = 0
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.bytes += len(data)
        self.digest.update(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


@contextlib.contextmanager
def passfile_conninfo(dsn: str) -> Iterator[str]:
    """The DSN with any password moved into a temporary 0600 passfile (removed afterwards)."""
    params = parse_dsn(dsn)
    password = params.pop("password", None)
    if not password:
        yield dsn
        return
    directory = Path(tempfile.mkdtemp(prefix="consolidator-dump-"))
    try:
        passfile = directory / "pgpass"
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(pgpass_line("*", "*", "*", "*", str(password)))
        params["passfile"] = str(passfile)
        from psycopg.conninfo import make_conninfo

        yield make_conninfo(**params)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def dump_to_s3(source_dsn: str, dbname: str, location: S3Location, key: str, *, endpoint: str | None = None,
               client: Any = None, binaries: Binaries | None = None, part_bytes: int = PART_BYTES) -> SafetyDump:
    """Stream ``pg_dump -Fc`` of ``dbname`` to ``s3://<bucket>/<key>`` in ``part_bytes`` parts.

    A failed dump deletes the partial object, so a listed safety dump is always a complete one.
    """
    from boto3.s3.transfer import TransferConfig

    binaries = binaries or find_client()
    client = client or s3_client(endpoint)
    url = f"s3://{location.bucket}/{key}"
    transfer = TransferConfig(multipart_threshold=part_bytes, multipart_chunksize=part_bytes, max_concurrency=4)
    started = time.monotonic()
    with passfile_conninfo(with_database(source_dsn, dbname)) as conninfo, tempfile.TemporaryFile() as errors:
        argv = [binaries.tool("pg_dump"), "-Fc", "--no-sync", "-d", conninfo]
        log.info("running %s", redact(" ".join(argv)))
        env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PGAPPNAME": "consolidator-safety-dump"}
        if "passfile=" in conninfo:
            env.pop("PGPASSWORD", None)  # libpq would prefer it over the passfile
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, env=env)
        assert proc.stdout is not None
        reader = _HashingReader(proc.stdout)
        uploaded = False
        try:
            client.upload_fileobj(reader, location.bucket, key, Config=transfer)
            uploaded = True
        except Exception as exc:
            failure = connection_failure(exc, url, endpoint)
            if failure is not None:
                raise failure from None
            raise StepFailed(f"uploading the safety dump of {dbname!r} to {url} at {describe_endpoint(endpoint)} "
                             f"failed: {error_code(exc) or type(exc).__name__}",
                             hint="check the bucket and the backup user's write permission") from None
        finally:
            if not uploaded and proc.poll() is None:  # the upload stopped early: pg_dump would block on the pipe
                proc.kill()
            proc.stdout.close()
            proc.wait()
        if proc.returncode != 0:
            errors.seek(0)
            lines = [ln for ln in errors.read().decode(errors="replace").splitlines() if ln.strip()]
            with contextlib.suppress(Exception):
                client.delete_object(Bucket=location.bucket, Key=key)
            detail = redact(lines[-1]) if lines else f"exit code {proc.returncode}"
            raise StepFailed(f"pg_dump of {dbname!r} for the safety dump failed: {detail}",
                             hint=f"fix the cause and retry; the partial object {url} was removed")  # fmt: skip
    return SafetyDump(location.bucket, key, reader.bytes, reader.digest.hexdigest(), time.monotonic() - started)
