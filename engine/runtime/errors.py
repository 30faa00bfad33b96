"""The runtime's exceptions: one root, a stable code on each.

Refusals of an *input* (an event not allowed in the current state, a bad
payload...) are not exceptions at this level: the service returns them as an
:class:`engine.runtime.results.Outcome` with ``accepted=False``.  These
exceptions are for calls that cannot be answered at all.
"""

from __future__ import annotations

__all__ = [
    "ClockNotAllowed",
    "DeployRefused",
    "EngineError",
    "EngineLocked",
    "MigrationRefused",
    "NotFound",
    "StoreUnavailable",
]


class EngineError(Exception):
    """Root of the runtime's errors.  ``code`` is stable; ``message`` is for people."""

    code = "engine_error"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class EngineLocked(EngineError):
    """Another engine process holds the SQLite file."""

    code = "engine_locked"


class StoreUnavailable(EngineError):
    """The database URL cannot be parsed or the store cannot be opened (down, not a database)."""

    code = "store_unavailable"


class ClockNotAllowed(EngineError):
    """A virtual clock was given to an engine in production mode."""

    code = "clock_not_allowed"


class NotFound(EngineError):
    """No such instance, contract version, approval or incident."""

    code = "not_found"


class DeployRefused(EngineError):
    """The rule set does not compile; ``diagnostics`` says why (JSON-ready)."""

    code = "deploy_refused"

    def __init__(self, message: str, diagnostics: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics


class MigrationRefused(EngineError):
    """An instance cannot be moved to the requested contract version."""

    code = "migration_refused"
