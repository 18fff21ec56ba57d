"""A 2-D scatter of heads in the terminal (``cluster``): one symbol per head, its colour and symbol both
carry the category (layer or pattern type), so the plot stays readable without colour (NO_COLOR, a pipe)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from bertsecrets_cli.render.colours import CATEGORY_RGB, category_rgb  # noqa: F401 - category_rgb: re-exported

# a qualitative palette (matplotlib's tab10), cycled for more categories
_TAB10 = CATEGORY_RGB  # render.colours: shared with the figures and the HTML view


def scatter_lines(xy: np.ndarray, categories: np.ndarray, legend: Sequence[tuple[str, str]], *, width: int = 80,
                  height: int | None = None, title: str | None = None) -> list[Any]:
    """Points [K, 2] drawn on a character grid; several heads in one cell show as '+' (their count is in the note).
    ``legend``: (symbol, name) per category index."""
    from rich.style import Style
    from rich.text import Text

    xy = np.asarray(xy, dtype=np.float64)
    cols = max(20, width - 2)
    rows = height or max(10, min(24, cols // 4))
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    cx = np.clip(((xy[:, 0] - lo[0]) / span[0] * (cols - 1)).round().astype(int), 0, cols - 1)
    cy = np.clip(((hi[1] - xy[:, 1]) / span[1] * (rows - 1)).round().astype(int), 0, rows - 1)
    cell: dict[tuple[int, int], list[int]] = {}
    for k in range(len(xy)):
        cell.setdefault((int(cy[k]), int(cx[k])), []).append(k)
    lines: list[Any] = []
    if title:
        lines.append(Text(title, style="bold"))
    border = "+" + "-" * cols + "+"
    lines.append(Text(border, style="dim"))
    shared = 0
    for r in range(rows):
        line = Text("|", style="dim")
        for col in range(cols):
            ks = cell.get((r, col))
            if not ks:
                line.append(" ")
                continue
            cats = {int(categories[k]) for k in ks}
            if len(ks) > 1:
                shared += len(ks)
            if len(cats) == 1:
                c = cats.pop()
                sym = legend[c][0] if c < len(legend) else "?"
                rgb = category_rgb(c)
                line.append(sym if len(ks) == 1 else sym.lower() if sym.isalpha() and sym.isupper() else "+",
                            style=Style(color=f"rgb({rgb[0]},{rgb[1]},{rgb[2]})", bold=True))
            else:
                line.append("+", style="bold")
        line.append("|", style="dim")
        lines.append(line)
    lines.append(Text(border, style="dim"))
    leg = Text("")
    for c, (sym, name) in enumerate(legend):
        rgb = category_rgb(c)
        leg.append(f"{sym}", style=Style(color=f"rgb({rgb[0]},{rgb[1]},{rgb[2]})", bold=True))
        leg.append(f" {name}  ")
    lines.append(leg)
    lines.append(Text(f"{len(xy)} heads; '+' or a lower-case letter: a cell of several heads ({shared} heads)", style="dim"))
    return lines
