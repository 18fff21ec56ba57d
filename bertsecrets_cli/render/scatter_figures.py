"""The head-embedding figure of ``cluster`` (Clark et al. 2019, Figure 6): PNG, SVG or PDF, written atomically
and reproducibly like every figure (render/figures.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bertsecrets_cli.render.figures import _plt, _save


def head_embedding_figure(xy: np.ndarray, layers: np.ndarray, patterns: np.ndarray | None, path: str | Path, *,
                          names: Sequence[str], title: str) -> Path:
    """Heads as points in 2-D, coloured by layer (a sequential colour map); with ``patterns`` a second panel
    colours the same points by majority pattern type."""
    from bertsecrets_cli.analysis.patterns import CLASSES

    plt = _plt()
    panels = 2 if patterns is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.0 * panels, 5.2), squeeze=False)
    n_layers = int(layers.max()) + 1 if len(layers) else 1
    ax = axes[0, 0]
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=layers + 1, cmap="viridis", vmin=1, vmax=max(2, n_layers), s=36, edgecolors="black", linewidths=0.3)
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label("layer")
    ax.set_title("by layer")
    shown = labelled_points(xy)
    for k in shown:
        ax.annotate(names[k], (xy[k, 0], xy[k, 1]), fontsize=6, alpha=0.85, xytext=(3, 3), textcoords="offset points")
    if len(shown) < len(xy):
        ax.text(0.0, -0.12, f"{len(shown)} of {len(xy)} heads labelled: the others are too close to a labelled one to read",
                transform=ax.transAxes, fontsize=7, color="#5d6875")
    if patterns is not None:
        ax2 = axes[0, 1]
        from matplotlib.colors import ListedColormap

        from bertsecrets_cli.render.colours import CATEGORY_HEX

        cmap = ListedColormap(list(CATEGORY_HEX))  # the pattern colours of every figure, the terminal and the view
        for c, cls in enumerate(CLASSES):
            m = patterns == c
            if m.any():
                ax2.scatter(xy[m, 0], xy[m, 1], color=cmap(c), label=f"{cls} ({int(m.sum())})", s=36, edgecolors="black", linewidths=0.3)
        ax2.legend(fontsize=7, loc="best")
        ax2.set_title("by majority pattern type")
    for a in axes[0]:
        a.set_xlabel("MDS 1")
        a.set_ylabel("MDS 2")
    fig.suptitle(title)
    return _save(fig, path)


def labelled_points(xy: np.ndarray, min_gap: float = 0.06) -> list[int]:
    """Which points get a label: in order, each one at least ``min_gap`` (a fraction of the plot's extent) from
    every point already labelled, so no two labels overlap; a crowded cluster shows one label for its heads."""
    xy = np.asarray(xy, dtype=float)
    if len(xy) == 0:
        return []
    span = np.ptp(xy, axis=0)
    span[span == 0] = 1.0
    unit = (xy - xy.min(0)) / span
    chosen: list[int] = []
    for k, p in enumerate(unit):
        if all(np.hypot(*(p - unit[j])) >= min_gap for j in chosen):
            chosen.append(k)
    return chosen
