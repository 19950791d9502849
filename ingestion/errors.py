"""Errors a user can cause. Each message says what was wrong, where, and what to do."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every user-facing error; the CLI prints the message without a traceback."""


class ConfigError(PipelineError):
    """The configuration file or a command-line option is wrong."""


class LandingError(PipelineError):
    """A landing directory or one of its files cannot be read as the canonical format."""


class WarehouseLockedError(PipelineError):
    """Another process holds the DuckDB warehouse for writing."""


class DataQualityError(PipelineError):
    """Input data breaks the contract in a way that must stop the run (exit code 1)."""


class PublishError(PipelineError):
    """The marts were built, but publishing them to a reader's copy failed.

    ``retry`` says whether another try may succeed (a server down, a lock held by a
    dashboard's query) or not (a wrong connection string, a type PostgreSQL lacks).
    """

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry
