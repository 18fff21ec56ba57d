"""Every text file the project reads goes through here: one line for every way a file can be unfit.

- only a regular file (or ``-``, standard input) is read: a FIFO that nobody writes would block forever, and
  /dev/zero would fill the memory; the file is opened with O_NONBLOCK and checked with fstat, so a FIFO
  swapped in after the check cannot block either;
- a line longer than ``MAX_LINE`` bytes stops the read with a clear line (a binary file, or the wrong file);
- a UTF-8 byte order mark at the start is dropped (GLUE's MRPC files, Excel's CSV);
- a byte that is not UTF-8 is reported as ``file:line:column: byte 0x..``, a NUL byte likewise (a text
  field cannot hold it, and h5py stores would refuse it later).

Schema errors are the readers' own (``file:line: what was expected``). This module imports nothing of the
package but ``errors`` (any layer may use it).
"""

from __future__ import annotations

import fcntl
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from bertsecrets_cli.errors import InputError

MAX_LINE = 64 << 20  # bytes: a coreference JSONL document is one line; no text line of a data set comes near
BOM = b"\xef\xbb\xbf"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISFIFO, "a FIFO (named pipe)")):
        if test(mode):
            return name
    return "not a regular file"


def check_input_file(path: str | Path, *, what: str = "file") -> Path:
    """A regular file that exists (``-`` passes): else one InputError line."""
    if str(path) == "-":
        return Path("-")
    p = Path(path).expanduser()
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a folder; give a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: is {_kind(st.st_mode)}, not a regular file; save it to a file, or pipe it into '-'")
    return p


@contextmanager
def open_binary(path: str | Path, *, what: str = "file") -> Iterator[IO[bytes]]:
    """The file's bytes (standard input for ``-``), never blocking on a FIFO."""
    if str(path) == "-":
        if sys.stdin is None:
            raise InputError("-: there is no standard input")
        yield sys.stdin.buffer
        return
    p = check_input_file(path, what=what)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        raise InputError(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # swapped after the check
        os.close(fd)
        raise InputError(f"{path}: is {_kind(st.st_mode)}, not a regular file; save it to a file, or pipe it into '-'")
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        yield fh


def decode_line(raw: bytes, name: str, number: int, offset: int = 0) -> str:
    """One line's bytes as text; a NUL or a byte that is not UTF-8 is ``name:line:column: ...``."""
    nul = raw.find(b"\0")
    if nul >= 0:
        raise InputError(f"{name}:{number}:{nul + 1 + offset}: byte 0x00 (NUL): not text; is this the right file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{name}:{number}:{e.start + 1 + offset}: byte 0x{raw[e.start]:02x} is not UTF-8 ({e.reason}); "
                         "save the file as UTF-8") from None


def raw_lines(path: str | Path, *, shown: str | None = None, what: str = "file", max_line: int = MAX_LINE) -> Iterator[tuple[int, str]]:
    """(1-based line number, text of the line with its line ending) for every line, checked as the module says."""
    name = shown or str(path)
    with open_binary(path, what=what) as fh:
        number = 0
        while True:
            raw = fh.readline(max_line + 1)
            if not raw:
                return
            number += 1
            if len(raw) > max_line:
                raise InputError(f"{name}:{number}: line longer than {max_line:,} bytes; is this the right file?")
            offset = 0
            if number == 1 and raw.startswith(BOM):
                raw, offset = raw[len(BOM):], len(BOM)
            yield number, decode_line(raw, name, number, offset)


def text_lines(path: str | Path, *, shown: str | None = None, what: str = "file", max_line: int = MAX_LINE) -> Iterator[tuple[int, str]]:
    """Like raw_lines, without the line ending (\\n or \\r\\n)."""
    for number, line in raw_lines(path, shown=shown, what=what, max_line=max_line):
        yield number, line.rstrip("\n").removesuffix("\r")


def read_text(path: str | Path, *, shown: str | None = None, what: str = "file", max_line: int = MAX_LINE) -> str:
    """The whole file as text (line endings kept), checked line by line as the module says."""
    return "".join(line for _, line in raw_lines(path, shown=shown, what=what, max_line=max_line))
