"""One colour per category (pattern type, cluster), shared by the file figures, the terminal and the HTML view.

matplotlib's tab10, written out so the terminal and the page need not import matplotlib: a pattern type has the
same colour in a PNG, in a terminal grid and in `view`'s page.
"""

from __future__ import annotations

CATEGORY_RGB: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)
CATEGORY_HEX: tuple[str, ...] = tuple("#%02x%02x%02x" % c for c in CATEGORY_RGB)


def category_rgb(k: int) -> tuple[int, int, int]:
    return CATEGORY_RGB[k % len(CATEGORY_RGB)]
