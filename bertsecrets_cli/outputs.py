"""Every file the project writes goes through here: exclusive temporaries, checked destinations, no-replace commits.

The rules (what coreutils ``install``, rsync and sqlite do, for a shared scratch folder anyone may write):

- the temporary is created in the destination's own folder with O_CREAT|O_EXCL|O_NOFOLLOW under an
  unpredictable name (``tempfile.mkstemp``), so a planted symlink or file can never be written through;
  its name ``.<name>.<random>.<pid>.tmp`` lets the next writer of the same output delete it once its
  process is gone (a SIGKILL cannot clean up);
- every output is checked before any work (``check_output``): a folder, a missing or read-only folder, an
  existing file without ``--force``, or something that is not a regular file (a device, a socket) is refused
  with one line; a FIFO or the process's own standard output is *written through* (like ``-o -``);
- the commit renames the temporary into place without replacing a destination that appeared meanwhile
  (renameat2 RENAME_NOREPLACE, else a hard link), unless the output was checked with ``--force``: of two
  runs writing the same output, exactly one wins and the other ends with exit 6 and one line.

This module imports nothing of the package but ``errors`` (any layer may use it).
"""

from __future__ import annotations

import ctypes
import errno
import io
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from bertsecrets_cli.errors import OutputError

# how each checked output may be committed: "replace" (--force, or the output existed and --force was given),
# "new" (never replace), "through" (a FIFO or standard output: the bytes are copied into it)
_CHECKED: dict[str, str] = {}


def _key(path: str | Path) -> str:
    return os.path.abspath(path)


def os_error(path: str | Path, e: OSError) -> OutputError:
    """The one line for an OSError while writing the user's output ``path`` (exit 6)."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"{path}: no space left on the device (or quota exceeded); nothing was written")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"{path}: cannot write here (permission denied or read-only)")
    return OutputError(f"{path}: cannot write: {e.strerror or e}")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISFIFO, "a FIFO")):
        if test(mode):
            return name
    return "not a regular file"


def _is_stdout(st: os.stat_result) -> bool:
    try:
        so = os.fstat(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return (so.st_dev, so.st_ino) == (st.st_dev, st.st_ino)


def check_output(path: str | Path, *, force: bool = False, what: str = "output") -> Path:
    """Refuse an output that cannot or may not be written, before any work; remember how to commit it."""
    p = Path(path)
    try:
        st = os.stat(p)  # follows a symlink: what the user's name designates
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OutputError(f"{p}: cannot check the {what}: {e.strerror or e}") from e
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{p}: is a folder; give a file name for the {what}")
    if st is not None and (stat.S_ISFIFO(st.st_mode) or _is_stdout(st)):
        _CHECKED[_key(p)] = "through"  # a pipe, or this process's own standard output (/dev/stdout): written like -o -
        return p
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{p}: is {_kind(st.st_mode)}, not a regular file; it is never replaced (--force included): "
                          "write the output to a file, or to - for standard output")
    if st is None and os.path.islink(p):
        raise OutputError(f"{p}: is a symbolic link to a missing file; remove it or write the output elsewhere")
    if st is not None and not force:
        raise OutputError(f"{p}: exists; pass --force to replace it (it is replaced only when the new one is complete)")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{p}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{p}: cannot write in folder {parent} (permission denied or read-only)")
    _CHECKED[_key(p)] = "replace" if force else "new"
    return p


def mode_of(path: str | Path) -> str:
    """'new', 'replace' or 'through' as decided by check_output; 'replace' for a file never checked (inside an output folder)."""
    return _CHECKED.get(_key(path), "replace")


# ------------------------------------------------------------------------------------------ temporaries


def _temp_prefix(dest: Path) -> str:
    return f".{dest.name}."


def create_temporary(dest: str | Path) -> tuple[int, Path]:
    """(fd, path) of a new empty file next to ``dest``: O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, unpredictable name."""
    d = Path(dest)
    folder = d.parent if str(d.parent) else Path(".")
    if mode_of(d) == "through":
        folder = Path(tempfile.gettempdir())
    try:
        fd, name = tempfile.mkstemp(prefix=_temp_prefix(d), suffix=f".{os.getpid()}.tmp", dir=folder)
    except OSError as e:
        raise os_error(d, e) from e
    return fd, Path(name)


def _pid_of(tmp_name: str, prefix: str) -> int | None:
    """The writer's pid in ``.<name>.<random>.<pid>.tmp`` (or the older ``.<name>.<pid>.tmp``), else None."""
    if not (tmp_name.startswith(prefix) and tmp_name.endswith(".tmp")):
        return None
    middle = tmp_name[len(prefix):-4].split(".")
    if len(middle) == 1 and middle[0].isdigit():
        return int(middle[0])
    if len(middle) == 2 and middle[1].isdigit() and len(middle[0]) == 8:
        return int(middle[1])
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(dest: str | Path) -> list[Path]:
    """Delete the temporaries of ``dest`` whose writer's process is gone (SIGKILLed); never a live writer's."""
    d = Path(dest)
    folder = d.parent if str(d.parent) else Path(".")
    prefix = _temp_prefix(d)
    removed = []
    for p in _left_by_dead_processes(folder, lambda name: _pid_of(name, prefix)):
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _left_by_dead_processes(folder: str | Path, pid_of: Callable[[str], int | None]) -> list[Path]:
    """The entries of ``folder`` whose name carries (``pid_of``) the pid of a process that is gone, not ours."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    dead = []
    for name in names:
        pid = pid_of(name)
        if pid is not None and pid != os.getpid() and not _pid_alive(pid):
            dead.append(Path(folder) / name)
    return dead


def remove_dead_spools(folder: str | Path, prefix: str, suffix: str) -> list[Path]:
    """Delete ``<prefix><random>.<pid><suffix>`` files and folders in ``folder`` whose process is gone: the
    standard-input and standard-output spools of a run that was SIGKILLed (it could not remove its own)."""
    def pid_of(name: str) -> int | None:
        if not (name.startswith(prefix) and name.endswith(suffix)):
            return None
        pid = name[len(prefix):len(name) - len(suffix)].rpartition(".")[2]
        return int(pid) if pid.isdigit() else None

    removed = []
    for p in _left_by_dead_processes(folder, pid_of):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


# ------------------------------------------------------------------------------------------ commit

_RENAME_NOREPLACE = 1
_libc: Any = None


def _renameat2(src: str, dst: str) -> bool:
    """rename without replacing; True if done, False if renameat2 is not available here (EEXIST raises)."""
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.renameat2  # noqa: B018 - glibc >= 2.28
        except (OSError, AttributeError):
            _libc = False
    if not _libc:
        return False
    at_fdcwd = -100
    rc = _libc.renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), _RENAME_NOREPLACE)
    if rc == 0:
        return True
    e = ctypes.get_errno()
    if e in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # the file system cannot (NFS, some FUSE)
        return False
    raise OSError(e, os.strerror(e), dst)


def rename_noreplace(src: str | Path, dest: str | Path) -> None:
    """Rename ``src`` (a file or a folder) to ``dest`` unless ``dest`` exists: OutputError (exit 6) if it does."""
    try:
        if not _renameat2(str(src), str(dest)):
            if os.path.lexists(dest):  # no renameat2 here (NFS): the last check, then rename
                raise FileExistsError(errno.EEXIST, "exists", str(dest))
            os.rename(src, dest)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise appeared(dest) from None
        raise os_error(dest, e) from e


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def appeared(dest: str | Path) -> OutputError:
    return OutputError(f"{dest}: was created by someone else while this command ran (another run writing the same output?); "
                       "it was left as it is and this result was not kept; pass --force to replace it")


def _copy_through(tmp: Path, dest: Path) -> None:
    """A FIFO or standard output: its bytes are copied into it (no O_CREAT: nothing new may appear)."""
    fd = os.open(dest, os.O_WRONLY | os.O_NOCTTY)
    try:
        with open(tmp, "rb") as src, os.fdopen(fd, "wb", closefd=False) as out:
            shutil.copyfileobj(src, out, 1 << 20)
    finally:
        os.close(fd)
    tmp.unlink(missing_ok=True)


def commit(tmp: str | Path, dest: str | Path, *, mode: str | None = None) -> Path:
    """Make the complete temporary ``tmp`` appear as ``dest``; OutputError (exit 6) if that is not allowed now.

    The caller has fsynced the temporary. It gets the permissions a new file would have (mkstemp's are 0600).
    """
    t, d = Path(tmp), Path(dest)
    how = mode or mode_of(d)
    try:
        if how == "through":
            _copy_through(t, d)
            return d
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(t, 0o666 & ~umask)
        if how == "replace":
            if os.path.lexists(d) and not (os.path.islink(d) or stat.S_ISREG(os.lstat(d).st_mode)):
                raise OutputError(f"{d}: became {_kind(os.lstat(d).st_mode)} while this command ran; it was not replaced")
            os.replace(t, d)
        elif not _renameat2(str(t), str(d)):
            try:
                os.link(t, d)  # fails with EEXIST: never replaces
            except OSError as e:
                if e.errno == errno.EEXIST:
                    raise
                if os.path.lexists(d):  # no hard links here (FAT, some FUSE): the last check before replacing
                    raise FileExistsError(errno.EEXIST, "exists", str(d)) from e
                os.replace(t, d)
            else:
                t.unlink()
    except FileExistsError:
        raise appeared(d) from None
    except OSError as e:
        if e.errno == errno.EEXIST:
            raise appeared(d) from None
        raise os_error(d, e) from e
    finally:
        if os.path.lexists(t) and how != "through":
            t.unlink(missing_ok=True)
    _fsync_dir(d.parent if str(d.parent) else Path("."))
    return d


# ------------------------------------------------------------------------------------------ whole files


class _TrackedFile(io.FileIO):
    """Remembers a failed write: torch.save and others turn ENOSPC into their own RuntimeError, which must
    still end as the one 'no space left' line."""

    error: OSError | None = None

    def write(self, b: Any) -> int:  # type: ignore[override]
        try:
            return super().write(b)
        except OSError as e:
            self.error = e
            raise


@contextmanager
def writing(dest: str | Path, *, text: bool = False, mode: str | None = None) -> Iterator[IO[Any]]:
    """A file object on an exclusive temporary; on leaving the block without an exception it is fsynced and
    committed to ``dest``; on an exception (or a failed commit) nothing is left behind."""
    d = Path(dest)
    remove_stale_temporaries(d)
    fd, tmp = create_temporary(d)
    try:
        raw = _TrackedFile(fd, "wb")
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    buffered = io.BufferedWriter(raw, 1 << 16)
    fh: IO[Any] = io.TextIOWrapper(buffered, encoding="utf-8", newline="") if text else buffered
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(raw.fileno())
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise os_error(d, e) from e
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if raw.error is not None and not isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise os_error(d, raw.error) from e
        raise
    commit(tmp, d, mode=mode)


def write_bytes(dest: str | Path, data: bytes, *, mode: str | None = None) -> int:
    with writing(dest, mode=mode) as fh:
        fh.write(data)
    return len(data)


def write_text(dest: str | Path, text: str, *, mode: str | None = None) -> int:
    return write_bytes(dest, text.encode("utf-8"), mode=mode)


def private_folder(folder: str | Path, *, parents: bool = False) -> Path:
    """Create (or reuse) a working folder of this tool (parts, checkpoints): never a symlink planted in its place,
    never someone else's folder, so that nothing is written through it into another place."""
    f = Path(folder)
    try:
        f.mkdir(parents=parents, exist_ok=True)
        st = os.lstat(f)
    except OSError as e:
        raise os_error(f, e) from e
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{f}: is {'a symbolic link' if stat.S_ISLNK(st.st_mode) else _kind(st.st_mode)}, not this tool's working "
                          "folder; remove it (nothing is written through it)")
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise OutputError(f"{f}: belongs to another user; remove it or write the output elsewhere")
    return f
