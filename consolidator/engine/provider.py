"""Target providers: where an app's cluster lives (local instances, CloudNativePG on Kubernetes).

The engine talks to every provider through this one small interface and never knows which one it
drives. Methods are idempotent: calling ``provision`` for a cluster that exists returns it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from consolidator.errors import ConfigError
from consolidator.plan.model import App, Plan


@dataclass
class TargetHandle:
    """How the engine reaches a provisioned target: admin conninfo without password + passfile."""

    cluster: str
    conninfo: str  # superuser, database "postgres"; the password lives in ``passfile``
    passfile: str | None
    major: int
    superuser: str = "postgres"
    app_conninfo: str | None = None  # what applications should use after the switch


def standby_name(app: App) -> str:
    """The application_name a standby of ``app`` streams with (how the source lists it)."""
    return f"consolidator-{app.cluster_name}"


class Provider(ABC):
    """Create, reach, promote and remove one target cluster per app.

    Critical (data-affecting): ``provision``, ``provision_standby``, ``promote``, ``teardown``.
    Read-only: ``describe``.
    """

    name: str = "abstract"
    #: Whether a standby's replication connection to the source starts on this machine (local instances),
    #: so a replication connection opened from here is a faithful pre-check; False when it starts elsewhere.
    standby_connects_from_here: bool = True

    @abstractmethod
    def provision(self, plan: Plan, app: App) -> TargetHandle:
        """Create the cluster from the app's sizing and wait until it accepts connections."""

    def provision_standby(
        self, plan: Plan, app: App, source_dsn: str, *, progress: Callable[[int, int], None] | None = None
    ) -> TargetHandle:
        """Build the cluster as a streaming standby of the whole source (physical strategy), streaming on return.

        The clone has the source's roles and passwords, so the handle logs in as the source DSN's
        superuser. ``progress(done_bytes, total_bytes)`` follows the base backup. A standby already
        there is reused.
        """
        raise ConfigError(f"provider {self.name} cannot build standbys",
                          hint="use the dump or logical strategy for this app, or the local provider")  # fmt: skip

    @abstractmethod
    def describe(self, plan: Plan, app: App) -> TargetHandle | None:
        """The handle of an existing cluster, or None when it was never provisioned."""

    @abstractmethod
    def wait_ready(self, plan: Plan, app: App, timeout: float = 120) -> TargetHandle:
        """Block until the cluster accepts connections (starting it when stopped)."""

    @abstractmethod
    def promote(self, plan: Plan, app: App) -> None:
        """Make a standby target a primary (physical strategy)."""

    @abstractmethod
    def teardown(self, plan: Plan, app: App) -> bool:
        """Stop and remove the cluster; True when something was removed."""

    def cores(self, plan: Plan, app: App) -> int:
        """CPU cores the app's target may use (what the engine's parallelism should not exceed)."""
        from consolidator.sizing.quantity import parse_cpu

        try:
            return max(1, int(parse_cpu(str(app.sizing.cpu.value))))
        except ValueError:
            return 1

    def diagnose(self, plan: Plan, app: App) -> str:
        """After a failed step: what is wrong with the cluster itself (down, disk full…), or ''.
        Read-only and best effort; the engine adds it to the step's error."""
        return ""

    # -- run-wide hooks and the switch; the defaults do nothing (local targets use shell hooks only)

    def preflight(self, plan: Plan, apps: list[App]) -> list[str]:
        """Before any app runs: raise (listing every problem) when the target cannot take them; else
        what is worth reporting."""
        return []

    def pause_traffic(self, plan: Plan, app: App) -> list[str]:
        """At the fence: hold the app's new connections (a Pooler's PAUSE); returns what was done."""
        return []

    def resume_traffic(self, plan: Plan, app: App) -> list[str]:
        """After the switch, or on rollback: let connections through again; idempotent."""
        return []

    def switch_app(self, plan: Plan, app: App, target: TargetHandle) -> list[str]:
        """Point the app at its target (provider-side switch hooks); returns what was done, never a value.

        Idempotent: a resumed cutover neither applies a change twice nor loses what rollback restores."""
        return []

    def revert_switch(self, plan: Plan, app: App) -> list[str]:
        """Undo ``switch_app`` (rollback); a no-op when nothing was switched."""
        return []

    def finalize(self, plan: Plan, app: App) -> list[str]:
        """The migration of ``app`` is over (no rollback any more): drop what only the migration needed on
        the target side — rollback records, migration-only privileges; returns what was done."""
        return []

    def close(self) -> None:
        """Release what the provider holds for the run (port-forwards…); harmless to call twice."""
        return None

    def source_access(self, plan: Plan, app: App, *, host: str, port: str, user: str,
                      password: str | None) -> dict[str, str]:  # fmt: skip
        """libpq parameters with which the *target server* reaches the source (a subscription's
        connection): the address it uses and a ``passfile`` it can read — never the password itself.
        ``host``/``port``/``user``/``password``: the source as this machine reaches it."""
        raise ConfigError(f"provider {self.name} cannot give its targets access to the source",
                          hint="use the dump strategy for this app")  # fmt: skip


def provider_for(plan: Plan, plan_dir: Path | None = None) -> Provider:
    """The provider a plan asks for; lists the available ones when unknown.

    ``plan_dir`` is where the plan lives: local targets default to ``<plan_dir>/targets`` and the
    cnpg provider keeps its passfiles in ``<plan_dir>/work/`` (a private temp dir without one).
    """
    from consolidator.engine.cnpg import CnpgProvider
    from consolidator.engine.local import LocalProvider

    def local() -> Provider:
        root = Path(plan.target.local_root) if plan.target.local_root else (plan_dir or Path.cwd()) / "targets"
        return LocalProvider(root)

    providers: dict[str, Callable[[], Provider]] = {"local": local, "cnpg": lambda: CnpgProvider(plan_dir)}
    try:
        factory = providers[plan.target.provider]
    except KeyError:
        raise ConfigError(
            f"target provider {plan.target.provider!r} cannot execute plans yet",
            hint="available: " + ", ".join(sorted(providers)),
        ) from None
    return factory()
