"""Publication figures with matplotlib's Agg backend (no display): PNG, SVG or PDF, chosen by the file's extension.

Each function draws one figure and writes it atomically (an exclusive temporary in the same folder, then
a no-replace rename: bertsecrets_cli.outputs), so a killed run never leaves half an image under the final name. Files are
reproducible: no creation date in PDF/SVG metadata and a fixed SVG id salt. Labels are 1-based.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli import outputs
from bertsecrets_cli.errors import InputError

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def figure_format(path: str | Path) -> str:
    """'fig.png' -> 'png'; anything else is an InputError naming the accepted extensions."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise InputError(f"{path}: cannot tell the figure format; end the file name with {', '.join(FORMATS)}")
    return FORMATS[ext]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "bertsecrets"  # stable element ids: the same figure gives the same bytes
    plt.rcParams["svg.fonttype"] = "none"  # text stays text in SVG: searchable and editable
    return plt


def _save(fig: Any, path: str | Path) -> Path:
    fmt = figure_format(path)
    p = Path(path)
    metadata: dict[str, Any] = {"png": {"Software": "bertsecrets"}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
    plt = _plt()
    try:
        # drawn into a file object on an exclusively created temporary (bertsecrets_cli.outputs), never by name
        with outputs.writing(p) as fh:
            fig.savefig(fh, format=fmt, dpi=150 if fmt == "png" else None, bbox_inches="tight", metadata=metadata)
    finally:
        plt.close(fig)
    return p


def _wrap(text: str, inches: float, per_inch: float = 11.0) -> str:
    """A long title or label on as many lines as the figure's width (or the bar's height) needs."""
    import textwrap

    return textwrap.fill(text, max(20, int(inches * per_inch)), break_on_hyphens=False)


def _diverging(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return bool(finite.size) and float(finite.min()) < 0 < float(finite.max())


def cell_decimals(values: np.ndarray) -> int:
    """Decimals that keep a grid's cells apart: 3 below 0.1, 2 below 10, 1 below 100, else 0 (by the largest |value|)."""
    finite = np.abs(values[np.isfinite(values)])
    m = float(finite.max()) if finite.size else 0.0
    return 3 if m < 0.1 else 2 if m < 10 else 1 if m < 100 else 0


def head_grid_figure(values: np.ndarray, path: str | Path, *, title: str, label: str = "", vmin: float | None = None,
                     vmax: float | None = None, annotate: bool | None = None, hatch: np.ndarray | None = None,
                     hatch_label: str = "") -> Path:
    """[layers, heads] heat map, layers as rows (L1 on top, like the paper's figures), with a colour bar.

    ``hatch`` (bool [layers, heads]) hatches and dims the cells whose value may be noise; ``hatch_label``
    explains the hatching in a legend under the grid.
    """
    plt = _plt()
    from matplotlib.patches import Patch, Rectangle

    values = np.asarray(values, dtype=float)
    L, H = values.shape
    div = _diverging(values)
    if div and vmin is None and vmax is None:
        m = float(np.nanmax(np.abs(values)))
        vmin, vmax = -m, m
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * H + 1.8), max(2.5, 0.4 * L + 1.2)))
    cmap = plt.get_cmap("RdBu_r" if div else "viridis").with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(H), [f"H{h + 1}" for h in range(H)], fontsize=8)
    ax.set_yticks(range(L), [f"L{li + 1}" for li in range(L)], fontsize=8)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(_wrap(title, fig.get_figwidth()), fontsize=10)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    if label:
        cb.set_label(_wrap(label, fig.get_figheight(), 14.0), fontsize=8)
    marks = np.zeros(values.shape, dtype=bool) if hatch is None else np.asarray(hatch, dtype=bool)
    for li, h in zip(*np.nonzero(marks)):
        ax.add_patch(Rectangle((h - 0.5, li - 0.5), 1, 1, facecolor=(1, 1, 1, 0.6), edgecolor="#888888", hatch="//", linewidth=0))
    if annotate if annotate is not None else L * H <= 16 * 24:
        d = cell_decimals(values)
        for li in range(L):
            for h in range(H):
                v = values[li, h]
                if np.isfinite(v):
                    r, g, b, _ = cmap(im.norm(v))
                    text = f"{v:.{d}f}"
                    text = text.replace("0.", ".", 1) if text.startswith(("0.", "-0.")) else text
                    dark = marks[li, h] or 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.5
                    ax.text(h, li, text, ha="center", va="center", fontsize=6, color="black" if dark else "white")
    if hatch is not None:
        ax.legend(handles=[Patch(facecolor="white", edgecolor="#888888", hatch="//", label=f"{hatch_label or 'may be noise'} ({int(marks.sum())} of {marks.size})")],
                  loc="upper left", bbox_to_anchor=(0, -0.6 / fig.get_figheight() - 0.05), fontsize=7, frameon=False)
    return _save(fig, path)


def category_grid_figure(values: np.ndarray, classes: Sequence[str], path: str | Path, *, title: str,
                         letters: Sequence[str] | None = None) -> Path:
    """[layers, heads] of class indices (e.g. majority pattern type per head): one colour and letter per class."""
    plt = _plt()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    values = np.asarray(values, dtype=float)
    L, H = values.shape
    K = len(classes)
    from bertsecrets_cli.render.colours import CATEGORY_HEX

    # render.colours: a pattern type has the same colour here, in the terminal and in the HTML view
    cmap = ListedColormap([CATEGORY_HEX[k % len(CATEGORY_HEX)] for k in range(K)]).with_extremes(bad="#dddddd")
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * H + 3.0), max(2.5, 0.4 * L + 1.2)))
    ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-0.5, vmax=K - 0.5, aspect="auto", interpolation="nearest")
    if letters is not None:
        for li in range(L):
            for h in range(H):
                if np.isfinite(values[li, h]) and 0 <= int(values[li, h]) < K:
                    ax.text(h, li, letters[int(values[li, h])], ha="center", va="center", fontsize=7, color="white")
    ax.set_xticks(range(H), [f"H{h + 1}" for h in range(H)], fontsize=8)
    ax.set_yticks(range(L), [f"L{li + 1}" for li in range(L)], fontsize=8)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(_wrap(title, fig.get_figwidth()), fontsize=10)
    ax.legend(handles=[Patch(color=CATEGORY_HEX[k % len(CATEGORY_HEX)], label=c) for k, c in enumerate(classes)], fontsize=7,
              bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    return _save(fig, path)


def attention_map_figure(att: np.ndarray, tokens: Sequence[str], path: str | Path, *, title: str) -> Path:
    """One head's [T, T] attention map with its tokens on both axes (rows attend to columns)."""
    plt = _plt()
    T = att.shape[0]
    size = min(12.0, max(4.0, 0.22 * T + 2.0))
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(att, cmap="viridis", vmin=0.0, vmax=max(float(np.nanmax(att)), 1e-9), interpolation="nearest")
    fs = 8 if T <= 40 else 6 if T <= 80 else None
    if fs:
        ax.set_xticks(range(T), list(tokens), rotation=90, fontsize=fs)
        ax.set_yticks(range(T), list(tokens), fontsize=fs)
    ax.set_xlabel("attended token (key)")
    ax.set_ylabel("attending token (query)")
    ax.set_title(_wrap(title, fig.get_figwidth()), fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).set_label("attention weight", fontsize=8)
    return _save(fig, path)


def share_bars_figure(labels: Sequence[str], types: Sequence[str], shares: np.ndarray, path: str | Path, *, title: str,
                      ylabel: str = "share of attention maps") -> Path:
    """Stacked bars, one per label (layer), one segment per type: shares [len(labels), len(types)]."""
    plt = _plt()
    shares = np.nan_to_num(np.asarray(shares, dtype=float), nan=0.0)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(labels) + 2.5), 3.6))
    bottom = np.zeros(len(labels))
    colours = plt.get_cmap("tab10")
    for k, t in enumerate(types):
        ax.bar(range(len(labels)), shares[:, k], bottom=bottom, label=t, color=colours(k % 10), width=0.8)
        bottom += shares[:, k]
    ax.set_xticks(range(len(labels)), list(labels), fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, max(1.0, float(bottom.max()) if len(bottom) else 1.0))
    ax.set_title(_wrap(title, fig.get_figwidth()), fontsize=10)
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    return _save(fig, path)


def layer_curves_figure(series: dict[str, np.ndarray], path: str | Path, *, title: str, ylabel: str = "") -> Path:
    """One line per quantity over layers L1..Ln (e.g. [CLS] and [SEP] attention, or similarity per layer)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    n = max(len(v) for v in series.values())
    for name, v in series.items():
        ax.plot(range(1, len(v) + 1), v, marker="o", label=name)
    ax.set_xticks(range(1, n + 1), [f"L{i}" for i in range(1, n + 1)], fontsize=8)
    ax.set_xlabel("layer")
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.set_title(_wrap(title, fig.get_figwidth()), fontsize=10)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=7, frameon=False)
    return _save(fig, path)
