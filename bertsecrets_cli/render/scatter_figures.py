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
    if len(xy) <= 160:
        for k, nm in enumerate(names):
            ax.annotate(nm, (xy[k, 0], xy[k, 1]), fontsize=5, alpha=0.7, xytext=(2, 2), textcoords="offset points")
    if patterns is not None:
        ax2 = axes[0, 1]
        cmap = plt.get_cmap("tab10")
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
