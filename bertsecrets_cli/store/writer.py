"""Atomic, streaming, resumable store writers.

A store becomes visible under its final name only when it is complete: it is written under a
hidden temporary name in the same folder, marked complete, fsynced and renamed with
``os.replace``. A killed run therefore never leaves a file that looks complete and never damages an
existing output. Long extractions are written as immutable part files in a hidden
``.<name>.parts/`` folder; ``--resume`` skips the parts already done (engineering.md: a SIGKILLed
HDF5 writer leaves an unreadable file, so nothing is ever resumed from inside one).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli import __version__, outputs
from bertsecrets_cli.errors import OutputError, StoreError
from bertsecrets_cli.store import schema as S

_STR = None  # lazily h5py.string_dtype()


def _h5py() -> Any:
    import h5py

    return h5py


def _str_dtype() -> Any:
    global _STR
    if _STR is None:
        _STR = _h5py().string_dtype("utf-8")
    return _STR


def _os_error(path: Path | str, e: OSError) -> OutputError:
    return outputs.os_error(path, e)


# HDF5 handles whose writes failed (disk full, I/O error): closing or even freeing them makes
# HDF5 retry the failed writes, which crashed the process (SIGSEGV, h5py 3.16 / HDF5 2.0, measured
# on a full tmpfs). They are kept here, never closed; ``cli.common.run`` then ends the process with
# os._exit once the one-line error is printed.
_FAILED_HANDLES: list[Any] = []


def _hdf5_write_failure(e: BaseException) -> bool:
    """An h5py error raised by a failed write of the HDF5 driver (ENOSPC, EIO, ...)."""
    return isinstance(e, (OSError, RuntimeError)) and "file write failed" in str(e)


# Failed writes that HDF5 met while h5py freed an object (a dataset's metadata flushed as it is closed): h5py
# cannot raise them, it prints an 'Exception ignored' traceback per failure. They are recorded here instead
# (a full disk shows up first this way), and the writer treats its file as failed.
_SEEN_FAILURES: list[BaseException] = []
_previous_hook: Any = None


def _record_failed_writes(unraisable: Any) -> None:
    if _hdf5_write_failure(unraisable.exc_value):
        _SEEN_FAILURES.append(unraisable.exc_value)
        return
    (_previous_hook or sys.__unraisablehook__)(unraisable)


def _record_printed_failures(exc_type: Any, exc: BaseException, tb: Any) -> None:
    """Cython prints an error in __dealloc__ with sys.excepthook before it reports it as unraisable."""
    if _hdf5_write_failure(exc):
        _SEEN_FAILURES.append(exc)
        return
    (_previous_excepthook or sys.__excepthook__)(exc_type, exc, tb)


_previous_excepthook: Any = None


def _watch_failed_writes() -> None:
    global _previous_hook, _previous_excepthook
    if sys.unraisablehook is not _record_failed_writes:
        _previous_hook = sys.unraisablehook
        sys.unraisablehook = _record_failed_writes
    if sys.excepthook is not _record_printed_failures:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _record_printed_failures


def has_failed_handles() -> bool:
    return bool(_FAILED_HANDLES)


def _write_error(path: Path | str, e: BaseException) -> OutputError:
    msg = str(e)
    if "errno = 28" in msg or "No space left" in msg:
        return OutputError(f"{path}: no space left on the device; nothing was written")
    first = msg.splitlines()[0] if msg else type(e).__name__
    return OutputError(f"{path}: cannot write: {first}")


def check_output_path(path: str | Path, *, force: bool = False, what: str = "output") -> Path:
    """Refuse an existing output without ``force``, a missing or unwritable folder, or a destination that is not
    a regular file, before any work (bertsecrets_cli.outputs.check_output)."""
    return outputs.check_output(path, force=force, what=what)


def created_timestamp() -> str:
    """Now in UTC, or SOURCE_DATE_EPOCH when set (reproducible builds: byte-identical stores)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    when = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch.isdigit() else _dt.datetime.now(_dt.timezone.utc)
    return when.isoformat(timespec="seconds")


class StoreWriter:
    """Write a whole store (any kind) under a temporary name; ``commit`` makes it appear atomically.

    Use as a context manager: leaving the block with an exception removes the temporary file.
    """

    def __init__(self, path: str | Path, kind: str, *, force: bool = False, locking: bool | None = None, final: bool = True, adopt: Path | None = None) -> None:
        """``adopt``: an existing complete file (a part) that is moved under the temporary name and
        extended in place, which saves copying its data; it is gone from where it was."""
        if kind not in S.KINDS:
            raise ValueError(f"unknown store kind {kind!r}")
        self.path = check_output_path(path, force=force) if final else Path(path)
        self.kind = kind
        self.tmp: Path = self.path  # set by __enter__: an exclusive temporary next to the output (bertsecrets_cli.outputs)
        self._fd: int | None = None
        self._seen_from = 0
        self._h5name = ""
        self._locking = locking
        self._file: Any = None
        self._appenders: list[Appender] = []
        self._writes = WriteQueue()
        self._adopt = adopt
        self._final = final
        self.committed = False

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> StoreWriter:
        h5py = _h5py()
        if self._final:
            remove_stale_temporaries(self.path)  # a SIGKILLed earlier writer of this output could not remove its own
        _watch_failed_writes()
        self._seen_from = len(_SEEN_FAILURES)
        self._fd, self.tmp = outputs.create_temporary(self.path)
        try:
            if self._adopt is not None:
                os.replace(self._adopt, self.tmp)  # over our own temporary: the name stays exclusive
                os.close(self._fd)
                self._fd = os.open(self.tmp, os.O_RDWR | os.O_NOFOLLOW)
            # HDF5 opens by name (with O_CREAT, following links): give it the inode we created exclusively, never a
            # name someone could swap for a symlink meanwhile
            by_fd = f"/proc/self/fd/{self._fd}"
            name = self._h5name = by_fd if os.path.exists(by_fd) else str(self.tmp)
            self._file = h5py.File(name, "r+" if self._adopt is not None else "w", libver=S.LIBVER, locking=self._locking)
        except OSError as e:
            self.abort()
            raise _os_error(self.path, e) from e
        root = self._file.attrs
        root[S.A_FORMAT] = S.FORMAT
        root[S.A_VERSION] = S.VERSION
        root[S.A_KIND] = self.kind
        root[S.A_COMPLETE] = 0
        root[S.A_TOOL_VERSION] = __version__
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and not self.committed:
                self.commit()
        except (OSError, RuntimeError) as e:
            exc = e
        if not self.committed:
            failure = exc if exc is not None and _hdf5_write_failure(exc) else self._failure()
            if failure is not None:
                self._abandon()
                raise _write_error(self.path, failure) from None
            self.abort()
        if exc is not None and exc_type is None:
            raise exc

    def _abandon(self) -> None:
        """After a failed HDF5 write: remove the temporary file but never close its handle (see _FAILED_HANDLES)."""
        _FAILED_HANDLES.append(self)
        if self.tmp != self.path:
            self.tmp.unlink(missing_ok=True)

    @staticmethod
    @contextmanager
    def _signals_held() -> Iterator[None]:
        """Delay SIGTERM/SIGINT until the block ends: closing, syncing and renaming happen together or not at all."""
        if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
            yield
            return
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def commit(self) -> Path:
        try:
            for a in self._appenders:
                a.flush()
            self._file.attrs[S.A_CREATED] = created_timestamp()
            self._file.attrs[S.A_COMPLETE] = 1
            self._file.flush()
            if self._failure() is not None:
                raise self._failure()
        except (OSError, RuntimeError) as e:
            if _hdf5_write_failure(e):
                self._abandon()
                raise _write_error(self.path, e) from None
            self.abort()
            if isinstance(e, OSError):
                raise _os_error(self.path, e) from e
            raise
        with self._signals_held():
            try:
                self._file.close()
                self._file = None
                if self._failure() is not None:  # met while closing: the file is not whole
                    self._abandon()
                    raise _write_error(self.path, self._failure())
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
            except OSError as e:
                self.abort()
                raise _os_error(self.path, e) from e
            try:
                outputs.commit(self.tmp, self.path, mode=None if self._final else "replace")
            except OutputError:
                self.abort()
                raise
            self.committed = True
        return self.path

    def abort(self) -> None:
        if self._file is not None and self._failure() is not None:  # closing it would retry the failed writes (see _FAILED_HANDLES)
            self._abandon()
            return
        try:
            if self._file is not None:
                self._file.close()
        except Exception:  # noqa: BLE001 - closing a broken file must not hide the first error
            pass
        self._file = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.tmp != self.path:
            self.tmp.unlink(missing_ok=True)

    @property
    def h5(self) -> Any:
        return self._live()

    def _live(self) -> Any:
        """The open file, unless a write already failed (a full disk): then stop before HDF5 goes on in a broken
        state (it crashed the process, measured on a full tmpfs)."""
        failure = self._failure()
        if failure is not None:
            raise failure
        return self._file

    def _failure(self) -> BaseException | None:
        """The first failed write h5py met on this writer's file while freeing an object (see _SEEN_FAILURES)."""
        for e in _SEEN_FAILURES[self._seen_from:]:
            text = str(e)
            if "filename = '" not in text or f"filename = '{self._h5name}'" in text:
                return e
        return None

    # -- content ---------------------------------------------------------------------------
    def set_model(self, *, n_layers: int, n_heads: int, **attrs: Any) -> None:
        g = self._live().require_group(S.G_MODEL)
        g.attrs["n_layers"] = int(n_layers)
        g.attrs["n_heads"] = int(n_heads)
        for k, v in attrs.items():
            g.attrs[k] = v if v is not None else ""

    def set_provenance(self, attrs: dict[str, Any], texts: dict[str, str] | None = None) -> None:
        """Short values as attributes; long text (command, config, environment) as string datasets."""
        g = self._live().require_group(S.G_PROVENANCE)
        for k, v in attrs.items():
            if isinstance(v, (dict, list, tuple)):
                v = json.dumps(v, sort_keys=True)
            g.attrs[k] = "" if v is None else v
        for k, v in (texts or {}).items():
            if k in g:
                del g[k]
            g.create_dataset(k, data=v, dtype=_str_dtype())

    def put_array(self, name: str, data: Any, *, attrs: dict[str, Any] | None = None, compression: str | None = None) -> None:
        arr = np.asarray(data)
        if arr.dtype.kind in ("U", "O"):
            ds = self._live().create_dataset(name, data=[str(x) for x in arr.reshape(-1)], dtype=_str_dtype())
        else:
            ds = self._live().create_dataset(name, data=arr, compression=compression if arr.size > 1024 else None)
        for k, v in (attrs or {}).items():
            ds.attrs[k] = v
        return ds

    def put_strings(self, name: str, values: list[str]) -> None:
        self._live().create_dataset(name, data=[str(v) for v in values], dtype=_str_dtype())

    def put_json(self, name: str, obj: Any) -> None:
        self._live().create_dataset(name, data=json.dumps(obj, sort_keys=True), dtype=_str_dtype())

    def put_head_quantity(self, name: str, values: np.ndarray, description: str, **attrs: Any) -> None:
        """A per-head [layers, heads] quantity that plot, show and diff find by itself."""
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 2:
            raise ValueError(f"head quantity {name} must be [layers, heads], got {v.shape}")
        ds = self.put_array(f"{S.G_HEADS}/{name}", v, attrs={"description": description})
        for k, a in attrs.items():
            ds.attrs[k] = a

    def copy_examples_from(self, store: Any, start: int = 0, end: int | None = None) -> None:
        """Copy the example index (ids, texts, labels, lengths) of an input store, so results carry it.

        With ``start``/``end`` only those examples (a shard); offsets keep pointing into the input store.
        """
        src = store.h5[S.G_EXAMPLES]
        whole = start == 0 and (end is None or end >= store.n_examples)
        for name in src:
            if whole:
                self._live().copy(src[name], f"{S.G_EXAMPLES}/{name}")
            else:
                ds = self._live().create_dataset(f"{S.G_EXAMPLES}/{name}", data=src[name][start:end], dtype=src[name].dtype)
                for k, v in src[name].attrs.items():
                    ds.attrs[k] = v

    def copy_group_attrs(self, name: str, store: Any) -> None:
        """The attributes of group ``name`` of an input store (e.g. a patterns store's classifier), unchanged."""
        g = self._live().require_group(name)
        for k, v in store.h5[name].attrs.items():
            g.attrs[k] = v

    def concat_from(self, name: str, stores: list[Any], block_rows: int = 4096) -> None:
        """Write dataset ``name`` as the concatenation of the same dataset in ``stores`` (a merge), in blocks."""
        first = stores[0].h5[name]
        total = sum(s.h5[name].shape[0] for s in stores)
        ds = self._live().create_dataset(name, shape=(total, *first.shape[1:]), dtype=first.dtype,
                                       chunks=True if total and first.chunks else None)
        for k, v in first.attrs.items():
            ds.attrs[k] = v
        off = 0
        for s in stores:
            src = s.h5[name]
            for b in range(0, src.shape[0], block_rows):
                rows = src[b : b + block_rows]
                ds[off : off + len(rows)] = rows
                off += len(rows)

    def appender(self, name: str, dtype: Any, tail: tuple[int, ...] = (), *, chunk_rows: int | None = None, compression: str | None = None,
                 fletcher32: bool = False, writeback: bool = False) -> Appender:
        """A growing dataset; an existing one (in an adopted file) is continued.

        ``writeback``: after each write, start the kernel writing the file to disk (for the large map arrays),
        so the fsync at commit finds little left to wait for."""
        a = Appender(self._live(), name, dtype, tail, chunk_rows=chunk_rows, compression=compression, fletcher32=fletcher32,
                     writeback=writeback, queue=self._writes)
        self._appenders.append(a)
        return a


BLOCK_BYTES = 4 << 20  # whole chunks waiting to be written: one HDF5 write (and resize) per 128 KiB chunk cost twice the CPU


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing ``fd``'s dirty pages to disk now, without waiting (Linux's sync_file_range).

    Elsewhere, or if it fails, nothing happens: the fsync at commit still makes the file durable; this only
    spreads that wait over the run instead of paying it all at the end.
    """
    global _SYNC_FILE_RANGE
    if _SYNC_FILE_RANGE is None:
        _SYNC_FILE_RANGE = False
        if hasattr(os, "sched_getaffinity"):  # Linux
            import ctypes

            try:
                fn = ctypes.CDLL(None, use_errno=True).sync_file_range
                fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
                fn.restype = ctypes.c_int
                _SYNC_FILE_RANGE = fn
            except (AttributeError, OSError):
                pass
    if _SYNC_FILE_RANGE:
        _SYNC_FILE_RANGE(fd, 0, 0, 2)  # SYNC_FILE_RANGE_WRITE: start writeback of the whole file, do not wait


_SYNC_FILE_RANGE: Any = None


class WriteQueue:
    """The whole chunks of a file's appenders that are due, in the order they became due, written in blocks.

    HDF5 places a chunk in the file when it is written, so the file's bytes depend on the order of the
    chunk writes across datasets, not on how many chunks one call writes: replaying the due chunks in
    order, with consecutive ones of the same dataset merged into one write, keeps the file byte for byte
    what chunk-at-a-time writing gave, at a fraction of the calls.
    """

    def __init__(self, block_bytes: int = BLOCK_BYTES) -> None:
        self.block_bytes = block_bytes
        self._due: list[list[Any]] = []  # [appender, rows], in order
        self._bytes = 0

    def add(self, appender: Appender, rows: int) -> None:
        if self._due and self._due[-1][0] is appender:
            self._due[-1][1] += rows
        else:
            self._due.append([appender, rows])
        self._bytes += rows * appender.row_bytes
        if self._bytes >= self.block_bytes:
            self.run()

    def run(self) -> None:
        due, self._due, self._bytes = self._due, [], 0
        for appender, rows in due:
            appender._write(rows)


class Appender:
    """Grow a dataset along its first axis, buffering so that HDF5 sees whole chunks (written through the file's WriteQueue)."""

    def __init__(self, f: Any, name: str, dtype: Any, tail: tuple[int, ...], *, chunk_rows: int | None, compression: str | None, fletcher32: bool,
                 writeback: bool = False, queue: WriteQueue | None = None) -> None:
        comp = None if compression in (None, "none") else compression
        if name in f:
            self.ds = f[name]
            self.chunk_rows = self.ds.chunks[0]
        else:
            row_bytes = int(np.prod(tail, dtype=np.int64)) * np.dtype(dtype).itemsize if tail else np.dtype(dtype).itemsize
            # 64 KiB chunks unless told: small arrays must not cost a whole MiB each
            self.chunk_rows = chunk_rows or max(1, (1 << 16) // max(1, row_bytes))
            self.ds = f.create_dataset(
                name, shape=(0, *tail), maxshape=(None, *tail), dtype=dtype, chunks=(self.chunk_rows, *tail), compression=comp, fletcher32=fletcher32
            )
        self._dtype = self.ds.dtype  # h5py's property calls into HDF5 each time
        self._object = self._dtype.kind == "O"
        self.row_bytes = max(1, int(np.prod(self.ds.shape[1:], dtype=np.int64)) * self._dtype.itemsize)
        self._rows = self.ds.shape[0]
        self._queue = queue if queue is not None else WriteQueue(0)  # alone: each due chunk written at once
        self._fd = f.id.get_vfd_handle() if writeback else None
        self._buf: list[np.ndarray] = []
        self._buffered = 0  # rows in _buf
        self._queued = 0  # of those, rows already due in the queue

    def append(self, rows: np.ndarray) -> None:
        self._buf.append(np.asarray(rows, dtype=object) if self._object else np.asarray(rows, dtype=self._dtype))
        self._buffered += len(rows)
        due = (self._buffered - self._queued) // self.chunk_rows * self.chunk_rows
        if due:
            self._queued += due
            self._queue.add(self, due)

    def _write(self, n: int) -> None:
        """Write the first ``n`` buffered rows."""
        data = np.concatenate(self._buf) if len(self._buf) > 1 else self._buf[0]
        start = self._rows
        self.ds.resize(start + n, axis=0)
        self.ds[start : start + n] = data[:n]
        self._rows = start + n
        rest = data[n:]
        self._buf = [rest] if len(rest) else []
        self._buffered -= n
        self._queued -= n
        if self._fd is not None:
            start_writeback(self._fd)

    def flush(self) -> None:
        """Write everything buffered: what is due in the file's queue first (it was due earlier), then the rest."""
        self._queue.run()
        if self._buffered:
            self._queued = self._buffered
            self._write(self._buffered)


# ----------------------------------------------------------------------------------------------
# attention stores: parts, resume, assembly


def encode_values(a: np.ndarray, encoding: str) -> np.ndarray:
    """Attention probabilities -> stored values (float16 default; uint8 = round(x * 255), lossy)."""
    if encoding == "float16":
        return a.astype(np.float16, copy=False)
    if encoding == "float32":
        return a.astype(np.float32, copy=False)
    if encoding == "uint8":
        if a.dtype == np.uint8:  # encoded already (on the device, by model.capture)
            return a
        return np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(encoding)


_ENC_DTYPE = {"float16": np.float16, "float32": np.float32, "uint8": np.uint8}


def quantity_encoding(encoding: str, name: str) -> str:
    """uint8 holds only values in [0, 1]: raw norms and flow are kept in float16 then."""
    return "float16" if encoding == "uint8" and not S.quantity(name).distribution else encoding


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporaries of ``path`` left by writers that were SIGKILLed (their pid is gone).

    Every store writer calls it before writing ``path`` (a SIGKILL leaves the temporary behind, e.g. an
    extract killed while assembling its store: it holds part 0, which --resume redoes).
    """
    return outputs.remove_stale_temporaries(path)


class AttentionPartWriter:
    """Examples [start, end) of an extraction: tokens, attention, per-head statistics."""

    def __init__(self, w: StoreWriter, start: int, end: int, n_layers: int, n_heads: int, encoding: str, compression: str,
                 quantities: tuple[str, ...] = (), maps: str = S.MAPS_FULL) -> None:
        """``maps``: full, topk or none (schema.A_MAPS): what ``add`` is given as the attention."""
        self.w, self.start, self.end = w, start, end
        self.encoding = encoding
        self.mode = maps
        f = w.h5
        # the other quantities (norms, rollout, ...): their maps and per-example statistics, same layout
        self.extra: dict[str, tuple[Appender, Appender, str]] = {}
        for name in quantities:
            q = S.quantity(name)
            enc = quantity_encoding(encoding, name)
            self.extra[name] = (w.appender(q.maps, _ENC_DTYPE[enc], chunk_rows=S.CHUNK_VALUES, compression=compression, fletcher32=True, writeback=True),
                                w.appender(q.per_example, np.float32, (n_layers, n_heads if q.per_head else 1, len(S.STAT_NAMES))), enc)
        f.attrs["start"], f.attrs["end"] = start, end
        self.maps = w.appender(S.ATTENTION_MAPS, _ENC_DTYPE[encoding], chunk_rows=S.CHUNK_VALUES, compression=compression, fletcher32=True, writeback=True)
        self.ids = w.appender("tokens/ids", np.int32)
        self.types = w.appender("tokens/type_ids", np.int8)
        self.special = w.appender("tokens/special", np.int8)
        self.offsets = w.appender("tokens/offsets", np.int32, (2,))
        self.stats = w.appender(S.STATS_PER_EXAMPLE, np.float32, (n_layers, n_heads, len(S.STAT_NAMES)))
        self.text = w.appender("tokens/text", _str_dtype())
        self.length = w.appender("examples/length", np.int32)
        if maps != S.MAPS_FULL:
            from bertsecrets_cli.analysis.patterns import FEATURES

            self.features = w.appender(S.MAP_FEATURES, np.float32, (n_layers, n_heads, len(FEATURES)))
            self.features.ds.attrs["names"] = json.dumps(list(FEATURES))
        if maps == "topk":
            self.topk = (w.appender(S.TOPK_INDEX, np.uint16, chunk_rows=S.CHUNK_VALUES, compression=compression, fletcher32=True, writeback=True),
                         w.appender(S.TOPK_VALUE, _ENC_DTYPE[encoding], chunk_rows=S.CHUNK_VALUES, compression=compression, fletcher32=True, writeback=True),
                         w.appender(S.TOPK_REST, np.float32, chunk_rows=S.CHUNK_VALUES // 2, compression=compression, fletcher32=True))
        self.count = 0

    def add(self, enc: Any, attention: Any, stats: np.ndarray, extra: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
            features: np.ndarray | None = None) -> None:
        """One example: its Encoded tokens, attention [L, H, T, T] (topk: (positions, values, rest); none: None) and stats [L, H, K];
        ``extra``: name -> (maps, stats) of the other quantities; ``features``: the classifier's [L, H, F] (topk, none)."""
        if self.mode != S.MAPS_FULL:
            if features is None:
                raise ValueError("a part without full maps needs each example's classifier features")
            self.features.append(np.asarray(features, np.float32)[None])
        given = set(extra or {})
        if given != set(self.extra):
            raise ValueError(f"part expects quantities {sorted(self.extra)}, got {sorted(given)}")
        for name, (maps, qstats) in (extra or {}).items():
            m, st, enc_name = self.extra[name]
            m.append(encode_values(maps, enc_name).reshape(-1))
            st.append(qstats[None])
        if self.mode == S.MAPS_FULL:
            self.maps.append(encode_values(attention, self.encoding).reshape(-1))
        elif self.mode == "topk":
            index, values, rest = attention
            self.topk[0].append(np.asarray(index, dtype=np.uint16).reshape(-1))
            self.topk[1].append(encode_values(values, self.encoding).reshape(-1))
            self.topk[2].append(np.asarray(rest, dtype=np.float32).reshape(-1))
        self.ids.append(enc.ids)
        self.types.append(enc.type_ids)
        self.special.append(enc.special)
        self.offsets.append(enc.offsets)
        self.stats.append(stats[None])
        self.text.append(enc.tokens)
        self.length.append([enc.length])
        self.count += 1

    def close(self) -> None:
        if self.count != self.end - self.start:
            raise RuntimeError(f"part [{self.start}, {self.end}) got {self.count} examples")


class AttentionStoreWriter:
    """An extraction written part by part, then assembled into one store.

    ``job_key`` fingerprints everything that determines the output (model, data, options): parts
    left by a run with another key are never reused.
    """

    def __init__(self, path: str | Path, *, job_key: dict[str, Any], n_examples: int, part_size: int, n_layers: int, n_heads: int,
                 encoding: str = "float16", compression: str = "none", force: bool = False, resume: bool = False, locking: bool | None = None,
                 quantities: tuple[str, ...] = (), maps: str = S.MAPS_FULL, topk: int = 0) -> None:
        """``quantities``: the kinds stored besides the weights (schema.QUANTITIES), e.g. ("norms", "rollout");
        ``maps``/``topk``: what is kept of the weights' maps (schema.A_MAPS)."""
        self.quantities = tuple(q for q in quantities if q != S.Q_WEIGHTS)
        self.maps_mode, self.topk = maps, topk
        if maps != S.MAPS_FULL and self.quantities:
            raise ValueError("only the weights can be kept as top-k or statistics only")
        for q in self.quantities:
            S.quantity(q)
        self.parts_dir = Path(path).with_name(f".{Path(path).name}.parts")
        self._remove_assembled_parts(Path(path))
        self.path = check_output_path(path, force=force or resume)
        if self.path.exists() and resume and not force:
            raise OutputError(f"{self.path}: exists and is complete; nothing to resume (pass --force to redo it)")
        self.parts_dir = self.path.with_name(f".{self.path.name}.parts")
        self.key = hashlib.sha256(json.dumps(job_key, sort_keys=True, default=str).encode()).hexdigest()
        self.n_examples, self.part_size = n_examples, max(1, part_size)
        self.n_layers, self.n_heads = n_layers, n_heads
        self.encoding, self.compression = encoding, compression
        self.locking = locking
        self._prepare(resume, force)

    def _remove_assembled_parts(self, path: Path) -> None:
        """A run killed between renaming its store into place and deleting its parts leaves them behind, marked
        ``committing`` in the manifest: with the store there they are a leftover (possibly gigabytes), not work."""
        self.removed_leftover: Path | None = None  # the caller says so
        if not (path.exists() and self.parts_dir.is_dir()):
            return
        manifest = self.parts_dir / "manifest.json"
        try:
            committing = json.loads(manifest.read_text()).get("committing")
        except FileNotFoundError:  # every run writes it first and _remove_parts deletes it last: removal was under way
            committing = True
        except (OSError, ValueError):
            return
        if committing:
            self._remove_parts()
            self.removed_leftover = self.parts_dir

    def _remove_parts(self) -> None:
        """Delete the parts folder, its manifest last, so that a kill half-way leaves a folder still marked as what it is."""
        manifest = self.parts_dir / "manifest.json"
        for p in self.parts_dir.glob("*"):
            if p != manifest:
                p.unlink(missing_ok=True)
        manifest.unlink(missing_ok=True)
        shutil.rmtree(self.parts_dir, ignore_errors=True)

    def _prepare(self, resume: bool, force: bool) -> None:
        manifest = self.parts_dir / "manifest.json"
        if resume or force:
            remove_stale_temporaries(self.path)
        if self.parts_dir.exists():
            if force and not resume:
                self.discard()
            elif not resume:
                raise OutputError(f"{self.path}: an interrupted run left {self.parts_dir}; pass --resume to continue it, or --force to start over")
            else:
                try:
                    old = json.loads(manifest.read_text())
                except (OSError, ValueError):
                    old = {}
                if old.get("key") != self.key:
                    raise OutputError(f"{self.path}: the interrupted run in {self.parts_dir} used other options, model or data; rerun it with the same ones, or use --force to start over")
        try:
            outputs.private_folder(self.parts_dir)
            outputs.write_text(manifest, json.dumps({"key": self.key, "n_examples": self.n_examples, "part_size": self.part_size}), mode="replace")
        except OSError as e:
            raise _os_error(self.parts_dir, e) from e

    def ranges(self) -> list[tuple[int, int, int]]:
        return [(i, s, min(s + self.part_size, self.n_examples)) for i, s in enumerate(range(0, self.n_examples, self.part_size))]

    def part_path(self, index: int) -> Path:
        return self.parts_dir / f"part-{index:06d}.h5"

    def pending(self) -> list[tuple[int, int, int]]:
        """Parts not yet written (a part file exists only once complete)."""
        return [r for r in self.ranges() if not self.part_path(r[0]).exists()]

    @contextmanager
    def part(self, index: int, start: int, end: int) -> Iterator[AttentionPartWriter]:
        with StoreWriter(self.part_path(index), "part", final=False, locking=self.locking) as w:
            pw = AttentionPartWriter(w, start, end, self.n_layers, self.n_heads, self.encoding, self.compression, self.quantities, self.maps_mode)
            yield pw
            pw.close()

    def finish(self, *, model: dict[str, Any], provenance: dict[str, Any], texts: dict[str, str], examples: dict[str, Any], extra_heads: dict[str, tuple[np.ndarray, str]] | None = None) -> Path:
        """Assemble the parts into the final store; per-head means of the statistics go to /heads."""
        h5py = _h5py()
        ranges = self.ranges()
        missing = [str(self.part_path(i)) for i, _, _ in ranges if not self.part_path(i).exists()]
        if missing:
            raise StoreError(f"{self.path}: {len(missing)} part(s) missing, e.g. {missing[0]}")
        K = len(S.STAT_NAMES)
        sums = np.zeros((self.n_layers, self.n_heads, K))
        counts = np.zeros((self.n_layers, self.n_heads, K))

        def add_stats(st: np.ndarray) -> None:
            nonlocal sums, counts
            ok = ~np.isnan(st)
            sums += np.where(ok, st, 0).sum(0)
            counts += ok.sum(0)

        # part 0 becomes the store (no copy); later parts are appended to it. If this is killed,
        # part 0 is simply missing and --resume redoes it.
        with StoreWriter(self.path, "attention", force=True, locking=self.locking, adopt=self.part_path(0)) as w:
            f = w.h5
            for k in ("start", "end"):
                if k in f.attrs:
                    del f.attrs[k]
            w.set_model(n_layers=self.n_layers, n_heads=self.n_heads, **model)
            w.set_provenance(provenance, texts)
            maps = w.appender(S.ATTENTION_MAPS, _ENC_DTYPE[self.encoding])
            f[S.G_ATTENTION].attrs["encoding"] = self.encoding
            f[S.G_ATTENTION].attrs["layout"] = "flat, example-major; each example [layer, head, query, key] cropped to its length"
            f[S.G_ATTENTION].attrs["compression"] = self.compression
            names = ("tokens/ids", "tokens/type_ids", "tokens/special", "tokens/offsets", "tokens/text", "examples/length")
            if self.maps_mode != S.MAPS_FULL:
                names += (S.MAP_FEATURES,)
            if self.maps_mode == "topk":
                names += (S.TOPK_INDEX, S.TOPK_VALUE, S.TOPK_REST)
            grow = {n: w.appender(n, None) for n in names}
            stats = w.appender(S.STATS_PER_EXAMPLE, np.float32)
            f[S.G_STATS].attrs["names"] = json.dumps(list(S.STAT_NAMES))
            for s0 in range(0, stats.ds.shape[0], 4096):
                add_stats(stats.ds[s0 : s0 + 4096])
            extra = {q: (w.appender(S.quantity(q).maps, None), w.appender(S.quantity(q).per_example, None)) for q in self.quantities}
            extra_sums = {q: [np.zeros(a.ds.shape[1:]), np.zeros(a.ds.shape[1:])] for q, (_, a) in extra.items()}

            def add_extra_stats(q: str, st: np.ndarray) -> None:
                ok = ~np.isnan(st)
                extra_sums[q][0] += np.where(ok, st, 0).sum(0)
                extra_sums[q][1] += ok.sum(0)

            for q, (_, a) in extra.items():
                for s0 in range(0, a.ds.shape[0], 4096):
                    add_extra_stats(q, a.ds[s0 : s0 + 4096])
            step = S.CHUNK_VALUES * 8
            for i, _, _ in ranges[1:]:
                with h5py.File(self.part_path(i), "r", locking=self.locking) as p:
                    if not p.attrs.get(S.A_COMPLETE):
                        raise StoreError(f"{self.part_path(i)}: part is incomplete")
                    src = p[S.ATTENTION_MAPS]
                    for s0 in range(0, src.shape[0], step):
                        maps.append(src[s0 : s0 + step])
                    for n, a in grow.items():
                        for s0 in range(0, p[n].shape[0], step):  # in blocks: the top-k arrays are large
                            a.append(p[n][s0 : s0 + step])
                    st = p[S.STATS_PER_EXAMPLE][...]
                    stats.append(st)
                    add_stats(st)
                    for q, (qm, qs) in extra.items():
                        src = p[S.quantity(q).maps]
                        for s0 in range(0, src.shape[0], step):
                            qm.append(src[s0 : s0 + step])
                        st = p[S.quantity(q).per_example][...]
                        qs.append(st)
                        add_extra_stats(q, st)
            for a in (maps, stats, *grow.values(), *(x for pair in extra.values() for x in pair)):
                a.flush()
            length = f["examples/length"][...]

            def offsets(per_layer: int) -> np.ndarray:
                per_ex = self.n_layers * per_layer * length.astype(np.int64) ** 2
                return np.concatenate([[0], np.cumsum(per_ex)[:-1]]).astype(np.int64) if len(length) else np.zeros(0, np.int64)

            if self.maps_mode == S.MAPS_FULL:
                w.put_array("examples/attention_offset", offsets(self.n_heads))
            else:  # no maps: every example starts (and ends) at 0
                w.put_array("examples/attention_offset", np.zeros(len(length), np.int64))
                f[S.G_ATTENTION].attrs[S.A_MAPS] = S.maps_label(self.maps_mode, self.topk)
            if self.maps_mode == "topk":
                t = length.astype(np.int64)
                per_ex = self.n_layers * self.n_heads * t * np.minimum(t, self.topk)
                w.put_array(S.TOPK_OFFSET, np.concatenate([[0], np.cumsum(per_ex)[:-1]]).astype(np.int64) if len(t) else np.zeros(0, np.int64))
            for q in self.quantities:
                spec = S.quantity(q)
                w.put_array(spec.offset, offsets(self.n_heads if spec.per_head else 1))
                g = f[spec.group]
                g.attrs["encoding"] = quantity_encoding(self.encoding, q)
                g.attrs["compression"] = self.compression
                g.attrs["per_head"] = int(spec.per_head)
                g.attrs["distribution"] = int(spec.distribution)
                g.attrs["description"] = spec.description
                g.attrs["layout"] = "flat, example-major; each example [layer, head, query, key] cropped to its length" + ("" if spec.per_head else " (one map per layer)")
                f[spec.per_example].attrs["names"] = json.dumps(list(S.STAT_NAMES))
                with np.errstate(invalid="ignore", divide="ignore"):
                    qmeans = extra_sums[q][0] / extra_sums[q][1]
                for k, name in enumerate(S.STAT_NAMES):
                    w.put_head_quantity(spec.head_name(f"stat_{name}"), qmeans[..., k],
                                        f"{S.SINK_DESCRIPTION if name == 'cls' and model.get('causal') else S.STAT_DESCRIPTIONS[name]} "
                                        f"(mean over examples; {q}, rows normalised to sum 1)")
            f[S.G_ATTENTION].attrs["quantities"] = json.dumps([S.Q_WEIGHTS, *self.quantities])
            w.put_array("examples/token_offset", np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64) if len(length) else np.zeros(0, np.int64))
            for name, values in examples.items():
                if isinstance(values, list) and values and isinstance(values[0], str):
                    w.put_strings(f"examples/{name}", values)
                else:
                    w.put_array(f"examples/{name}", values)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = sums / counts
            for k, name in enumerate(S.STAT_NAMES):
                desc = S.SINK_DESCRIPTION if name == "cls" and model.get("causal") else S.STAT_DESCRIPTIONS[name]
                w.put_head_quantity(f"stat_{name}", means[..., k], desc + " (mean over examples)")
            for name, (values, desc) in (extra_heads or {}).items():
                w.put_head_quantity(name, values, desc)
            # from here the store is whole: if the rename below happens and the rmtree after it does not, the
            # next run on this output knows the parts for a leftover (_remove_assembled_parts)
            manifest = self.parts_dir / "manifest.json"
            # atomic: the manifest is always the old one or the marked one
            outputs.write_text(manifest, json.dumps({**json.loads(manifest.read_text()), "committing": True}), mode="replace")
        self._remove_parts()
        return self.path

    def discard(self) -> None:
        """Forget every part (used by --force)."""
        shutil.rmtree(self.parts_dir, ignore_errors=True)

    @contextmanager
    def removed_unless_a_part_is_done(self) -> Iterator[None]:
        """A run that fails or stops before finishing any part (a full disk, a bad text) leaves no parts folder:
        there is nothing to resume, and the folder would only block the next run."""
        try:
            yield
        except BaseException:
            if not any(self.parts_dir.glob("part-*.h5")):
                self._remove_parts()
            raise


# ----------------------------------------------------------------------------------------------
# patterns stores (written by classify): per-map labels and features, appended example by example.
# Added by the classify issue; these names could move to schema.py.

G_PATTERNS = "patterns"
PATTERN_LABELS = "patterns/labels"  # int8 [N, L, H], indices into the class_names attribute
PATTERN_FEATURES = "patterns/features"  # float32 [N, L, H, F], names in the names attribute
PATTERN_TOKENS = "patterns/token_attention"  # float32 [N, L, H, K]: attention given to tokens of interest, NaN = absent
PATTERN_LAYER_SHARES = "patterns/layer_shares"  # float64 [L, C]
PATTERN_OVERALL_SHARES = "patterns/overall_shares"  # float64 [C]


PATTERN_DATASETS = (PATTERN_LABELS, PATTERN_FEATURES, PATTERN_TOKENS)


class PatternsWriter:
    """The per-map arrays of a patterns store, written as the examples stream by (memory stays bounded)."""

    def __init__(self, w: StoreWriter, *, n_layers: int, n_heads: int, class_names: list[str], feature_names: list[str],
                 token_feature_names: list[str], attrs: dict[str, Any]) -> None:
        self.w = w
        L, H = n_layers, n_heads
        self.labels = w.appender(PATTERN_LABELS, np.int8, (L, H))
        self.features = w.appender(PATTERN_FEATURES, np.float32, (L, H, len(feature_names)))
        self.tokens = w.appender(PATTERN_TOKENS, np.float32, (L, H, len(token_feature_names)))
        self.labels.ds.attrs["class_names"] = json.dumps(class_names)
        self.features.ds.attrs["names"] = json.dumps(feature_names)
        self.tokens.ds.attrs["names"] = json.dumps(token_feature_names)
        g = w.h5[G_PATTERNS]
        g.attrs["class_names"] = json.dumps(class_names)
        for k, v in attrs.items():
            g.attrs[k] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, tuple)) else ("" if v is None else v)

    def add(self, labels: np.ndarray, features: np.ndarray, token_values: np.ndarray) -> None:
        """One example: labels [L, H], features [L, H, F], token attention [L, H, K]."""
        self.add_block(labels[None], features[None], token_values[None])

    def add_block(self, labels: np.ndarray, features: np.ndarray, token_values: np.ndarray) -> None:
        """Several examples at once: labels [B, L, H], features [B, L, H, F], token attention [B, L, H, K]."""
        self.labels.append(labels)
        self.features.append(features)
        self.tokens.append(token_values)

    def put_shares(self, layer_shares: np.ndarray, overall_shares: np.ndarray) -> None:
        put_pattern_shares(self.w, layer_shares, overall_shares)


def put_pattern_shares(w: StoreWriter, layer_shares: np.ndarray, overall_shares: np.ndarray) -> None:
    """Pattern shares per layer [L, C] and overall [C] of a patterns store."""
    w.put_array(PATTERN_LAYER_SHARES, np.asarray(layer_shares, dtype=np.float64))
    w.put_array(PATTERN_OVERALL_SHARES, np.asarray(overall_shares, dtype=np.float64))


def copy_model_from(w: StoreWriter, store: Any) -> None:
    """Copy an input store's model description (names, sizes, special tokens, label names).

    ``n_heads`` is that of the quantity read (1 for rollout and flow), so the results' [layers, heads] arrays match it.
    """
    w.h5.copy(store.h5[S.G_MODEL], S.G_MODEL)
    w.h5[S.G_MODEL].attrs["n_heads"] = int(store.n_heads)
