"""The self-contained HTML page of ``bertsecrets view``: hand-written JS/CSS (package data) with the data inline.

No network, no CDN: the page's script and style are read from ``render/assets/`` and inlined, the data goes in
one ``application/json`` script element. The file states its own exact size: a fixed-width placeholder is
replaced after rendering by a string of the same length.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

from bertsecrets_cli import outputs

SIZE_MARK = "@@BERTSECRETS_SIZE@@@@@@@@@@@@@@@@@@"  # 36 characters; replaced by the size padded to this width


def asset(name: str) -> str:
    """A file of render/assets/ (the page's own script and style)."""
    return resources.files("bertsecrets_cli.render").joinpath("assets", name).read_text(encoding="utf-8")


def human_size(n: int) -> str:
    for unit, k in (("MB", 1_000_000), ("kB", 1_000)):
        if n >= k:
            return f"{n / k:.2f} {unit}"
    return f"{n} B"


# inside <script>, the HTML parser looks for "</script", "<!--" and "<script"; JSON's own \u escapes hide every
# "<" (and ">", "&") from it and stay valid JSON. U+2028/2029 are escaped too: older JavaScript parsers end a
# line there. (The escape "<\!--" once used here is not valid JSON: JSON.parse failed on a blank page.)
_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe inside an HTML <script> element and parses back to the same value."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False).translate(_SCRIPT_ESCAPES)


def page(payload: dict[str, Any]) -> str:
    """The whole page as text, with SIZE_MARK where its size goes."""
    data = script_json({**payload, "size": SIZE_MARK})
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
    """Write the page to ``out`` atomically (bertsecrets_cli.outputs); returns its size in bytes."""
    text = page(payload).encode("utf-8")
    n = len(text)
    stated = f"{human_size(n)} ({n:,} bytes)".ljust(len(SIZE_MARK))
    assert len(stated) == len(SIZE_MARK)
    text = text.replace(SIZE_MARK.encode(), stated.encode(), 1)
    outputs.write_bytes(out, text)  # exclusive temporary, fsynced, committed without replacing unless --force
    return n


# ------------------------------------------------------------------------- Markdown index as HTML

_INDEX_CSS = """body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d232b;max-width:1100px;margin:0 auto;padding:16px 24px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13.5px}th,td{border:1px solid #d5dbe2;padding:3px 8px;text-align:left}th{background:#f6f8fa}
img{max-width:100%;border:1px solid #eee}code{background:#f3f4f6;padding:0 3px;border-radius:3px;font-size:90%}
blockquote{margin:8px 0;padding:4px 12px;border-left:4px solid #d5dbe2;color:#5d6875}iframe{width:100%;height:900px;border:1px solid #d5dbe2;border-radius:6px}"""


def _inline(text: str) -> str:
    """The inline Markdown that index.md uses: `code`, **bold**, _emphasis_ or *emphasis*, ![image](path), [link](path)."""
    import re

    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        s = html.escape(part, quote=True)
        s = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", r'<img alt="\1" src="\2">', s)
        s = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', s)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"(?<![\w/])_([^_]+)_(?![\w/])", r"<em>\1</em>", s)
        s = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<em>\1</em>", s)
        out.append(s)
    return "".join(out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_page(md: str, title: str, embeds: dict[str, str] | None = None) -> str:
    """index.md as one HTML page (headings, paragraphs, tables, quotes, images, links). ``embeds`` maps a
    line of the Markdown to HTML put after it (the per-task views as frames)."""
    embeds = embeds or {}
    lines = md.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|") and i + 1 < len(lines) and set(lines[i + 1].replace("|", "").strip()) <= set("-: "):
            head = _cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows) + "</tbody></table>")
            continue
        stripped = line.strip()
        if stripped.startswith("#"):
            level = len(stripped) - len(stripped.lstrip("#"))
            text = stripped[level:].strip()
            out.append(f"<h{level}>{_inline(text)}</h{level}>")
        elif stripped.startswith(">"):
            out.append(f"<blockquote>{_inline(stripped.lstrip('> '))}</blockquote>")
        elif stripped:
            out.append(f"<p>{_inline(stripped)}</p>")
        if line in embeds:
            out.append(embeds[line])
        i += 1
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{html.escape(title)}</title>\n"
            f"<style>{_INDEX_CSS}</style>\n</head>\n<body>\n" + "\n".join(out) + "\n</body>\n</html>\n")


def write_text_atomic(path: str | Path, text: str) -> None:
    """A text file replaced only once it is complete."""
    outputs.write_text(path, text)
