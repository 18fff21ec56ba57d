"""The documentation site builds with ``mkdocs build --strict`` (a broken link or a dead anchor in a page fails it),
its command reference is the command line's, its API reference holds every public name, and no link of the built
HTML points at a missing page or anchor (checked here over the HTML, generated pages included)."""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).parents[1]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if a.get("name") and tag == "a":
            self.ids.add(a["name"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])


def dead_links(site: Path) -> list[str]:
    """Every internal link of the built site whose page or anchor does not exist, as 'page: href'."""
    pages: dict[Path, _Page] = {}
    for f in site.rglob("*.html"):
        if f.name == "404.html":
            continue  # its links are absolute to the server root, wherever the site is served
        p = _Page()
        p.feed(f.read_text(encoding="utf-8"))
        pages[f.resolve()] = p
    dead = []
    for f, page in pages.items():
        for href in page.links:
            if urlparse(href).scheme or href.startswith(("//", "mailto:")):
                continue  # external: not fetched (no network here)
            path, frag = urldefrag(href)
            target = (f.parent / unquote(path)).resolve() if path else f
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                dead.append(f"{f.relative_to(site.resolve())}: {href} (no such page)")
            elif frag and target.suffix == ".html" and unquote(frag) not in pages[target].ids:
                dead.append(f"{f.relative_to(site.resolve())}: {href} (no such anchor)")
    return dead


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "NO_MKDOCS_2_WARNING": "1"}
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.mark.slow
def test_the_site_builds_strictly_with_no_dead_link_or_anchor(site: Path) -> None:
    assert (site / "index.html").exists() and (site / "store" / "index.html").exists()
    assert dead_links(site) == []


def test_the_link_checker_finds_a_dead_anchor_and_a_missing_page(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "index.html").write_text('<h2 id="here">x</h2><a href="#here">ok</a><a href="../a/#gone">bad</a>')
    (tmp_path / "index.html").write_text('<a href="a/#here">ok</a><a href="b/">missing</a><a href="https://x.org/#y">ext</a>')
    assert sorted(dead_links(tmp_path)) == ["a/index.html: ../a/#gone (no such anchor)", "index.html: b/ (no such page)"]


def test_the_site_is_built_strictly_with_anchor_validation() -> None:
    """mkdocs itself fails on a Markdown link to a missing heading only with these settings: keep them."""
    import yaml

    cfg = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)  # BaseLoader: no !!python tags
    assert cfg["strict"] == "true" and cfg["validation"]["anchors"] == "warn" and cfg["validation"]["unrecognized_links"] == "warn"


@pytest.mark.slow
def test_the_command_reference_is_every_command_and_option_of_the_app(site: Path) -> None:
    import typer

    from bertsecrets_cli.cli.app import app

    page = _Page()
    html = (site / "reference" / "commands" / "index.html").read_text(encoding="utf-8")
    page.feed(html)

    def walk(cmd, path):  # noqa: ANN001
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    commands = list(walk(typer.main.get_command(app), []))
    assert len(commands) > 15
    for path, cmd in commands:
        assert ("-".join(path) or "bertsecrets") in page.ids, path
        for p in cmd.params:
            if p.param_type_name == "option" and not p.hidden:
                assert f"<code>{p.opts[0]}</code>" in html, (path, p.opts[0])


@pytest.mark.slow
def test_the_api_reference_documents_every_public_name(site: Path) -> None:
    import bertsecrets_cli

    page = _Page()
    page.feed((site / "reference" / "api" / "index.html").read_text(encoding="utf-8"))
    missing = [n for n in bertsecrets_cli.__all__ if n != "__version__" and f"bertsecrets_cli.api.{n}" not in page.ids]
    assert missing == []
