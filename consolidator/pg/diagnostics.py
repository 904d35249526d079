"""Turn a server error into one line and a fix: the SQLSTATE says more than the message's first line.

A full disk, for instance, arrives as "could not extend file …: wrote only 4096 of 8192 bytes" —
true, but the user needs "the disk is full" and what to do about it.
"""

from __future__ import annotations

import psycopg

from consolidator.pg.connect import redact

# SQLSTATE (or its two-character class) → what it means for the user and what to do, before ``retry``.
FIXES = {
    "53100": ("disk full", "free space on that server's disk or grow its storage, then {retry}"),
    "53200": ("out of memory", "give the server more memory or lower --jobs, then {retry}"),
    "53300": ("too many connections", "raise max_connections or lower --jobs, then {retry}"),
    "57P01": ("the server shut down", "start it again, then {retry}"),
    "57P02": ("the server crashed", "see its log, start it again, then {retry}"),
    "57P03": ("the server is not accepting connections yet", "wait until it is up, then {retry}"),
    "42501": ("permission denied", "grant the privilege or run as a superuser, then {retry}"),
    "08": ("connection lost", "check that the server is up and reachable, then {retry}"),
}


def explain(exc: psycopg.Error, retry: str = "execute --resume") -> tuple[str, str]:
    """(message, hint): the first line of the error (passwords redacted), what its SQLSTATE means and
    the server's own hint; the hint says how to fix it and carry on with ``retry``."""
    text = str(exc).strip()
    message = redact(text.splitlines()[0]) if text else type(exc).__name__
    state = getattr(exc, "sqlstate", None) or ""
    meaning, fix = FIXES.get(state) or FIXES.get(state[:2]) or ("", "fix the cause, then {retry}")
    if not state and isinstance(exc, psycopg.OperationalError):
        meaning, fix = FIXES["08"]
    if meaning and meaning not in message:
        message = f"{message} ({meaning})"
    diag = getattr(exc, "diag", None)
    server_hint = getattr(diag, "message_hint", None) if diag is not None else None
    hint = fix.format(retry=retry)
    if server_hint:
        hint = f"{redact(server_hint.rstrip('.'))}; {hint}"
    return message, hint
