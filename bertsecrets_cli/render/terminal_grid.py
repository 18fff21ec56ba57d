"""Figures drawn in the terminal with rich: head grids, per-layer curves, stacked share bars, attention maps.

Every figure is a list of ``rich.text.Text`` lines, readable at 80 columns. Colours carry the values in
a terminal; the same lines stay readable without colour (a pipe, a batch log, NO_COLOR) because cells
also print their value, bars are drawn with block characters, and share bars use the type's letter.
Layer and head labels are 1-based (L1, H1), as everywhere in bertsecrets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text

from bertsecrets_cli.render.colours import CATEGORY_RGB

# anchor colours of matplotlib's viridis (sequential) and RdBu_r (diverging) and tab10 (categories),
# so the terminal and the file figures agree without importing matplotlib for a terminal plot
VIRIDIS = [(68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140), (40, 174, 128), (94, 201, 98), (173, 220, 48), (253, 231, 37)]
RDBU_R = [(5, 48, 97), (42, 113, 178), (107, 172, 209), (194, 221, 236), (247, 246, 246), (251, 204, 180), (228, 128, 102), (186, 40, 50), (103, 0, 31)]
TAB10 = list(CATEGORY_RGB)  # render.colours: the same category colours as the figures and the HTML view
EIGHTHS = " ▏▎▍▌▋▊▉█"
SHADES = " .:-=+*#%@"  # map cells without colour
MISSING = "·"


def _interp(anchors: list[tuple[int, int, int]], t: float) -> tuple[int, int, int]:
    t = min(1.0, max(0.0, t))
    x = t * (len(anchors) - 1)
    i = min(int(x), len(anchors) - 2)
    f = x - i
    a, b = anchors[i], anchors[i + 1]
    return tuple(int(round(a[k] + (b[k] - a[k]) * f)) for k in range(3))  # type: ignore[return-value]


def _cell_style(rgb: tuple[int, int, int]) -> Style:
    lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    return Style(bgcolor=Color.from_rgb(*rgb), color="black" if lum > 140 else "white")


class Scale:
    """Value -> colour: viridis from vmin to vmax, or a diverging map centred on 0 for signed values."""

    def __init__(self, values: np.ndarray, vmin: float | None = None, vmax: float | None = None, diverging: bool | None = None) -> None:
        finite = values[np.isfinite(values)]
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 1.0
        self.diverging = (lo < 0 < hi) if diverging is None else diverging
        if self.diverging:
            m = max(abs(lo), abs(hi)) or 1.0
            lo, hi = -m, m
        self.vmin = lo if vmin is None else vmin
        self.vmax = hi if vmax is None else vmax
        if self.vmax <= self.vmin:
            self.vmax = self.vmin + (abs(self.vmin) or 1.0) * 1e-6 + 1e-12

    def fraction(self, v: float) -> float:
        return (v - self.vmin) / (self.vmax - self.vmin)

    def rgb(self, v: float) -> tuple[int, int, int]:
        return _interp(RDBU_R if self.diverging else VIRIDIS, self.fraction(v))

    def legend(self, label: str = "", steps: int = 24, missing: bool = True) -> Text:
        lo, hi = _pair(self.vmin, self.vmax)
        t = Text("legend: ")
        t.append(lo)
        t.append(" ")
        for k in range(steps):
            rgb = _interp(RDBU_R if self.diverging else VIRIDIS, k / (steps - 1))
            t.append("█", style=Style(color=Color.from_rgb(*rgb)))
        t.append(" ")
        t.append(hi)
        if label:
            t.append(f"  {label}")
        if missing:
            t.append(f"  ({MISSING} no value)")
        return t


def _num(v: float) -> str:
    if not math.isfinite(v):
        return "nan"
    a = abs(v)
    if a != 0 and (a < 1e-3 or a >= 1e5):
        return f"{v:.2e}"
    return f"{v:.4g}" if a >= 100 else f"{v:.3f}"


def _pair(lo: float, hi: float) -> tuple[str, str]:
    """The two ends of a scale in one notation (0.000 and 0.132, not 6.48e-06 and 0.132)."""
    m = max(abs(lo), abs(hi))
    if 1e-2 <= m < 1e5:
        d = 3 if m < 100 else 0
        return f"{lo:.{d}f}", f"{hi:.{d}f}"
    return _num(lo), _num(hi)


def _short(v: float, decimals: int) -> str:
    """Compact cell text: 0.25 -> '.25', -0.03 -> '-.03'."""
    s = f"{v:.{decimals}f}"
    if decimals and s.startswith("0."):
        s = s[1:]
    elif decimals and s.startswith("-0."):
        s = "-" + s[2:]
    return "0" if s in ("-0", "-.00", "-.0") and decimals == 0 else s


def cell_formatter(values: np.ndarray, budget: int) -> tuple[int, bool]:
    """Most decimals (2, 1, 0) such that every finite value fits in ``budget`` characters; False if none do."""
    finite = values[np.isfinite(values)]
    for d in (2, 1, 0):
        if all(len(_short(float(v), d)) <= budget for v in finite):
            return d, True
    return 0, False


UNCERTAIN = "?"  # after a cell's value: its 95% interval includes 0 (the tables' "noise?")


def _dim(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """The colour mixed 70% with mid grey: a cell that may be noise recedes."""
    return tuple(int(round(0.3 * c + 0.7 * 128)) for c in rgb)  # type: ignore[return-value]


def head_grid(values: np.ndarray, *, title: str, description: str = "", width: int = 80,
              vmin: float | None = None, vmax: float | None = None, diverging: bool | None = None,
              uncertain: np.ndarray | None = None, uncertain_note: str = "", unit: str = "") -> list[Text]:
    """[layers, heads] as coloured cells, one row per layer (L1..), one column per head (H1..), plus a legend.

    ``uncertain`` (bool [layers, heads]) marks cells whose value may be noise: dimmed, and '?' after the
    number so the mark survives without colour; ``uncertain_note`` says what the mark means under the legend.
    ``unit`` follows the legend's range.
    """
    values = np.asarray(values, dtype=float)
    marks = np.zeros(values.shape, dtype=bool) if uncertain is None else np.asarray(uncertain, dtype=bool)
    L, H = values.shape
    label_w = len(f"L{L}") + 1
    cw = max(2, min(6, (width - label_w) // max(H, 1)))
    # with marks a cell is ' -1.3?': one column more kept free, so neighbouring numbers never touch
    decimals, show_numbers = cell_formatter(values, cw - 1 - (uncertain is not None))
    scale = Scale(values, vmin, vmax, diverging)
    lines = [Text(title, style="bold")]
    if description:
        lines.append(Text(description, style="dim"))
    header = Text(" " * label_w)
    step = 1 if cw >= len(f"H{H}") + 1 else 2  # label every other head when cells are too narrow
    for h in range(H):
        header.append(f"H{h + 1}".rjust(cw) if h % step == 0 else " " * cw)
    lines.append(header)
    for li in range(L):
        row = Text(f"L{li + 1}".ljust(label_w))
        for h in range(H):
            v = float(values[li, h])
            if not math.isfinite(v):
                row.append(MISSING.rjust(cw))
                continue
            mark = UNCERTAIN if marks[li, h] else " "
            txt = _short(v, decimals).rjust(cw - 1) + mark if show_numbers else " " * (cw - 1) + mark
            rgb = scale.rgb(v)
            row.append(txt, style=_cell_style(_dim(rgb) if marks[li, h] else rgb))
        lines.append(row)
    lines.append(scale.legend(", ".join(x for x in (unit, "diverging, centred on 0" if scale.diverging else "") if x)))
    if uncertain is not None:
        lines.append(Text(f"{UNCERTAIN} dimmed: {uncertain_note or 'may be noise'} ({int(marks.sum())} of {marks.size} cells)", style="dim"))
    return lines


def layer_curves(series: dict[str, np.ndarray], *, title: str, description: str = "", width: int = 80) -> list[Text]:
    """Per-layer values of one or more quantities as horizontal bars: a line per layer and quantity."""
    names = list(series)
    n_layers = max(len(v) for v in series.values())
    all_v = np.concatenate([np.asarray(v, float) for v in series.values()])
    finite = all_v[np.isfinite(all_v)]
    lo = min(0.0, float(finite.min())) if finite.size else 0.0
    hi = max(0.0, float(finite.max())) if finite.size else 1.0
    if hi <= lo:
        hi = lo + 1.0
    name_w = min(16, max(len(n) for n in names)) if len(names) > 1 else 0
    label_w = len(f"L{n_layers}") + 1
    bar_w = max(10, width - label_w - (name_w + 1 if name_w else 0) - 10)
    zero = int(round((0 - lo) / (hi - lo) * bar_w))
    lines = [Text(title, style="bold")]
    if description:
        lines.append(Text(description, style="dim"))
    scale_line = Text(" " * (label_w + (name_w + 1 if name_w else 0)))
    a, b = _pair(lo, hi)
    scale_line.append(a.ljust(bar_w - len(b)) + b, style="dim")
    lines.append(scale_line)
    for li in range(n_layers):
        for k, name in enumerate(names):
            colour = Style(color=Color.from_rgb(*TAB10[k % len(TAB10)]))
            line = Text((f"L{li + 1}" if k == 0 else "").ljust(label_w))
            if name_w:
                line.append(name[:name_w].ljust(name_w) + " ", style=colour)
            vals = np.asarray(series[name], float)
            v = float(vals[li]) if li < len(vals) else float("nan")
            if not math.isfinite(v):
                line.append(" " * bar_w + f" {MISSING}")
                lines.append(line)
                continue
            pos = (v - lo) / (hi - lo) * bar_w
            if v >= 0:
                full = int(pos) - zero
                frac = int(round((pos - int(pos)) * 8))
                bar = "█" * max(0, full) + (EIGHTHS[frac] if frac and full >= 0 else "")
                line.append(" " * zero)
                line.append(bar, style=colour)
                line.append(" " * max(0, bar_w - zero - len(bar)))
            else:
                start = int(round(pos))
                line.append(" " * start)
                line.append("█" * (zero - start), style=colour)
                line.append(" " * (bar_w - zero))
            line.append(f" {_num(v)}")
            lines.append(line)
    if len(names) > 1:
        items = []
        for k, name in enumerate(names):
            item = Text("██", style=Style(color=Color.from_rgb(*TAB10[k % len(TAB10)])))
            item.append(f" {name} ")
            items.append(item)
        lines.extend(_wrap_legend(items, width))
    return lines


def _wrap_legend(items: list[Text], width: int) -> list[Text]:
    """'legend:' and its items on as many lines as needed to stay within ``width`` columns."""
    lines = [Text("legend:")]
    for item in items:
        if lines[-1].cell_len + 1 + item.cell_len > width and lines[-1].plain.strip():
            lines.append(Text("       "))
        lines[-1].append(" ")
        lines[-1].append_text(item)
    return lines


def _letters(types: Sequence[str]) -> list[str]:
    """One distinct character per type: its initial when free, else another of its letters, else a digit."""
    used: set[str] = set()
    out = []
    for k, t in enumerate(types):
        cands = [ch.upper() for ch in t if ch.isalnum()] + [ch.lower() for ch in t if ch.isalpha()] + [str(d) for d in range(10)]
        ch = next((c for c in cands if c not in used), str(k))
        used.add(ch)
        out.append(ch)
    return out


def _largest_remainder(fracs: np.ndarray, total: int) -> list[int]:
    raw = fracs * total
    base = np.floor(raw).astype(int)
    short = total - int(base.sum())
    for k in np.argsort(-(raw - base))[: max(0, short)]:
        base[k] += 1
    return base.tolist()


def share_bars(labels: Sequence[str], types: Sequence[str], shares: np.ndarray, *, title: str, description: str = "", width: int = 80,
               letters: Sequence[str] | None = None) -> list[Text]:
    """Stacked bars: one line per label (e.g. layer), one coloured, lettered segment per type, sized by share.

    ``shares`` is [len(labels), len(types)]; rows summing to less than 1 leave the rest blank ("other").
    ``letters`` (one per type) default to distinct letters of the type names.
    """
    shares = np.nan_to_num(np.asarray(shares, dtype=float), nan=0.0).clip(min=0)
    letters = list(letters) if letters is not None and len(set(letters)) == len(types) else _letters(types)
    label_w = max(len(x) for x in labels) + 1
    bar_w = max(10, width - label_w - 2)
    lines = [Text(title, style="bold")]
    if description:
        lines.append(Text(description, style="dim"))
    for lab, row in zip(labels, shares):
        s = row.sum()
        fr = row / s if s > 1 else row
        cells = _largest_remainder(fr, int(round(min(1.0, fr.sum()) * bar_w)))
        line = Text(lab.ljust(label_w) + "▕")
        for k, n in enumerate(cells):
            if n:
                line.append(letters[k] * n, style=_cell_style(TAB10[k % len(TAB10)]))
        line.append(" " * (bar_w - sum(cells)) + "▏")
        lines.append(line)
    mean = shares.mean(0) if len(shares) else np.zeros(len(types))
    lines.extend(_class_legend(letters, [f"{t} {mean[k]:.0%}" for k, t in enumerate(types)], width))
    return lines


def category_grid(values: np.ndarray, classes: Sequence[str], *, title: str, description: str = "", width: int = 80,
                  letters: Sequence[str] | None = None) -> list[Text]:
    """[layers, heads] of class indices (e.g. each head's majority pattern type) as lettered, coloured cells."""
    values = np.asarray(values, dtype=float)
    L, H = values.shape
    letters = list(letters) if letters is not None and len(set(letters)) == len(classes) else _letters(classes)
    label_w = len(f"L{L}") + 1
    cw = max(2, min(5, (width - label_w) // max(H, 1)))
    lines = [Text(title, style="bold")]
    if description:
        lines.append(Text(description, style="dim"))
    header = Text(" " * label_w)
    step = 1 if cw >= len(f"H{H}") + 1 else 2
    for h in range(H):
        header.append(f"H{h + 1}".rjust(cw) if h % step == 0 else " " * cw)
    lines.append(header)
    for li in range(L):
        row = Text(f"L{li + 1}".ljust(label_w))
        for h in range(H):
            v = values[li, h]
            if not math.isfinite(v) or not 0 <= int(v) < len(classes):
                row.append(MISSING.rjust(cw))
                continue
            k = int(v)
            row.append(letters[k].rjust(cw - 1) + " ", style=_cell_style(TAB10[k % len(TAB10)]))
        lines.append(row)
    counts = [int(np.sum(values == k)) for k in range(len(classes))]
    lines.extend(_class_legend(letters, [f"{c} ({counts[k]})" for k, c in enumerate(classes)], width))
    return lines


def _class_legend(letters: Sequence[str], labels: Sequence[str], width: int) -> list[Text]:
    """One coloured letter cell and its label per class, wrapped to the width."""
    items = []
    for k, label in enumerate(labels):
        item = Text(f" {letters[k]} ", style=_cell_style(TAB10[k % len(TAB10)]))
        item.append(f" {label} ")
        items.append(item)
    return _wrap_legend(items, width)


def attention_map(att: np.ndarray, tokens: Sequence[str], *, title: str, width: int = 80) -> list[Text]:
    """One head's [T, T] map: a row per query token (labelled), a cell per key; shade letters plus colour."""
    T = att.shape[0]
    tok_w = min(12, max(len(t) for t in tokens)) if tokens else 4
    label_w = len(str(T - 1)) + 1 + tok_w + 1
    cw = 2 if label_w + 2 * T <= width else 1
    if label_w + cw * T > width:
        raise ValueError(f"{T} tokens do not fit in {width} columns")
    scale = Scale(att, 0.0, max(float(np.nanmax(att)), 1e-9), diverging=False)
    lines = [Text(title, style="bold")]
    header = Text(" " * label_w)
    for k in range(T):
        header.append((str(k % 10) if cw == 1 else str(k).rjust(2)[-2:]) if k % (5 if cw == 1 else 2) == 0 else " " * cw)
    lines.append(header)
    for q in range(T):
        line = Text(f"{q:>{len(str(T - 1))}} {tokens[q][:tok_w]:<{tok_w}} ")
        for k in range(T):
            v = float(att[q, k])
            ch = SHADES[min(len(SHADES) - 1, int(scale.fraction(v) * (len(SHADES) - 1) + 0.5))]
            line.append(ch * cw, style=_cell_style(scale.rgb(v)))
        lines.append(line)
    lines.append(Text("rows attend to columns (keys, numbered like the rows)", style="dim"))
    lines.append(scale.legend(f"shades '{SHADES.strip()}' low to high", missing=False))
    return lines
