"""One attention map as a terminal heatmap with its tokens (used by ``classify annotate``).

Rows are queries, columns keys; each cell is two characters. A cell's colour and its shade character both
carry the value, so the map stays readable without colour (NO_COLOR, a pipe, a log).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# matplotlib's viridis at nine anchors, so terminal and file figures agree without importing matplotlib
_VIRIDIS = ((68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140), (40, 174, 128), (94, 201, 98), (173, 220, 48), (253, 231, 37))
_SHADES = " .:-=+*#%@"


def _rgb(t: float) -> tuple[int, int, int]:
    x = min(1.0, max(0.0, t)) * (len(_VIRIDIS) - 1)
    i = min(int(x), len(_VIRIDIS) - 2)
    f = x - i
    a, b = _VIRIDIS[i], _VIRIDIS[i + 1]
    return (int(a[0] + (b[0] - a[0]) * f), int(a[1] + (b[1] - a[1]) * f), int(a[2] + (b[2] - a[2]) * f))


def _label(tok: str, width: int) -> str:
    return tok if len(tok) <= width else tok[: width - 1] + "~"


def render_map(att: np.ndarray, tokens: Sequence[str], *, title: str | None = None, max_tokens: int = 48,
               label_width: int = 10, gamma: float = 0.5) -> Any:
    """A [T, T] map with token labels -> a rich renderable (``Console.print`` it).

    Values are scaled to the map's maximum with ``gamma`` (0.5 brightens weak attention, as the eye needs);
    maps longer than ``max_tokens`` show their first ``max_tokens`` tokens and say so. Column labels are the
    tokens written top-down (first 4 characters).
    """
    from rich.console import Group
    from rich.style import Style
    from rich.text import Text

    a = np.asarray(att, dtype=np.float32)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"render_map needs a square [T, T] map, got {a.shape}")
    T = a.shape[0]
    toks = [str(t) for t in tokens][:T] + [""] * max(0, T - len(tokens))
    n = min(T, max_tokens)
    shown = a[:n, :n]
    vmax = float(shown.max()) if shown.size and shown.max() > 0 else 1.0
    scaled = (np.clip(shown, 0, None) / vmax) ** gamma
    lines: list[Text] = []
    if title:
        lines.append(Text(title, style="bold"))
    pad = " " * (label_width + 5)
    for k in range(4):  # column labels, top-down
        line = Text(pad)
        for j in range(n):
            tok = toks[j]
            line.append((tok[k] if k < len(tok) else " ") + " ", style="dim" if j % 2 else "")
        lines.append(line)
    for i in range(n):
        line = Text(f"{i:>3} {_label(toks[i], label_width):>{label_width}} ")
        for j in range(n):
            v = float(scaled[i, j])
            ch = _SHADES[min(len(_SHADES) - 1, int(round(v * (len(_SHADES) - 1))))]
            rgb = _rgb(v)
            line.append(ch * 2, style=Style(color="black" if v > 0.6 else "white", bgcolor=f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"))
        lines.append(line)
    note = f"max {vmax:.3f}" + (f"; first {n} of {T} tokens shown" if n < T else "")
    lines.append(Text(note, style="dim"))
    return Group(*lines)
