"""Error types and the documented exit codes of every command.

The CLI turns a raised ``BertsecretsError`` into one line on stderr and its exit code; anything
else is an internal error (exit 1) whose traceback only ``--debug`` shows.
"""

from __future__ import annotations

# Documented exit codes (docs/guide/conventions.md, "Exit codes"). 2 is click/typer's usage error.
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3  # bad data file, bad option value, unknown task/head
EXIT_STORE = 4  # not a store, truncated, wrong schema/version, incomplete, corrupt
EXIT_MODEL = 5  # model cannot be found, fetched or used
EXIT_OUTPUT = 6  # output exists, cannot be written, disk full
EXIT_INTERRUPTED = 75  # SIGTERM/SIGINT: partial work kept, rerun with --resume (EX_TEMPFAIL)


class BertsecretsError(Exception):
    """An expected failure: reported as one line, never with a traceback."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class InputError(BertsecretsError):
    exit_code = EXIT_INPUT


class StoreError(BertsecretsError):
    exit_code = EXIT_STORE


class ModelError(BertsecretsError):
    exit_code = EXIT_MODEL


class OutputError(BertsecretsError):
    exit_code = EXIT_OUTPUT


class Interrupted(BertsecretsError):
    exit_code = EXIT_INTERRUPTED
