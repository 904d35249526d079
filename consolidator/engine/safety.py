"""The optional safety net (``execute --safety-dump``): a ``pg_dump -Fc`` of each source database in the
plan's S3 backup store before the app is fenced, recorded in the journal with its size and sha256.

Taken before anything changes on the source, so whatever happens later there is one restorable copy
of each database as it was, outside both servers. Idempotent: a database already recorded is not
dumped again on resume.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from consolidator.engine.run import AppRun
from consolidator.errors import ConfigError
from consolidator.events import emit
from consolidator.report.format import human_bytes, human_duration

NO_STORE_HINT = "plan with --backup-s3 s3://bucket/prefix (and --backup-endpoint for Ceph RGW or MinIO)"


def require_store(plan: object) -> None:
    """``--safety-dump`` needs the plan's S3 backup target; refuse before anything runs."""
    if getattr(getattr(plan, "target", None), "backup", None) is None:
        raise ConfigError("--safety-dump needs an S3 backup target in the plan", hint=NO_STORE_HINT)


def take_safety_dumps(run: AppRun) -> None:
    """Dump each of the app's source databases not yet recorded, into ``<prefix>/safety/<cluster>/``."""
    from consolidator.s3.client import endpoint_url
    from consolidator.s3.location import parse_s3_url
    from consolidator.s3.safety import dump_to_s3, safety_key

    backup = run.plan.target.backup
    if backup is None:
        raise ConfigError(f"app {run.app.name}: a safety dump needs an S3 backup target", hint=NO_STORE_HINT)
    location = parse_s3_url(backup.destination_path)
    endpoint = endpoint_url(backup.endpoint_url)
    for db in run.app.databases:
        if db.source in run.journal.app(run.app.name).safety_dumps:
            continue
        emit(run.sink, "log", f"{run.app.name}: safety dump of {db.source!r} to {location.url}")
        record = dump_to_s3(run.source_dsn, db.source, location, safety_key(location, run.app.cluster_name, db.source),
                            endpoint=endpoint)  # fmt: skip
        entry = {**asdict(record), "url": record.url, "seconds": round(record.seconds, 3)}
        run.journal.update(lambda s, name=db.source, e=entry: s.apps[run.app.name].safety_dumps.__setitem__(name, e))
        emit(run.sink, "log", f"{run.app.name}: safety dump {record.url}: {human_bytes(record.bytes)}, sha256 "
             f"{record.sha256[:16]}…, {human_duration(record.seconds)}", database=db.source, url=record.url,
             bytes=record.bytes, sha256=record.sha256)  # fmt: skip


def recorded_safety_dumps(plan_dir: Path) -> dict[str, dict[str, Any]] | None:
    """app → source database → the safety dump the journal recorded (None without a journal): what the
    report shows."""
    from consolidator.engine.journal import Journal

    journal = Journal.load(plan_dir)
    return {name: state.safety_dumps for name, state in journal.state.apps.items()} if journal else None
