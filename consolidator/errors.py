"""One exception tree and one exit-code table for every face of the tool.

Core code raises these; the CLI maps them to exit codes with :func:`exit_code_for` and prints
``message`` plus ``hint`` on one or two lines, never a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (README "Exit codes")."""

    OK = 0
    FAILED = 1
    USAGE = 3
    REFUSED = 4
    CONNECTION = 5
    INTERRUPTED = 130


class ConsolidatorError(Exception):
    """Base of every error the tool reports to a user.

    ``message`` names the object; ``hint`` says how to fix it.
    """

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(ConsolidatorError):
    """Bad command line, bad option value or a malformed plan file."""

    exit_code = ExitCode.USAGE


class PlanValidationError(ConfigError):
    """A plan file that does not validate; ``path`` is the key path (``apps[2].sizing.memory``)."""

    def __init__(self, path: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message, hint=hint)
        self.path = path


class PreconditionError(ConsolidatorError):
    """Refused: stale plan, missing privilege, target not empty, server not ready."""

    exit_code = ExitCode.REFUSED


class ConnectionFailure(ConsolidatorError):
    """Cannot reach or authenticate to a server (source, target, Kubernetes API)."""

    exit_code = ExitCode.CONNECTION


class StepFailed(ConsolidatorError):
    """A step of the work failed at run time."""

    exit_code = ExitCode.FAILED


class Interrupted(ConsolidatorError):
    """The user interrupted the run (SIGINT)."""

    exit_code = ExitCode.INTERRUPTED


def exit_code_for(exc: BaseException) -> ExitCode:
    """Map any exception to the documented exit code; unknown errors are failures."""
    if isinstance(exc, ConsolidatorError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED
