"""Pre-flight checks of each cluster's backup destination, before anything is applied.

CloudNativePG only finds out at the first archived WAL that a bucket is missing, that the backup
user cannot write, or that ``<destinationPath>/<serverName>/`` already holds a previous attempt's
archive ("Expected empty archive": the cluster then stays in "Setting up primary"). Checking here
turns those into one line with the fix while nothing is deployed yet.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from consolidator.errors import ConnectionFailure, ConsolidatorError, PreconditionError
from consolidator.manifests.render import server_name
from consolidator.plan.model import App, Plan
from consolidator.s3.client import connection_failure, describe_endpoint, endpoint_url, error_code, s3_client
from consolidator.s3.location import S3Location, archive_location

PROBE_PREFIX = ".consolidator-probe-"
NO_BACKUP_HINT = "plan with --backup-s3 s3://bucket/prefix (and --backup-endpoint URL for Ceph RGW or MinIO)"


@dataclass(frozen=True)
class CheckResult:
    """One check of one app; ``connection`` marks an unreachable endpoint or rejected credentials."""

    app: str
    name: str
    ok: bool
    message: str
    fix: str = ""
    connection: bool = False


@dataclass
class S3CheckReport:
    endpoint: str | None
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def error(self) -> ConsolidatorError | None:
        """The failure to exit with: connection/auth first (exit 5), else the first failed check (exit 4)."""
        failed = [r for r in self.results if not r.ok]
        if not failed:
            return None
        first = next((r for r in failed if r.connection), failed[0])
        more = f" (and {len(failed) - 1} more failed check{'s' if len(failed) > 2 else ''})" if len(failed) > 1 else ""
        cls = ConnectionFailure if first.connection else PreconditionError
        return cls(f"{first.app}: {first.message}{more}", hint=first.fix)


def check_plan(plan: Plan, apps: Iterable[App] | None = None, *, client: Any = None,
               now: dt.datetime | None = None) -> S3CheckReport:  # fmt: skip
    """Check every app (or ``apps``); a plan without a backup target is refused."""
    backup = plan.target.backup
    if backup is None:
        raise PreconditionError("the plan has no backup target: nothing to check", hint=NO_BACKUP_HINT)
    endpoint = endpoint_url(backup.endpoint_url)
    client = client or s3_client(endpoint)
    report = S3CheckReport(endpoint=endpoint)
    for app in plan.apps if apps is None else apps:
        report.results.extend(check_app(client, plan, app, endpoint=endpoint, now=now))
    return report


def check_app(client: Any, plan: Plan, app: App, *, endpoint: str | None,
              now: dt.datetime | None = None) -> list[CheckResult]:  # fmt: skip
    """Bucket and credentials, empty WAL archive, then write+delete; stops at the first blocking failure."""
    loc = archive_location(plan, app)
    results: list[CheckResult] = []
    try:
        listing = client.list_objects_v2(Bucket=loc.bucket, Prefix=loc.key_prefix, MaxKeys=1)
    except Exception as exc:
        results.append(_access_failure(exc, app, loc, endpoint))
        return results
    results.append(CheckResult(app.name, "bucket", True,
                               f"s3://{loc.bucket} reachable at {describe_endpoint(endpoint)}"))  # fmt: skip
    results.append(_archive_empty(plan, app, loc, listing, now))
    results.append(_write_delete(client, app, loc))
    return results


def _access_failure(exc: Exception, app: App, loc: S3Location, endpoint: str | None) -> CheckResult:
    failure = connection_failure(exc, loc.url, endpoint)
    if failure is not None:
        name = "credentials" if "credentials" in failure.message else "endpoint"
        return CheckResult(app.name, name, False, failure.message, failure.hint or "", connection=True)
    code = error_code(exc)
    if code in ("NoSuchBucket", "404", "NotFound"):
        return CheckResult(app.name, "bucket", False,
                           f"bucket {loc.bucket!r} does not exist at {describe_endpoint(endpoint)}",
                           f"create the bucket (aws s3 mb s3://{loc.bucket}) or plan with the right "
                           "--backup-s3 s3://bucket/prefix")  # fmt: skip
    return CheckResult(app.name, "bucket", False, f"listing {loc.url} failed: {code or type(exc).__name__}",
                       "check the bucket and the backup user's permissions")  # fmt: skip


def _archive_empty(plan: Plan, app: App, loc: S3Location, listing: dict[str, Any],
                   now: dt.datetime | None) -> CheckResult:  # fmt: skip
    found = listing.get("Contents") or []
    if not found:
        return CheckResult(app.name, "wal-archive-empty", True, f"{loc.url} is empty")
    attempt, fresh = propose_attempt(plan, app, now)
    backup = plan.target.backup
    current = backup.attempt if backup else ""
    return CheckResult(
        app.name, "wal-archive-empty", False,
        f"{loc.url} already holds objects (e.g. {found[0]['Key']}): CloudNativePG would stop with "
        f"'Expected empty archive' for serverName {server_name(plan, app)}",
        f"set target.backup.attempt from {current!r} to {attempt!r} in plan.yaml and re-run consolidator plan "
        f"with the same --out (serverName becomes {fresh}), or empty {loc.url} deliberately",
    )  # fmt: skip


def propose_attempt(plan: Plan, app: App, now: dt.datetime | None = None) -> tuple[str, str]:
    """A new ``target.backup.attempt`` (the plan's format, ``aYYYYmmddHHMM``) and the serverName it gives.

    ``server_name`` is ``<cluster>-<attempt>``: a new attempt is a new, empty archive prefix.
    """
    backup = plan.target.backup
    assert backup is not None
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    attempt = moment.strftime("a%Y%m%d%H%M")
    if attempt == backup.attempt:
        attempt = moment.strftime("a%Y%m%d%H%M%S")
    fresh = dataclasses.replace(plan, target=dataclasses.replace(
        plan.target, backup=dataclasses.replace(backup, attempt=attempt)))  # fmt: skip
    return attempt, server_name(fresh, app)


def _write_delete(client: Any, app: App, loc: S3Location) -> CheckResult:
    """Put a tiny probe under the cluster's prefix and always delete it: Barman needs both rights."""
    key = loc.key(f"{PROBE_PREFIX}{uuid.uuid4().hex}")
    where = f"s3://{loc.bucket}/{key}"
    fix = f"grant the backup user s3:PutObject and s3:DeleteObject on {loc.url}* (see backup-policies/)"
    try:
        client.put_object(Bucket=loc.bucket, Key=key, Body=b"consolidator write probe\n")
    except Exception as exc:
        return CheckResult(app.name, "write-delete", False,
                           f"cannot write under {loc.url} ({error_code(exc) or type(exc).__name__})", fix)
    try:
        client.delete_object(Bucket=loc.bucket, Key=key)
    except Exception as exc:
        return CheckResult(app.name, "write-delete", False,
                           f"wrote {where} but cannot delete it ({error_code(exc) or type(exc).__name__}); "
                           "remove it by hand", fix)  # fmt: skip
    if _exists(client, loc.bucket, key):
        return CheckResult(app.name, "write-delete", False, f"{where} is still there after deleting it",
                           f"remove it by hand; {fix}")  # fmt: skip
    return CheckResult(app.name, "write-delete", True, f"can write and delete under {loc.url}")


def _exists(client: Any, bucket: str, key: str) -> bool:
    """Only a successful HEAD proves the probe survived (a 404, or no read right, counts as gone)."""
    try:
        client.head_object(Bucket=bucket, Key=key)
    except Exception:
        return False
    return True
