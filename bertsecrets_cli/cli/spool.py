"""``-`` as a store path: HDF5 needs seek(), so pipes go through a spooled temporary file."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bertsecrets_cli.errors import InputError
from bertsecrets_cli.outputs import remove_dead_spools

# spools are named <prefix><random>.<pid>[.h5], so that the next run can remove those of a run that was killed
STDIN_PREFIX = "bertsecrets-stdin-"
STDOUT_PREFIX = "bertsecrets-stdout-"


@contextmanager
def input_path(path: str) -> Iterator[str]:
    """Yield a real file path for ``path``; ``-`` copies standard input to a temporary file first."""
    if path != "-":
        yield path
        return
    if sys.stdin is None or sys.stdin.isatty():
        raise InputError("-: standard input is a terminal; pipe a store into it (… -o - | bertsecrets CMD -)")
    remove_dead_spools(tempfile.gettempdir(), STDIN_PREFIX, ".h5")  # a SIGKILLed run's spool: nobody else removes it
    fd, tmp = tempfile.mkstemp(prefix=STDIN_PREFIX, suffix=f".{os.getpid()}.h5")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
        if os.path.getsize(tmp) == 0:
            raise InputError("-: standard input is empty (did the command before the pipe fail?)")
        from bertsecrets_cli.jobs.integrity import name_spool_file

        name_spool_file(tmp, "-")  # messages about the spool file name '-', what the user typed
        yield tmp
    finally:  # the alias stays: an error reported after this block still names '-'
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def output_path(path: str) -> Iterator[str]:
    """Yield a file path to write; for ``-`` a temporary file copied to standard output on success."""
    if path != "-":
        yield path
        return
    remove_dead_spools(tempfile.gettempdir(), STDOUT_PREFIX, "")
    tmpdir = tempfile.mkdtemp(prefix=STDOUT_PREFIX, suffix=f".{os.getpid()}")
    tmp = os.path.join(tmpdir, "store.h5")
    try:
        yield tmp
        if os.path.exists(tmp):
            with open(tmp, "rb") as fh:
                shutil.copyfileobj(fh, sys.stdout.buffer, 1 << 20)
            sys.stdout.buffer.flush()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
