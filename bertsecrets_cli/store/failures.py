"""Why an HDF5 file cannot be opened or read, decided from the exception's type and the file's own state.

h5py's messages are HDF5's internal wording (a truncated file's mentions "sblock", which once read as
"lock"): they are never matched here. Instead: the signature, the superblock's end-of-file address against
the file's size, the errno of the exception, and a probe of the file lock decide which one line the user sees.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from pathlib import Path
from types import TracebackType

from bertsecrets_cli.errors import BertsecretsError, InputError, StoreError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# HDF5 looks for its superblock at 0, 512, 1024, 2048, ... (a user block may come first)
_SEARCH = (0, 512, 1024, 2048, 4096, 8192)
_UNDEFINED = (1 << 64) - 1

# '-' spooled to a temporary file: the user's name for it (cli.spool registers it)
_ALIASES: dict[str, str] = {}


def register_alias(real: str | Path, shown: str) -> None:
    _ALIASES[os.path.abspath(real)] = shown


def shown(path: str | Path) -> str:
    """The name the user gave: '-' for standard input's spool file, else the path itself."""
    return _ALIASES.get(os.path.abspath(path), str(path))


def superblock(path: str | Path) -> tuple[int, int, int] | None:
    """(offset of the superblock, base address, end-of-file address) from the file's header; None if none is found."""
    try:
        with open(path, "rb") as fh:
            for at in _SEARCH:
                fh.seek(at)
                head = fh.read(64)
                if head[:8] != HDF5_SIGNATURE:
                    continue
                if len(head) < 12:
                    return None
                version = head[8]
                if version in (0, 1):
                    size_o = head[13]
                    start = 24 + (4 if version == 1 else 0)
                    fields = 4  # base, free-space, end of file, driver info
                    eof_index = 2
                elif version in (2, 3):
                    size_o = head[9]
                    start = 12
                    fields = 4  # base, superblock extension, end of file, root object header
                    eof_index = 2
                else:
                    return None
                if size_o not in (2, 4, 8) or len(head) < start + fields * size_o:
                    return None
                fmt = {2: "<H", 4: "<I", 8: "<Q"}[size_o]
                addr = [struct.unpack_from(fmt, head, start + k * size_o)[0] for k in range(fields)]
                return at, addr[0], addr[eof_index]
    except OSError:
        return None
    return None


def _locked(path: str | Path) -> bool:
    """Whether another process holds a lock that HDF5's shared lock would conflict with."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def file_state(path: str | Path) -> str | None:
    """A problem visible in the file itself (unreadable, empty, no signature, truncated), or None."""
    name = shown(path)
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            fh.read(1)
    except PermissionError:
        return f"{name}: cannot read the file (permission denied)"
    except OSError as e:
        return f"{name}: cannot read the file ({e.strerror or type(e).__name__})"
    if size == 0:
        return f"{name}: not an HDF5 file (it is empty)"
    sb = superblock(p)
    if sb is None:
        return f"{name}: not an HDF5 file (no HDF5 signature at its start)"
    at, base, eof = sb
    if eof != _UNDEFINED and size < at + base + eof:
        return (f"{name}: truncated: the file has {size} bytes, its HDF5 header says {at + base + eof} "
                "(an interrupted copy or download?); copy it again or rerun the command that wrote it")
    return None


def open_failure(path: str | Path, exc: OSError) -> BertsecretsError:
    """The one-line error for h5py failing to open ``path`` for reading."""
    name = shown(path)
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        return InputError(f"{name}: cannot read the file (permission denied)")
    locked = isinstance(exc, BlockingIOError) or exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOLCK)
    state = None if locked else file_state(path)
    if state is not None:
        return StoreError(state)
    if locked or _locked(path):
        return StoreError(f"{name}: cannot lock the file (another process is writing it, or the file system has no locks)",
                          hint="pass --no-locking or set BERTSECRETS_NO_LOCKING=1 if nothing writes it")
    return StoreError(f"{name}: cannot be read as HDF5: its internal structure is damaged; run bertsecrets check on a good copy")


def read_failure(path: str | Path, what: str) -> StoreError:
    """The one-line error for h5py failing to read ``what`` of an open store (a failed checksum, a damaged chunk)."""
    state = file_state(path)
    if state is not None:
        return StoreError(state)
    return StoreError(f"{shown(path)}: stored data of {what} cannot be read back (failed checksum or I/O error): the file is corrupt; "
                      "run bertsecrets check on it")


def raised_by_h5py(tb: TracebackType | None) -> bool:
    """Whether the innermost frame of a traceback is h5py's (an HDF5 failure, whatever its message)."""
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return False
    mod = last.tb_frame.f_globals.get("__name__", "")
    return mod == "h5py" or mod.startswith("h5py.")


def explain_os_error(exc: OSError) -> BertsecretsError | None:
    """An OSError that escaped a command: if HDF5 raised it, the error for the stores this process read; else None."""
    if not raised_by_h5py(exc.__traceback__):
        return None
    reader = sys.modules.get("bertsecrets_cli.store.reader")
    paths = reader.recently_opened() if reader is not None else []
    for p in reversed(paths):
        state = file_state(p) if os.path.exists(p) else None  # a spool file of '-' is gone by now
        if state is not None:
            return StoreError(state)
    named = " or ".join(shown(p) for p in paths) if paths else "a store"
    return StoreError(f"{named}: stored data cannot be read back (failed checksum or I/O error): the file is corrupt; run bertsecrets check on it")
