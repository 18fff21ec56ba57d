"""Reading a page written by ``bertsecrets view`` back in Python: its data, decoded maps, and PNG screenshots."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

_DATA = re.compile(r'<script type="application/json" id="bertsecrets-data">(.*?)</script>', re.S)


def payload(path: str | Path) -> dict[str, Any]:
    """The JSON the page carries (its only data)."""
    m = _DATA.search(Path(path).read_text(encoding="utf-8"))
    assert m, f"{path}: no data element"
    return json.loads(m.group(1))


def maps(page: dict[str, Any], pos: int) -> np.ndarray:
    """Example ``pos`` of the page decoded as the page's script decodes it: [L, H, T, T] float32."""
    ex = page["examples"][pos]
    raw = base64.b64decode(ex["maps"])
    T = len(ex["tokens"])
    vals = np.frombuffer(raw, np.uint8).astype(np.float32) / 255 if page["encoding"] == "uint8" else np.frombuffer(raw, "<f2").astype(np.float32)
    return vals.reshape(page["layers"], page["heads"], T, T)


def read_png(path: str | Path) -> np.ndarray:
    """An 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes) as uint8 [height, width, 3]."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * bpp)
    out = np.zeros((h, w * bpp), np.int32)
    prev = np.zeros(w * bpp, np.int32)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        else:  # 1 sub, 3 average, 4 Paeth: depend on the bytes to the left, one pixel at a time
            cur = np.zeros_like(line)
            for i in range(len(line)):
                a = cur[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur[i] = (line[i] + pred) & 255
        out[y] = cur
        prev = cur
    return out.reshape(h, w, bpp)[..., :3].astype(np.uint8)


def make_side_stores(demo_store: Path, d: Path) -> dict[str, Any]:
    """A patterns, a diff and an ablation store of ``demo_store``'s examples, with known per-head and per-example values."""
    from bertsecrets_cli.store import StoreWriter, open_store
    from bertsecrets_cli.store.writer import PatternsWriter

    with open_store(demo_store) as st:
        ids, L, H = st.example_ids(), st.n_layers, st.n_heads
    n = len(ids)
    rng = np.random.default_rng(0)
    out = {}
    classes = ["vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous"]
    out["patterns"] = d / "pat.h5"
    with StoreWriter(out["patterns"], "patterns") as w:
        w.set_model(n_layers=L, n_heads=H, name="synthetic")
        w.put_strings("examples/id", ids)
        pw = PatternsWriter(w, n_layers=L, n_heads=H, class_names=classes, feature_names=["f"], token_feature_names=["cls"], attrs={})
        labels = (np.arange(n)[:, None, None] + np.arange(L)[None, :, None] + np.arange(H)[None, None, :]) % 5
        pw.add_block(labels.astype(np.int8), np.zeros((n, L, H, 1), np.float32), np.zeros((n, L, H, 1), np.float32))
        pw.labels.flush(), pw.features.flush(), pw.tokens.flush()
        w.put_head_quantity("pattern_majority", labels[0].astype(float), "majority type")
    out["diff"] = d / "diff.h5"
    cos = rng.uniform(0.2, 1.0, (n, L, H))
    with StoreWriter(out["diff"], "diff") as w:
        w.set_model(n_layers=L, n_heads=H, name="synthetic")
        w.put_strings("examples/id", ids)
        w.put_array("per_example/cosine", cos)
        w.put_head_quantity("cosine", cos.mean(0), "mean cosine")
    out["ablation"] = d / "abl.h5"
    delta = np.linspace(-0.05, 0.03, L * H).reshape(L, H)
    delta[0, 0] = np.nan
    with StoreWriter(out["ablation"], "ablation") as w:
        w.set_model(n_layers=L, n_heads=H, name="synthetic")
        w.put_head_quantity("ablation_delta", delta, "score with the head disabled minus the baseline")
    out["cos"], out["delta"], out["labels"] = cos, delta, labels  # type: ignore[assignment]
    return out
