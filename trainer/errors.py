"""Errors the trainer reports to users: what is wrong, what to do, and the exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3


class TrainerError(Exception):
    """An error with a user-facing message `<what is wrong>: <what to do>` and an exit code."""

    exit_code = EXIT_RUN_FAILED

    def __init__(self, what: str, todo: str = "") -> None:
        self.what = what
        self.todo = todo
        super().__init__(f"{what}: {todo}" if todo else what)


class DataError(TrainerError, ValueError):
    """The training table cannot be used (missing target, non-numeric feature, NaN, ...)."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(TrainerError, ValueError):
    """The YAML config or a command-line option is invalid."""

    exit_code = EXIT_BAD_INPUT


class RegistryError(TrainerError):
    """The registry is not in a state the command can act on (no such model, no previous alias)."""

    exit_code = EXIT_BAD_INPUT


class TrackingUnreachable(TrainerError):
    """The tracking server does not answer its health check."""

    exit_code = EXIT_UNREACHABLE


class RunFailed(TrainerError):
    """A candidate failed to fit, evaluate, log or validate; no alias was moved."""

    exit_code = EXIT_RUN_FAILED
