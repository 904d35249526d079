"""Where a cluster's backups live in the object store: ``<destinationPath>/<serverName>/``.

One place computes it so the check, the bucket policy and the CNPG manifests agree on every byte.
"""

from __future__ import annotations

from dataclasses import dataclass

from consolidator.errors import ConfigError
from consolidator.manifests.render import server_name
from consolidator.plan.model import App, BackupTarget, Plan


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix without leading or trailing slashes (``""`` for the bucket root)."""

    bucket: str
    prefix: str = ""

    def key(self, *parts: str) -> str:
        """A key under this prefix: ``prefix/part/part``."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def child(self, name: str) -> S3Location:
        return S3Location(self.bucket, self.key(name))

    @property
    def key_prefix(self) -> str:
        """The prefix as S3 lists it: ``prefix/`` (empty for the bucket root)."""
        return f"{self.prefix}/" if self.prefix else ""

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key_prefix}"


def parse_s3_url(url: str) -> S3Location:
    """``s3://bucket/some/prefix/`` → ``S3Location("bucket", "some/prefix")``."""
    if not url.startswith("s3://") or not url[len("s3://"):].split("/", 1)[0]:
        raise ConfigError(f"{url!r} is not s3://bucket/prefix", hint="plan with --backup-s3 s3://bucket/prefix")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    return S3Location(bucket, prefix.strip("/"))


def destination(backup: BackupTarget) -> S3Location:
    """The plan's ``destinationPath`` as a location."""
    return parse_s3_url(backup.destination_path)


def archive_location(plan: Plan, app: App) -> S3Location:
    """``<destinationPath>/<serverName>``: the WAL archive and base backups of one cluster attempt."""
    backup = plan.target.backup
    if backup is None:
        raise ConfigError(f"the plan has no backup target for {app.name}",
                          hint="plan with --backup-s3 s3://bucket/prefix")  # fmt: skip
    return destination(backup).child(server_name(plan, app))
