"""The one rule that keeps a command from destroying what it reads: no output may be one of its inputs.

``cli.common.run`` applies it before any work, for every command that writes, to the outputs and the inputs
(stores, data files and folders, model folders, label files) it is given. Two names are the same file when
their resolved paths agree (``./x``, ``../d/x``, symlinks) or when they share (device, inode) (hard links);
``--force`` does not lift it. An output folder may not hold an input (it is replaced or filled), and an
existing file inside an input folder may be replaced only if it is a store or a figure (never the data or
model files the command reads). ``-`` as an output is standard output: refused when it is redirected into
an input file.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable

from bertsecrets_cli.errors import OutputError

_HDF5 = b"\x89HDF\r\n\x1a\n"
_FIGURES = (".png", ".svg", ".pdf")


def _existing(inputs: Iterable[str | None]) -> list[str]:
    """The inputs that name something on disk ('embedded', hub ids and '-' do not)."""
    return [i for i in inputs if i and i != "-" and os.path.lexists(i)]


def _same(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # (st_dev, st_ino): hard links
    except OSError:
        return False


def _inside(child: str, folder: str) -> bool:
    c, f = os.path.realpath(child), os.path.realpath(folder)
    return c != f and c.startswith(f.rstrip(os.sep) + os.sep)


def _replaceable(path: str) -> bool:
    """An existing file a command may replace inside an input folder: a store or a figure it wrote before."""
    if path.lower().endswith(_FIGURES):
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == _HDF5
    except OSError:
        return False


def _what(path: str) -> str:
    """'store', 'folder' or 'file': for the message."""
    if os.path.isdir(path):
        return "folder"
    try:
        with open(path, "rb") as fh:
            return "store" if fh.read(8) == _HDF5 else "file"
    except OSError:
        return "file"


def _stdout_is(inputs: list[str]) -> str | None:
    try:
        st = os.fstat(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # not a real file (a test runner's buffer)
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    for i in inputs:
        try:
            si = os.stat(i)
        except OSError:
            continue
        if (si.st_dev, si.st_ino) == (st.st_dev, st.st_ino):
            return i
    return None


def refuse_inputs_as_outputs(outputs: Iterable[str | None], inputs: Iterable[str | None]) -> None:
    """Raise OutputError (exit 6) if an output would replace, or be written over, one of the inputs."""
    ins = _existing(inputs)
    for out in outputs:
        if not out:
            continue
        if out == "-":
            hit = _stdout_is(ins)
            if hit is not None:
                raise OutputError(f"-: standard output is redirected into {hit}, an input of this command; redirect it to another file")
            continue
        for i in ins:
            if _same(out, i):
                raise OutputError(f"{out}: is {i}, an input {_what(i)} of this command (the same {'folder' if os.path.isdir(i) else 'file'}"
                                  + ("" if os.path.normpath(out) == os.path.normpath(i) else ", by another name or a link")
                                  + "); write the output to another file (--force never replaces an input)")
            if _inside(i, out):
                raise OutputError(f"{out}: holds the input {i}; writing this output there would replace it: choose another output")
            if os.path.isdir(i) and _inside(out, i) and os.path.isfile(out) and not _replaceable(out):
                raise OutputError(f"{out}: is a file inside the input folder {i}, which this command reads; write the output elsewhere")
