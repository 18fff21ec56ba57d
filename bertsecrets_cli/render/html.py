"""The self-contained HTML page of ``bertsecrets view``: hand-written JS/CSS (package data) with the data inline.

No network, no CDN: the page's script and style are read from ``render/assets/`` and inlined, the data goes in
one ``application/json`` script element. The file states its own exact size: a fixed-width placeholder is
replaced after rendering by a string of the same length.
"""

from __future__ import annotations

import html
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

SIZE_MARK = "@@BERTSECRETS_SIZE@@@@@@@@@@@@@@@@@@"  # 36 characters; replaced by the size padded to this width


def asset(name: str) -> str:
    """A file of render/assets/ (the page's own script and style)."""
    return resources.files("bertsecrets_cli.render").joinpath("assets", name).read_text(encoding="utf-8")


def human_size(n: int) -> str:
    for unit, k in (("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= k:
            return f"{n / k:.2f} {unit}"
    return f"{n} B"


def page(payload: dict[str, Any]) -> str:
    """The whole page as text, with SIZE_MARK where its size goes."""
    data = json.dumps({**payload, "size": SIZE_MARK}, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    data = data.replace("</", "<\\/").replace("<!--", "<\\!--")  # cannot end the script element early
    title = html.escape(str(payload.get("title", "bertsecrets view")))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<meta name=\"generator\" content=\"{html.escape(str(payload.get('tool', 'bertsecrets')))}\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n"
        f"<title>{title}</title>\n<style>\n{asset('view.css')}\n</style>\n</head>\n<body>\n"
        f"<script type=\"application/json\" id=\"bertsecrets-data\">{data}</script>\n"
        f"<script>\n{asset('view.js')}\n</script>\n</body>\n</html>\n"
    )


def render_view(payload: dict[str, Any], out: str | Path) -> int:
    """Write the page to ``out`` atomically (temporary name, then os.replace); returns its size in bytes."""
    text = page(payload).encode("utf-8")
    n = len(text)
    stated = f"{human_size(n)} ({n:,} bytes)".ljust(len(SIZE_MARK))
    assert len(stated) == len(SIZE_MARK)
    text = text.replace(SIZE_MARK.encode(), stated.encode(), 1)
    p = Path(out)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return n
