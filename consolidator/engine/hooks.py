"""Switch hooks: the commands a plan runs to point an app at its new database (and back).

For local targets a hook is a shell command written by the plan's author; it receives the target's
connection details in the environment (never a password: ``PGPASSFILE`` points at the passfile).
"""

from __future__ import annotations

import os
import subprocess

from consolidator.engine.provider import TargetHandle
from consolidator.errors import StepFailed
from consolidator.plan.model import App

HOOK_TIMEOUT = 300


def hook_env(app: App, target: TargetHandle) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(target.conninfo)
    env = {
        "CONSOLIDATOR_APP": app.name,
        "CONSOLIDATOR_CLUSTER": app.cluster_name,
        "CONSOLIDATOR_DATABASES": "\n".join(d.target for d in app.databases),
        "CONSOLIDATOR_TARGET_HOST": str(params.get("host", "")),
        "CONSOLIDATOR_TARGET_PORT": str(params.get("port", "")),
        "CONSOLIDATOR_TARGET_CONNINFO": target.app_conninfo or "",
    }
    if target.passfile:
        env["PGPASSFILE"] = target.passfile
    return env


def run_hooks(app: App, target: TargetHandle, kind: str) -> list[str]:
    """Run the plan's ``hooks[kind]`` commands in order; the first failure stops (and is raised)."""
    commands = app.hooks.get(kind) or []
    if isinstance(commands, str):
        commands = [commands]
    ran: list[str] = []
    env = {**os.environ, **hook_env(app, target)}
    for command in commands:
        try:
            out = subprocess.run(["/bin/sh", "-c", str(command)], env=env, capture_output=True, text=True,
                                 timeout=HOOK_TIMEOUT)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise StepFailed(f"{kind} hook of {app.name} timed out: {command}", hint="fix the hook, then resume") \
                from None  # fmt: skip
        if out.returncode != 0:
            last = (out.stderr or out.stdout).strip().splitlines()[-1:] or [f"exit code {out.returncode}"]
            raise StepFailed(f"{kind} hook of {app.name} failed: {command}: {last[0]}",
                             hint="fix the hook, then execute --resume (or rollback)")  # fmt: skip
        ran.append(str(command))
    return ran
