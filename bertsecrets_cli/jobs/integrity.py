"""What the command line needs of store/ to keep reads honest, without reaching into it (docs/architecture.md).

Validation of the stores a command reads (on by default; ``--no-validate`` turns it off), the diagnosis of an
HDF5 failure that escaped a job, and the name '-' for the spool file of standard input.
"""

from __future__ import annotations

from pathlib import Path

from bertsecrets_cli.errors import BertsecretsError


def set_validation(enabled: bool | None) -> None:
    """False: readers trust stores until reset with None (back to the BERTSECRETS_NO_VALIDATE default)."""
    from bertsecrets_cli.store.validation import set_validation as store_set

    store_set(enabled)


def explain_os_error(exc: OSError) -> BertsecretsError | None:
    """The one-line error for an OSError raised inside h5py, from the state of the stores read; None for other OSErrors."""
    from bertsecrets_cli.store.failures import explain_os_error as store_explain

    return store_explain(exc)


def name_spool_file(real: str | Path, shown: str = "-") -> None:
    """Messages about ``real`` (a spooled copy of standard input) name it ``shown``."""
    from bertsecrets_cli.store.failures import register_alias

    register_alias(real, shown)
