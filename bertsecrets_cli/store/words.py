"""The layout of a ``words`` store: word-level attention maps beside the word units they are over.

Same ragged "flat values + offset index" pattern as ``attention/maps`` (docs/store.md): example i's maps are
``words/maps[o_i : o_i + L*H*W_i^2].reshape(L, H, W_i, W_i)`` with ``o_i = examples/word_map_offset[i]``,
and its units are rows ``examples/word_offset[i] ..+ examples/n_words[i]`` of ``words/text``, ``words/spans``,
``words/segment`` and ``words/special``. Only this module knows these names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from bertsecrets_cli.errors import StoreError
from bertsecrets_cli.store import schema as S

KIND = "words"
G_WORDS = "words"
WORD_MAPS = "words/maps"
N_WORDS = "examples/n_words"
WORD_OFFSET = "examples/word_offset"
WORD_MAP_OFFSET = "examples/word_map_offset"
# the input's example index a words store carries (its own offsets are written by WordMapsWriter.close)
EXAMPLE_FIELDS = ("examples/id", "examples/text_a", "examples/text_b", "examples/label", "examples/length")
UNIT_FIELDS = (f"{G_WORDS}/text", f"{G_WORDS}/spans", f"{G_WORDS}/segment", f"{G_WORDS}/special")


@dataclass
class WordInfo:
    text: list[str]
    spans: np.ndarray  # int32 [W, 2]
    segment: np.ndarray  # int8 [W]
    special: np.ndarray  # int8 [W]


class WordMapsWriter:
    """Append one example's units and word maps at a time (memory: one example)."""

    def __init__(self, w: Any, *, boundaries: str, rule: str) -> None:
        self._maps = w.appender(WORD_MAPS, np.float32, fletcher32=True)
        self._text = w.appender(f"{G_WORDS}/text", _str_dtype())
        self._spans = w.appender(f"{G_WORDS}/spans", np.int32, (2,))
        self._segment = w.appender(f"{G_WORDS}/segment", np.int8)
        self._special = w.appender(f"{G_WORDS}/special", np.int8)
        self._n: list[int] = []
        self._w = w
        self._attrs = {"boundaries": boundaries, "rule": rule, "layout": "flat example-major [layer, head, query word, key word]"}

    def add(self, texts: list[str], spans: np.ndarray, segment: np.ndarray, special: np.ndarray, maps: np.ndarray) -> None:
        W = len(texts)
        if maps.shape[-2:] != (W, W):
            raise ValueError(f"word maps {maps.shape} do not match {W} units")
        self._maps.append(np.asarray(maps, dtype=np.float32).reshape(-1))
        self._text.append(np.asarray(texts, dtype=object))
        self._spans.append(np.asarray(spans, dtype=np.int32).reshape(W, 2))
        self._segment.append(np.asarray(segment, dtype=np.int8))
        self._special.append(np.asarray(special, dtype=np.int8))
        self._n.append(W)

    def extend_from(self, store: Any, block_rows: int = 1 << 16, block_values: int = 1 << 22) -> None:
        """Append every example of the words store ``store`` as stored (a merge of shards), a block at a time
        (memory: ``block_rows`` units, ``block_values`` map values)."""
        _require(store)
        for src, dst in zip(UNIT_FIELDS, (self._text, self._spans, self._segment, self._special)):
            ds = store.h5[src].asstr() if src == f"{G_WORDS}/text" else store.h5[src]
            for b in range(0, store.h5[src].shape[0], block_rows):
                dst.append(ds[b : b + block_rows])
        maps = store.h5[WORD_MAPS]
        for b in range(0, maps.shape[0], block_values):
            self._maps.append(maps[b : b + block_values])
        self._n.extend(int(x) for x in store.h5[N_WORDS][...])

    def close(self, n_layers: int, n_heads: int) -> None:
        n = np.asarray(self._n, dtype=np.int64)
        self._w.put_array(N_WORDS, n.astype(np.int32))
        self._w.put_array(WORD_OFFSET, np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64) if len(n) else n)
        sizes = n_layers * n_heads * n**2
        self._w.put_array(WORD_MAP_OFFSET, np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if len(n) else n)
        g = self._w.h5.require_group(G_WORDS)
        for k, v in self._attrs.items():
            g.attrs[k] = v


def copy_word_examples(w: Any, store: Any, start: int = 0, end: int | None = None) -> None:
    """Copy the example index of the attention store ``store`` (examples ``start..end-1``: a shard) to the words store ``w`` writes."""
    whole = start == 0 and (end is None or end >= store.n_examples)
    for name in EXAMPLE_FIELDS:
        if name not in store.h5:
            continue
        src = store.h5[name]
        if whole:
            w.h5.copy(src, name)
        else:
            ds = w.h5.create_dataset(name, data=src[start:end], dtype=src.dtype)
            for k, v in src.attrs.items():
                ds.attrs[k] = v


def merge_word_stores(w: Any, ordered: list[Any]) -> None:
    """Write the shards ``ordered`` (words stores, in shard order) one after the other into the words store ``w``
    writes, offsets rebuilt: the same examples, units and maps as one unsharded conversion."""
    first = ordered[0]
    attrs = word_attrs(first)
    for st in ordered[1:]:
        if word_attrs(st) != attrs:
            raise StoreError(f"{st.path}: its word conversion ({word_attrs(st).get('boundaries')}) differs from {first.path}'s ({attrs.get('boundaries')}); "
                             "merge the shards of one words job")
    for name in EXAMPLE_FIELDS:
        have = [name in st.h5 for st in ordered]
        if all(have):
            w.concat_from(name, ordered)
        elif any(have):
            raise StoreError(f"{ordered[have.index(False)].path}: has no {name}, {ordered[have.index(True)].path} has; merge the shards of one words job")
    wm = WordMapsWriter(w, boundaries=str(attrs.get("boundaries", "")), rule=str(attrs.get("rule", "")))
    for st in ordered:
        wm.extend_from(st)
    wm.close(first.n_layers, first.n_heads)


def _str_dtype() -> Any:
    import h5py

    return h5py.string_dtype("utf-8")


def _require(store: Any) -> None:
    if WORD_MAPS not in store.h5:
        raise StoreError(f"{store.path}: holds no word-level maps (it is {S.a_store(store.kind)}); give a store written by 'bertsecrets words'")


def word_attrs(store: Any) -> dict[str, Any]:
    _require(store)
    return store.attrs(G_WORDS)


def word_units(store: Any, i: int) -> WordInfo:
    """The units (words and special tokens) of example ``i``."""
    _require(store)
    s, n = int(store.h5[WORD_OFFSET][i]), int(store.h5[N_WORDS][i])
    g = store.h5[G_WORDS]
    text = [x.decode() if isinstance(x, bytes) else str(x) for x in g["text"][s : s + n]]
    return WordInfo(text, g["spans"][s : s + n], g["segment"][s : s + n], g["special"][s : s + n])


def word_maps(store: Any, i: int) -> np.ndarray:
    """Example ``i``'s word attention, float32 [layers, heads, W, W]."""
    _require(store)
    L, H = store.n_layers, store.n_heads
    W = int(store.h5[N_WORDS][i])
    off = int(store.h5[WORD_MAP_OFFSET][i])
    return store.h5[WORD_MAPS][off : off + L * H * W * W].reshape(L, H, W, W)


def iter_word_maps(store: Any, start: int = 0, end: int | None = None, block_values: int = 1 << 23) -> Iterator[tuple[int, np.ndarray]]:
    """Stream (index, word maps [L, H, W, W]) of examples ``start..end-1`` in store order, a contiguous block
    at a time (bounded memory)."""
    _require(store)
    L, H = store.n_layers, store.n_heads
    n = store.h5[N_WORDS][...].astype(np.int64)
    offs = store.h5[WORD_MAP_OFFSET][...].astype(np.int64)
    sizes = L * H * n**2
    ds = store.h5[WORD_MAPS]
    stop = len(n) if end is None else min(end, len(n))
    i = start
    while i < stop:
        j = i
        while j + 1 < stop and offs[j + 1] + sizes[j + 1] - offs[i] <= block_values:
            j += 1
        block = ds[offs[i] : offs[j] + sizes[j]]
        for k in range(i, j + 1):
            o = offs[k] - offs[i]
            yield k, block[o : o + sizes[k]].reshape(L, H, int(n[k]), int(n[k]))
        i = j + 1
