"""One reader API for every command: validates a store on open, then reads it lazily."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.errors import InputError, StoreError
from bertsecrets_cli.store import failures
from bertsecrets_cli.store import schema as S
from bertsecrets_cli.store import validation

HDF5_SIGNATURE = failures.HDF5_SIGNATURE


# the stores this process opened last: h5py's read errors (a failed checksum) do not name the file,
# so cli.common.run names these instead
_RECENT: list[Path] = []


def recently_opened() -> list[Path]:
    return list(_RECENT)


def locking_from_env(locking: bool | None) -> bool | None:
    """``--no-locking`` / BERTSECRETS_NO_LOCKING=1 -> False (NFS/Lustre); None keeps HDF5's default."""
    if locking is not None:
        return locking
    v = os.environ.get("BERTSECRETS_NO_LOCKING", "").strip().lower()
    return False if v in ("1", "true", "yes", "on") else None


@dataclass
class HeadQuantity:
    name: str
    values: np.ndarray  # [layers, heads]
    description: str
    n: int | None = None  # what its values average over, when it differs from the store's N (attribute n; e.g. one relation's arcs)
    n_counts: str = ""  # what n counts ("arcs", "sentences", ...)


@dataclass
class TokenInfo:
    ids: np.ndarray
    text: list[str]
    type_ids: np.ndarray
    special: np.ndarray
    offsets: np.ndarray


def _decode(x: Any) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _attr(v: Any) -> Any:
    """An HDF5 attribute as a plain Python value (str, number or list)."""
    if isinstance(v, (bytes, str)):
        return _decode(v)
    if isinstance(v, np.ndarray):
        return [_attr(x) for x in v.tolist()] if v.ndim else _attr(v.item())
    if hasattr(v, "item"):
        return v.item()
    return v


class Store:
    """An open, validated store. Use as a context manager or call ``close``."""

    def __init__(self, path: str | Path, h5: Any, quantity: str = S.Q_WEIGHTS, *, validate: bool = True) -> None:
        self.path = Path(path)
        self.name = failures.shown(path)  # what messages call it: '-' for standard input
        self.h5 = h5
        self.validate = validate  # check attention as it is read (store.validation)
        self._att_cache: tuple[int, int, np.ndarray] | None = None
        self._encoding: str | None = None  # of the selected quantity
        # the quantity that attention(), iter_attention(), stats(), heads() and n_heads read (select_quantity)
        self.quantity = quantity

    # -- quantities ------------------------------------------------------------------------
    def quantities(self) -> list[str]:
        """The kinds of maps this store holds: weights, norms, rollout, ... (schema.QUANTITIES)."""
        if S.ATTENTION_MAPS not in self.h5:
            return []
        return [q for q, spec in S.QUANTITIES.items() if spec.maps in self.h5]

    def result_quantity(self) -> str:
        """The quantity a result store (patterns, diff, framenet, ...) was computed on: weights unless recorded."""
        return str(self.provenance().get("quantity", S.Q_WEIGHTS) or S.Q_WEIGHTS)

    def select_quantity(self, name: str | None) -> Store:
        """Read ``name`` (None: weights) from now on; a store without it is one StoreError line naming what it has."""
        name = name or S.Q_WEIGHTS
        try:
            S.quantity(name)
        except ValueError as e:
            raise InputError(f"--quantity {name}: {e}") from None
        if S.ATTENTION_MAPS not in self.h5:
            # result stores hold the per-head results of one quantity only
            have = self.result_quantity()
            if name != have:
                raise StoreError(f"{self.name}: holds results on {have}, not {name} ({S.a_store(self.kind)}); pass --quantity {have}, "
                                 f"or rerun the command that wrote it with --quantity {name}")
        elif S.quantity(name).maps not in self.h5:
            raise StoreError(f"{self.name}: holds no {name} maps (it has {', '.join(self.quantities())}); extract with --quantities weights,{name}")
        self.quantity = name
        self._encoding = None
        if self.legacy_raw_flow and S.ATTENTION_MAPS in self.h5:
            from bertsecrets_cli.render.console import note

            note(f"note: {self.name} is a format-{self.version} store: its flow maps are raw max-flow values; they are read with each row "
                 "divided by its sum, as format 2 stores them (Abnar's definition); re-extract for flow_raw")
        return self

    @property
    def legacy_raw_flow(self) -> bool:
        """The selected quantity is the flow of a store written before flow was row-normalised (format 1)."""
        return self.quantity == "flow" and self.version.split(".")[0] in S.RAW_FLOW_VERSIONS

    def _finish(self, att: np.ndarray) -> np.ndarray:
        """Decoded maps as the current format defines them: a format-1 store's raw flow rows divided by their sums."""
        if not self.legacy_raw_flow:
            return att
        total = att.sum(-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, att / np.where(total > 0, total, 1), 0).astype(np.float32)

    @property
    def _q(self) -> S.Quantity:
        return S.quantity(self.quantity)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.h5 is not None:
            self.h5.close()
            self.h5 = None

    # -- description ----------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return _decode(self.h5.attrs[S.A_KIND])

    @property
    def version(self) -> str:
        return _decode(self.h5.attrs[S.A_VERSION])

    def has(self, name: str) -> bool:
        return name in self.h5

    @property
    def n_layers(self) -> int:
        return int(self.h5[S.G_MODEL].attrs["n_layers"])

    @property
    def n_heads(self) -> int:
        """Maps per layer of the selected quantity: the model's heads, or 1 for per-layer kinds (rollout, flow)."""
        if S.ATTENTION_MAPS in self.h5 and not self._q.per_head:
            return 1
        return self.model_heads

    @property
    def model_heads(self) -> int:
        return int(self.h5[S.G_MODEL].attrs["n_heads"])

    def attention_windows(self) -> np.ndarray:
        """int [layers]: the largest |query - key| each layer's queries may attend to, -1 for global attention.

        Recorded by extract since issue 25 (ModernBERT's local layers); older stores had only global layers.
        """
        w = self.h5[S.G_MODEL].attrs.get("attention_windows")
        if w is None or np.size(w) != self.n_layers:
            return np.full(self.n_layers, -1, dtype=np.int64)
        return np.asarray(w, dtype=np.int64).reshape(-1)

    @property
    def causal(self) -> bool:
        """The model is a causal decoder (issue 30): its maps are lower-triangular; older stores are encoders."""
        return bool(int(self.h5[S.G_MODEL].attrs.get("causal", 0) or 0))

    def kv_group(self) -> np.ndarray:
        """int [heads]: the key-value head each query head reads (grouped-query attention); its own index otherwise."""
        g = self.h5[S.G_MODEL].attrs.get("kv_group")
        if g is None or np.size(g) != self.model_heads:
            return np.arange(self.model_heads, dtype=np.int64)
        return np.asarray(g, dtype=np.int64).reshape(-1)

    def model_attrs(self) -> dict[str, Any]:
        return {k: _attr(v) for k, v in self.h5[S.G_MODEL].attrs.items()}

    def provenance(self) -> dict[str, Any]:
        if S.G_PROVENANCE not in self.h5:
            return {}
        g = self.h5[S.G_PROVENANCE]
        out: dict[str, Any] = {k: _attr(v) for k, v in g.attrs.items()}
        for k in g:
            out[k] = _decode(g[k][()])
        return out

    @property
    def n_examples(self) -> int:
        return int(self.h5["examples/length"].shape[0]) if "examples/length" in self.h5 else int(self.h5["examples/id"].shape[0]) if "examples/id" in self.h5 else 0

    def example_ids(self) -> list[str]:
        return [_decode(x) for x in self.h5["examples/id"][...]]

    def lengths(self) -> np.ndarray:
        return self.h5["examples/length"][...]

    def strings(self, name: str) -> list[str]:
        return [_decode(x) for x in self.h5[name][...]]

    def array(self, name: str) -> np.ndarray:
        if name not in self.h5:
            raise StoreError(f"{self.name}: has no {name} (a {self.kind} store)")
        return self._read(name, ...)

    def _read(self, name: str, sel: Any) -> np.ndarray:
        """``self.h5[name][sel]``, a failed read (checksum, damaged chunk) as one StoreError naming the store."""
        try:
            return self.h5[name][sel]
        except OSError as e:
            raise failures.read_failure(self.path, name) from e

    def rows(self, name: str, indices: list[int]) -> np.ndarray:
        """Rows ``indices`` (first axis, any order, repeats allowed) of dataset ``name``, reading only those rows."""
        if name not in self.h5:
            raise StoreError(f"{self.path}: has no {name} (a {self.kind} store)")
        ds = self.h5[name]
        if not indices:
            return np.zeros((0, *ds.shape[1:]), ds.dtype)
        uniq = sorted(set(int(i) for i in indices))
        block = ds[uniq]
        where = {i: k for k, i in enumerate(uniq)}
        return block[[where[int(i)] for i in indices]]

    def json(self, name: str) -> Any:
        return json.loads(_decode(self.h5[name][()]))

    def attrs(self, name: str = "/") -> dict[str, Any]:
        return {k: _attr(v) for k, v in self.h5[name].attrs.items()}

    # -- tokens and attention ------------------------------------------------------------
    def _require_attention(self) -> None:
        if S.ATTENTION_MAPS not in self.h5:
            raise StoreError(f"{self.name}: holds no attention maps (it is {S.a_store(self.kind)}); give a store written by extract")
        self.require_maps("full")

    @property
    def maps_mode(self) -> str:
        """What the store keeps of the weights' maps: 'full', 'topk:K' or 'none' (extract --maps; schema.A_MAPS)."""
        if S.G_ATTENTION not in self.h5:
            return S.MAPS_FULL  # a result store: what it holds is checked by kind
        return _decode(self.h5[S.G_ATTENTION].attrs.get(S.A_MAPS, S.MAPS_FULL))

    @property
    def topk(self) -> int:
        """K of a top-k store, 0 otherwise."""
        mode, k = S.parse_maps(self.maps_mode)
        return k if mode == "topk" else 0

    def require_maps(self, need: str, what: str = "this command") -> None:
        """Refuse, in one StoreError line naming the extract option to rerun with, a store without the maps ``need``:
        'full' (every map), 'topk' (full or top-k maps) or 'stats' (statistics; every attention store has them)."""
        have = self.maps_mode
        if need == "stats" or have == S.MAPS_FULL or (need == "topk" and have.startswith("topk:")):
            return
        if self.quantity != S.Q_WEIGHTS:
            return  # other quantities are kept only by full extractions
        want = "--maps full" if need == "full" else "--maps topk:K (or full)"
        held = "only statistics" if have == S.MAPS_NONE else f"the top {self.topk} weights of each row"
        raise StoreError(f"{self.name}: holds {held} (extract --maps {have}); {what} needs {'full maps' if need == 'full' else 'maps'}: "
                         f"rerun extract with {want}")

    def topk_attention(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Example ``i`` of a top-k store: (key positions int64 [L, H, T, K'], weights float32 [L, H, T, K'] largest first,
        remaining mass float32 [L, H, T]); K' = min(K, T). A full store gives its own top K' (K' = T)."""
        self._check_index(i)
        L, H = self.n_layers, self.n_heads
        T = int(self.h5["examples/length"][i])
        if self.maps_mode == S.MAPS_FULL:
            att = self.attention(i)
            order = np.argsort(-att, axis=-1, kind="stable")
            return order, np.take_along_axis(att, order, -1), np.zeros(att.shape[:-1], np.float32)
        self.require_maps("topk")
        k = min(self.topk, T)
        off = int(self.h5[S.TOPK_OFFSET][i])
        r0 = L * H * int(self.h5["examples/token_offset"][i])
        shape = (L, H, T, k)
        index = self._read(S.TOPK_INDEX, slice(off, off + L * H * T * k)).astype(np.int64).reshape(shape)
        values = self._decode_values(self._read(S.TOPK_VALUE, slice(off, off + L * H * T * k))).reshape(shape)
        rest = self._read(S.TOPK_REST, slice(r0, r0 + L * H * T)).astype(np.float32).reshape(L, H, T)
        if self.validate and (index.size and int(index.max()) >= T or not np.all(np.isfinite(values)) or (values < 0).any()):
            raise StoreError(f"{self.name}: example {i} has top-k key positions or weights out of range (damaged)")
        return index, values, rest

    def has_map_features(self) -> bool:
        """The rule classifier's features of every map were stored by extract (--maps topk or none)."""
        return S.MAP_FEATURES in self.h5 and self.quantity == S.Q_WEIGHTS

    def iter_map_features(self, start: int = 0, end: int | None = None, block: int = 1024) -> Iterator[tuple[int, np.ndarray]]:
        """(index, features float32 [L, H, F]) of examples [start, end) as extract stored them (names: the dataset's attribute)."""
        end = self.n_examples if end is None else end
        for b0 in range(start, end, block):
            rows = self._read(S.MAP_FEATURES, slice(b0, min(b0 + block, end)))
            for j, f in enumerate(rows):
                yield b0 + j, f

    def sparse_attention(self, i: int) -> np.ndarray:
        """Example ``i``'s maps float32 [L, H, T, T]: every weight of a full store; of a top-k store, each row's top K at
        their positions and 0 elsewhere (those values equal a full store's there)."""
        if self.maps_mode == S.MAPS_FULL:
            return self.attention(i)
        index, values, _ = self.topk_attention(i)
        T = index.shape[2]
        dense = np.zeros((*index.shape[:3], T), np.float32)
        np.put_along_axis(dense, index, values, -1)
        return dense

    def tokens(self, i: int) -> TokenInfo:
        self._check_index(i)
        s = int(self.h5["examples/token_offset"][i])
        n = int(self.h5["examples/length"][i])
        t = self.h5[S.G_TOKENS]
        return TokenInfo(t["ids"][s : s + n], [_decode(x) for x in t["text"][s : s + n]], t["type_ids"][s : s + n], t["special"][s : s + n], t["offsets"][s : s + n])

    def _check_index(self, i: int) -> None:
        if not 0 <= i < self.n_examples:
            raise InputError(f"{self.name}: example {i} out of range (the store holds {self.n_examples}, numbered from 0)")

    @property
    def encoding(self) -> str:
        """How attention values are stored (float16, float32, uint8); read once: HDF5 attribute reads cost ~0.1 ms."""
        if self._encoding is None:
            self._encoding = _decode(self.h5[self._q.group].attrs.get("encoding", "float16"))
        return self._encoding

    def _decode_values(self, raw: np.ndarray) -> np.ndarray:
        if self.encoding == "uint8":
            return raw.astype(np.float32) / 255.0
        return raw.astype(np.float32)

    def _checked(self, index: int, att: np.ndarray) -> np.ndarray:
        """``att`` of example ``index`` if it is attention (or validation is off); else a StoreError."""
        if self.validate:
            problem = validation.quantity_problem(att, self.encoding, self.quantity)
            if problem is not None:
                raise self._refuse(index, problem)
        return att

    def attention(self, i: int) -> np.ndarray:
        """Example ``i``'s maps of the selected quantity, float32 [layers, heads, T, T] (heads = 1 for rollout, flow)."""
        self._require_attention()
        self._check_index(i)
        L, H = self.n_layers, self.n_heads
        T = int(self.h5["examples/length"][i])
        off = int(self.h5[self._q.offset][i])
        raw = self._read(self._q.maps, slice(off, off + L * H * T * T))
        return self._checked(i, self._finish(self._decode_values(raw).reshape(L, H, T, T)))

    def iter_attention(self, indices: list[int] | None = None, block_values: int = 1 << 23) -> Iterator[tuple[int, np.ndarray]]:
        """Stream (index, attention [L, H, T, T]) in store order, reading contiguous blocks.

        Memory is bounded by ``block_values`` (plus one example), whatever the store's size. Each block's
        raw values and each example's rows are validated as they are read (``Store.validate``).
        """
        self._require_attention()
        L, H = self.n_layers, self.n_heads
        lengths = self.lengths().astype(np.int64)
        offsets = self.h5[self._q.offset][...]
        sizes = L * H * lengths**2
        order = list(range(len(lengths))) if indices is None else sorted(indices)
        k = 0
        while k < len(order):
            start = order[k]
            j = k
            end = offsets[start] + sizes[start]
            while j + 1 < len(order) and order[j + 1] == order[j] + 1 and offsets[order[j + 1]] + sizes[order[j + 1]] - offsets[start] <= block_values:
                j += 1
                end = offsets[order[j]] + sizes[order[j]]
            raw = self._read(self._q.maps, slice(offsets[start], end))
            # one pass for the whole block: values in [0, 1] (only distributions' rows are bounded so)
            values_ok = not self.validate or (self._q.distribution and not self.legacy_raw_flow and validation.raw_values_ok(raw, self.encoding))
            for idx in order[k : j + 1]:
                T = int(lengths[idx])
                o = offsets[idx] - offsets[start]
                # decoded one example at a time: it stays in cache for the check and for the caller
                # (measured: 27 ms instead of 38 ms to stream 200 pair examples, and the check 3x cheaper)
                att = self._finish(self._decode_values(raw[o : o + sizes[idx]]).reshape(L, H, T, T))
                if self.validate:
                    problem = (validation.rows_problem(att, self.encoding, zero_rows=self.quantity == "norms_normalised") if values_ok
                               else validation.quantity_problem(att, self.encoding, self.quantity))
                    if problem is not None:
                        raise self._refuse(idx, problem)
                yield idx, att
            k = j + 1

    def stats(self) -> tuple[list[str], np.ndarray]:
        """Per-example per-head summaries of the selected quantity: (names, [N, layers, heads, K])."""
        name = self._q.per_example if S.ATTENTION_MAPS in self.h5 else S.STATS_PER_EXAMPLE
        if name not in self.h5:
            raise StoreError(f"{self.name}: holds no per-example statistics (a {self.kind} store)")
        ds = self.h5[name]
        names = ds.attrs.get("names") if "names" in ds.attrs else self.h5[S.G_STATS].attrs["names"]
        return json.loads(_decode(names)), self._read(name, ...)

    def stat_means(self, indices: list[int], block_rows: int = 4096) -> tuple[list[str], np.ndarray] | None:
        """Means over examples ``indices`` of the per-example statistics of the selected quantity: (names, [L, H, K]).

        NaN (an example without such a token) is left out of each mean, as extract and merge do; read a block
        of rows at a time, so memory stays bounded at any store size. None: the store holds no such statistics.
        """
        name = self._q.per_example if S.ATTENTION_MAPS in self.h5 else S.STATS_PER_EXAMPLE
        if name not in self.h5:
            return None
        ds = self.h5[name]
        names = ds.attrs.get("names") if "names" in ds.attrs else self.h5[S.G_STATS].attrs["names"]
        sums, counts = np.zeros(ds.shape[1:]), np.zeros(ds.shape[1:])
        idx = np.unique(np.asarray(indices, dtype=np.int64))
        for b in range(0, ds.shape[0], block_rows):
            sel = idx[(idx >= b) & (idx < b + block_rows)] - b
            if len(sel):
                block = self._read(name, slice(b, min(b + block_rows, ds.shape[0])))[sel]
                ok = ~np.isnan(block)
                sums += np.where(ok, block, 0).sum(0)
                counts += ok.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return json.loads(_decode(names)), sums / counts

    def _refuse(self, index: int, problem: str) -> StoreError:
        """The error for maps that are not attention; a merged store whose shard file is gone reads as fill
        values there, so that cause is named first (what ``check`` says too)."""
        missing = self.verify_sources()
        if missing:
            return StoreError(f"{self.name}: a merged store with a missing shard: {missing[0]}"
                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                              + f"; example {index} reads as fill values; put the shard back, or merge again with --copy")
        return validation.refuse(self.name, index, problem)

    def verify_sources(self) -> list[str]:
        """Problems with virtual datasets: a missing source file reads as fill values, silently."""
        import h5py

        problems: list[str] = []

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and obj.is_virtual:
                for vs in obj.virtual_sources():
                    src = Path(vs.file_name)
                    if not src.is_absolute():
                        src = self.path.parent / src
                    if not src.exists():
                        problems.append(f"{name}: virtual source {vs.file_name} is missing")

        self.h5.visititems(visit)
        return problems

    def iter_rows(self, name: str, block_rows: int = 4096) -> Iterator[np.ndarray]:
        """Dataset ``name`` a block of rows (first axis) at a time: memory bounded at any store size."""
        ds = self.h5[name]
        for b in range(0, ds.shape[0], block_rows):
            yield ds[b : b + block_rows]

    def heads(self) -> dict[str, HeadQuantity]:
        """Every per-head [layers, heads] quantity the store holds for the selected quantity, by name.

        The weights' live directly under heads/, another quantity's under heads/<quantity>/.
        """
        import h5py

        out: dict[str, HeadQuantity] = {}
        group = S.G_HEADS if self.quantity == S.Q_WEIGHTS or S.ATTENTION_MAPS not in self.h5 else f"{S.G_HEADS}/{self.quantity}"
        if group in self.h5:
            for name, ds in self.h5[group].items():
                if isinstance(ds, h5py.Dataset):
                    n = ds.attrs.get("n")
                    out[name] = HeadQuantity(name, ds[...], _decode(ds.attrs.get("description", "")), None if n is None else int(n),
                                             _decode(ds.attrs.get("n_counts", "")))
        return out


def open_store(path: str | Path, *, kind: str | tuple[str, ...] | None = None, locking: bool | None = None, what: str = "store",
               quantity: str | None = None, validate: bool | None = None) -> Store:
    """Open and validate a store read-only; every problem is one StoreError/InputError line.

    ``quantity``: which maps to read (weights, norms, rollout, ...; None: weights), see Store.select_quantity.
    ``validate`` (default: on unless --no-validate / BERTSECRETS_NO_VALIDATE): refuse a store missing a part
    its kind needs (store.validation.REQUIRED_ON_OPEN), and check attention as it is read (rows summing
    to 1 only for the quantities whose rows are distributions, schema.Quantity.distribution).
    """
    import h5py

    validate = validation.validation_default() if validate is None else validate

    p = Path(path)
    name = failures.shown(p)
    if not p.exists():
        if p.with_name(f".{p.name}.parts").exists() or list(p.parent.glob(f".{p.name}.*.tmp")):
            raise StoreError(f"{name}: incomplete store: it is still being written, or an interrupted run left its parts (rerun that command with --resume)")
        raise InputError(f"{name}: no such file")
    if p.is_dir():
        raise InputError(f"{name}: is a folder, not a store")
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except PermissionError as e:
        raise InputError(f"{name}: cannot read the file (permission denied)") from e
    except OSError as e:
        raise InputError(f"{name}: cannot read: {e.strerror}") from e
    if head != HDF5_SIGNATURE:
        raise StoreError(f"{name}: not an HDF5 file" + (" (it is empty)" if not head else ""))
    try:
        h5 = h5py.File(p, "r", locking=locking_from_env(locking))
    except OSError as e:
        raise failures.open_failure(p, e) from e
    try:
        attrs = h5.attrs
        fmt = _decode(attrs.get(S.A_FORMAT, ""))
        if fmt != S.FORMAT:
            raise StoreError(f"{name}: not a bertsecrets store (an HDF5 file of another tool)")
        ver = _decode(attrs.get(S.A_VERSION, ""))
        if ver.split(".")[0] not in S.READABLE_VERSIONS:
            raise StoreError(f"{name}: store schema version {ver}; this bertsecrets reads version {', '.join(S.READABLE_VERSIONS)}", hint="use a matching bertsecrets release")
        if not int(attrs.get(S.A_COMPLETE, 0)):
            raise StoreError(f"{name}: incomplete store (still being written, or its writer was stopped)")
        k = _decode(attrs.get(S.A_KIND, ""))
        kinds = (kind,) if isinstance(kind, str) else kind
        if kinds and k not in kinds:
            raise StoreError(f"{name}: is {S.a_store(k)}; this command needs {' or '.join(S.a_store(x) for x in kinds)}")
        if S.G_MODEL not in h5:
            raise StoreError(f"{name}: store has no model description (damaged)")
        missing = validation.missing_parts(h5, k, on_open=True) if validate else []
        if missing:
            raise StoreError(f"{name}: {S.a_store(k)} without {', '.join(missing)}: damaged or edited by hand; run bertsecrets check on it")
    except StoreError:
        h5.close()
        raise
    except Exception as e:  # noqa: BLE001 - damaged metadata reads as corruption
        h5.close()
        raise StoreError(f"{name}: damaged store ({type(e).__name__})") from e
    if p in _RECENT:
        _RECENT.remove(p)
    _RECENT.append(p)
    del _RECENT[:-3]
    st = Store(p, h5, validate=validate)
    if quantity is not None:
        try:
            st.select_quantity(quantity)
        except Exception:
            h5.close()
            raise
    return st


# ----------------------------------------------------------------------------------------------
# patterns stores (written by classify). Added by the classify issue.


@dataclass
class PatternMaps:
    class_names: list[str]
    labels: np.ndarray  # int8 [N, L, H]
    feature_names: list[str]
    features: np.ndarray  # float32 [N, L, H, F]
    token_feature_names: list[str]
    token_attention: np.ndarray  # float32 [N, L, H, K], NaN where the example lacks the token
    attrs: dict[str, Any]  # classifier name, validation score, thresholds


def read_patterns(store: Store) -> PatternMaps:
    """The per-map labels and features of a patterns store."""
    from bertsecrets_cli.store.writer import G_PATTERNS, PATTERN_FEATURES, PATTERN_LABELS, PATTERN_TOKENS

    if PATTERN_LABELS not in store.h5:
        raise StoreError(f"{store.name}: holds no pattern labels ({S.a_store(store.kind)}); give a store written by classify")
    lab, feat, tok = store.h5[PATTERN_LABELS], store.h5[PATTERN_FEATURES], store.h5[PATTERN_TOKENS]
    return PatternMaps(
        class_names=json.loads(_decode(lab.attrs["class_names"])), labels=lab[...],
        feature_names=json.loads(_decode(feat.attrs["names"])), features=feat[...],
        token_feature_names=json.loads(_decode(tok.attrs["names"])), token_attention=tok[...],
        attrs=store.attrs(G_PATTERNS),
    )


def pattern_class_names(store: Store) -> list[str]:
    """The class names that a patterns store's labels index."""
    from bertsecrets_cli.store.writer import PATTERN_LABELS

    if PATTERN_LABELS not in store.h5:
        raise StoreError(f"{store.path}: holds no pattern labels ({S.a_store(store.kind)}); give a store written by classify")
    return json.loads(_decode(store.h5[PATTERN_LABELS].attrs["class_names"]))


def iter_pattern_blocks(store: Store, block_examples: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(labels [B, L, H], token attention [B, L, H, K]) of a patterns store, a block of examples at a time."""
    from bertsecrets_cli.store.writer import PATTERN_LABELS, PATTERN_TOKENS

    lab, tok = store.h5[PATTERN_LABELS], store.h5[PATTERN_TOKENS]
    for b in range(0, lab.shape[0], block_examples):
        yield lab[b : b + block_examples], tok[b : b + block_examples]


def iter_tokens(store: Store, block_examples: int = 2048, *, start: int = 0, end: int | None = None) -> Iterator[tuple[int, TokenInfo]]:
    """(index, TokenInfo) of examples ``start..end-1`` (default: all) in store order, a block of examples at a time.

    Same values as ``Store.tokens(i)``, which costs six small HDF5 reads per example (measured: 44% of
    classify's time on a 200-example store); memory is bounded by ``block_examples``.
    """
    n = store.n_examples if end is None else min(end, store.n_examples)
    if start >= n:
        return
    starts = store.h5["examples/token_offset"][...].astype(np.int64)
    lengths = store.lengths().astype(np.int64)
    t = store.h5[S.G_TOKENS]
    for b0 in range(start, n, block_examples):
        b1 = min(n, b0 + block_examples)
        s, e = int(starts[b0]), int(starts[b1 - 1] + lengths[b1 - 1])
        ids, types, special, offsets = t["ids"][s:e], t["type_ids"][s:e], t["special"][s:e], t["offsets"][s:e]
        text = [_decode(x) for x in t["text"][s:e]]
        for i in range(b0, b1):
            a, z = int(starts[i]) - s, int(starts[i] + lengths[i]) - s
            yield i, TokenInfo(ids[a:z], text[a:z], types[a:z], special[a:z], offsets[a:z])
