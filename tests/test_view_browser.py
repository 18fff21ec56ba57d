"""The view in a real browser: headless Chromium (Debian's package, never a download) opens the page from disk,
logs no console error, redraws other lines when layer and head change, draws the selected head's strongest
link where a screenshot shows it, and renders a 512-token input."""

from __future__ import annotations

import colorsys
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner
from view_page import make_side_stores, maps, payload, read_png

from bertsecrets_cli.cli.app import app

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """BERTSECRETS_CHROMIUM, else the distribution's chromium on PATH or in /usr/bin."""
    for c in (os.environ.get("BERTSECRETS_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


pytestmark = pytest.mark.skipif(chromium_path() is None, reason="no Chromium on this machine (apt-get install -y chromium; .ci/run does); "
                                "the browser tests need it and never download one")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module, with a fresh profile folder and the network features off."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="bertsecrets-chromium-")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS,
                                                   viewport={"width": 1400, "height": 1800}, device_scale_factor=1, offline=True)
        try:
            yield ctx
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


class Opened:
    """A page opened from disk, with every console error and uncaught exception it produced."""

    def __init__(self, ctx: Any, path: Path, init_script: str | None = None) -> None:
        self.page = ctx.new_page()
        if init_script:
            self.page.add_init_script(init_script)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_function("window.bertsecretsView && window.bertsecretsView.ready", timeout=60_000)

    def state(self) -> dict[str, Any]:
        return self.page.evaluate("window.bertsecretsView.state()")

    def layout(self) -> dict[str, Any]:
        return self.page.evaluate("window.bertsecretsView.layout()")

    def close(self) -> None:
        self.page.close()


def write_view(store: Path, out: Path, *args: str) -> Path:
    res = CliRunner().invoke(app, ["view", str(store), "-o", str(out), "-q", *args])
    assert res.exit_code == 0, res.stderr
    return out


def strongest(att: np.ndarray) -> tuple[int, int, float]:
    q, k = np.unravel_index(int(np.argmax(att)), att.shape)
    return int(q), int(k), float(att[q, k])


def words_command_maps(store: Path, folder: Path, i: int) -> np.ndarray:
    """Example ``i``'s word-level maps as 'bertsecrets words' writes them (the page must draw the same)."""
    from bertsecrets_cli.jobs.words import WordsOptions, run_words
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store.words import word_maps

    run_words(store, folder / "words.h5", WordsOptions(quiet=True))
    with open_store(folder / "words.h5") as st:
        return word_maps(st, i)


def test_page_opens_without_errors_and_layer_head_units_and_hover_redraw_it(browser: Any, demo_store: Path, tmp_path: Path) -> None:
    out = write_view(demo_store, tmp_path / "view.html", "-n", "4")
    page_data = payload(out)
    att = maps(page_data, 0)
    v = Opened(browser, out)
    try:
        s0 = v.state()
        assert (s0["layer"], s0["head"], s0["n"]) == (0, 0, len(page_data["examples"][0]["tokens"]))
        q, k, p = strongest(att[0, 0])
        assert (s0["drawn"]["strongest"]["q"], s0["drawn"]["strongest"]["k"]) == (q, k) and abs(s0["drawn"]["strongest"]["p"] - p) < 1e-6
        assert s0["drawn"]["lines"] == int((att[0, 0] >= 0.02).sum())

        v.page.select_option("#layer", "3")
        v.page.select_option("#head", "4")
        s1 = v.state()
        assert (s1["layer"], s1["head"]) == (3, 4)
        assert s1["drawn"]["digest"] != s0["drawn"]["digest"] and s1["drawn"]["lines"] == int((att[3, 4] >= 0.02).sum())
        q, k, p = strongest(att[3, 4])
        assert (s1["drawn"]["strongest"]["q"], s1["drawn"]["strongest"]["k"]) == (q, k)

        # a model-view map and a per-head grid cell select their head
        v.page.locator("#modelgrid canvas").nth(1 * page_data["heads"] + 7).click()
        assert (v.state()["layer"], v.state()["head"]) == (1, 7)
        box = v.page.locator("#headgrid-canvas").bounding_box()
        v.page.mouse.click(box["x"] + 30 + 2 * 44 + 20, box["y"] + 18 + 5 * 22 + 11)  # cell L6H3 (left/top margins 30/18, cells 44x22)
        assert (v.state()["layer"], v.state()["head"]) == (5, 2)

        # hovering a query token keeps only its links
        lay = v.layout()
        v.page.evaluate("window.scrollTo(0, 0)")
        v.page.mouse.move(lay["left"] + lay["x0"] - 12, lay["top"] + lay["rowTop"] + 4 * lay["rowH"] + lay["rowH"] / 2)
        s2 = v.state()
        assert s2["drawn"]["strongest"]["q"] == 4 and s2["drawn"]["lines"] == int((att[5, 2, 4] >= 0.02).sum())
        v.page.mouse.move(lay["left"] + lay["x1"] + 12, lay["top"] + lay["rowTop"] + 0 * lay["rowH"] + lay["rowH"] / 2)  # a key: its column
        assert v.state()["drawn"]["lines"] == int((att[5, 2, :, 0] >= 0.02).sum()) and v.state()["drawn"]["strongest"]["k"] == 0
        v.page.mouse.move(5, 5)
        assert v.state()["drawn"]["lines"] == int((att[5, 2] >= 0.02).sum())
        v.page.focus("#headview-canvas")  # arrow keys: right = next head, down = next layer (wrapping)
        v.page.keyboard.press("ArrowRight")
        v.page.keyboard.press("ArrowDown")
        assert (v.state()["layer"], v.state()["head"]) == (0, 3)
        v.page.keyboard.press("ArrowUp")
        v.page.keyboard.press("ArrowLeft")
        assert (v.state()["layer"], v.state()["head"]) == (5, 2)

        # words: the units and maps of 'bertsecrets words' (mean over a word's query pieces, sum over its key pieces)
        v.page.select_option("#units", "words")
        s3 = v.state()
        wm = words_command_maps(demo_store, tmp_path, 0)[5, 2]
        assert s3["n"] == wm.shape[0] < len(page_data["examples"][0]["tokens"])
        q, k, p = strongest(wm)
        assert (s3["drawn"]["strongest"]["q"], s3["drawn"]["strongest"]["k"]) == (q, k) and abs(s3["drawn"]["strongest"]["p"] - p) < 1e-4

        # the five strongest links are listed, and the head view saves as a PNG of what is drawn
        top = s3["drawn"]["top"]
        assert len(top) == 5 and [t["p"] for t in top] == sorted((t["p"] for t in top), reverse=True) and top[0]["p"] == s3["drawn"]["strongest"]["p"]
        with v.page.expect_download() as dl:
            v.page.click("#headview-png")
        saved = tmp_path / "saved.png"
        dl.value.save_as(saved)
        assert dl.value.suggested_filename == f"headview-ex{page_data['examples'][0]['index']}-L6H3-words.png"
        png = read_png(saved)
        assert png.shape[:2] == (int(v.layout()["height"]), int(v.layout()["width"])) and png.std() > 10

        # another example, and "all heads"
        v.page.select_option("#example", "2")
        v.page.select_option("#head", "-1")
        s4 = v.state()
        assert s4["index"] == page_data["examples"][2]["index"] and s4["drawn"]["heads"] == page_data["heads"]
        assert v.errors == [], v.errors
        assert all(u.startswith("file://") for u in v.requests), v.requests  # nothing fetched from anywhere else
    finally:
        v.close()


def test_links_between_the_sentences_of_a_pair(browser: Any, demo_pair_store: Path, tmp_path: Path) -> None:
    out = write_view(demo_pair_store, tmp_path / "pair.html", "-n", "1")
    data = payload(out)
    att, seg = maps(data, 0)[4, 1], np.asarray(data["examples"][0]["segment"])
    v = Opened(browser, out)
    try:
        v.page.select_option("#layer", "4")
        v.page.select_option("#head", "1")
        for mode, rows, cols in (("ab", seg == 0, seg == 1), ("ba", seg == 1, seg == 0), ("within", None, None)):
            v.page.select_option("#links", mode)
            want = (att >= 0.02) & (seg[:, None] == seg[None, :]) if rows is None else (att >= 0.02) & rows[:, None] & cols[None, :]
            assert v.state()["drawn"]["lines"] == int(want.sum()) > 0, mode
        assert v.errors == [], v.errors
    finally:
        v.close()


@pytest.mark.parametrize("native_base64", [True, False], ids=["Uint8Array.fromBase64", "atob fallback"])
def test_both_base64_decoders_give_the_stored_values(browser: Any, demo_store: Path, tmp_path: Path, native_base64: bool) -> None:
    out = write_view(demo_store, tmp_path / "v.html", "--examples", "3")
    att = maps(payload(out), 0)
    v = Opened(browser, out, None if native_base64 else "delete Uint8Array.fromBase64;")
    try:
        if not native_base64:
            assert v.page.evaluate("typeof Uint8Array.fromBase64") == "undefined"  # the page decodes with atob
        for layer, head in ((0, 0), (5, 11), (2, 7)):
            v.page.evaluate(f"window.bertsecretsView.select({{layer: {layer}, head: {head}}})")
            got = v.state()["drawn"]
            q, k, p = strongest(att[layer, head])
            assert (got["strongest"]["q"], got["strongest"]["k"]) == (q, k) and abs(got["strongest"]["p"] - p) < 1e-6
            assert got["lines"] == int((att[layer, head] >= 0.02).sum()) and abs(got["mass"] - float(att[layer, head][att[layer, head] >= 0.02].sum())) < 2e-3
        assert v.errors == [], v.errors
    finally:
        v.close()


def test_grids_of_other_stores_follow_the_example_and_select_heads(browser: Any, demo_store: Path, tmp_path: Path) -> None:
    sides = make_side_stores(demo_store, tmp_path)
    out = write_view(demo_store, tmp_path / "v.html", "--examples", "4,9", "--patterns", str(sides["patterns"]), "--diff", str(sides["diff"]),
                     "--ablation", str(sides["ablation"]))
    data = payload(out)
    v = Opened(browser, out)
    try:
        assert v.page.evaluate("window.bertsecretsView.grid().name") == "pattern_majority"  # the first preferred grid
        names = [g["name"] for g in data["grids"]]
        v.page.select_option("#quantity", str(names.index("pattern of this example")))
        assert v.page.evaluate("window.bertsecretsView.grid().values") == sides["labels"][4].tolist()
        v.page.select_option("#example", "1")
        assert v.page.evaluate("window.bertsecretsView.grid().values") == sides["labels"][9].tolist()  # follows the example
        v.page.select_option("#quantity", str(names.index("cosine of this example")))
        assert np.allclose(v.page.evaluate("window.bertsecretsView.grid().values"), sides["cos"][9], rtol=5e-4)
        v.page.select_option("#quantity", str(names.index("ablation_delta")))
        grid = v.page.evaluate("window.bertsecretsView.grid().values")
        assert grid[0][0] is None and abs(grid[3][7] - sides["delta"][3, 7]) < 1e-6
        box = v.page.locator("#headgrid-canvas").bounding_box()
        v.page.mouse.click(box["x"] + 30 + 7 * 44 + 20, box["y"] + 18 + 3 * 22 + 11)
        assert (v.state()["layer"], v.state()["head"]) == (3, 7)
        assert v.errors == [], v.errors
    finally:
        v.close()


def test_maps_that_are_no_distributions_are_drawn_relative_to_their_peak(browser: Any, tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    store = tmp_path / "norms.h5"
    run_extract(ExtractOptions(data=DataOptions(task="sst2", limit=1), quantities=("weights", "norms"), device="cpu", quiet=True), store, command="test")
    out = write_view(store, tmp_path / "v.html", "--quantity", "norms")
    att = maps(payload(out), 0)
    v = Opened(browser, out)
    try:
        for layer, head in ((0, 0), (4, 6)):
            v.page.evaluate(f"window.bertsecretsView.select({{layer: {layer}, head: {head}}})")
            a = att[layer, head].astype(np.float64)  # the page divides in double precision too
            assert v.state()["drawn"]["lines"] == int((a / a.max() >= 0.02).sum()) != int((a >= 0.02).sum())
            assert abs(v.state()["drawn"]["strongest"]["p"] - float(a.max())) < 1e-6 * float(a.max())  # values reported as stored
        assert v.errors == [], v.errors
    finally:
        v.close()


def _rgb(hue_deg: float, s: float = 0.68, lightness: float = 0.42) -> np.ndarray:
    return np.array(colorsys.hls_to_rgb(hue_deg / 360, lightness, s)) * 255


def test_screenshot_shows_the_selected_heads_strongest_link_and_nothing_where_no_link_goes(browser: Any, demo_store: Path, tmp_path: Path) -> None:
    out = write_view(demo_store, tmp_path / "view.html", "--examples", "1")
    data = payload(out)
    H = data["heads"]
    layer, head = 2, 9
    att = maps(data, 0)[layer, head]
    q, k, p = strongest(att)
    v = Opened(browser, out.with_name("view.html"))
    try:
        v.page.goto(out.resolve().as_uri() + f"#ex={data['examples'][0]['index']}&layer={layer + 1}&head={head + 1}")
        v.page.reload()
        v.page.wait_for_function("window.bertsecretsView && window.bertsecretsView.ready")
        assert (v.state()["layer"], v.state()["head"]) == (layer, head)  # the address selects the head
        lay = v.layout()
        n, row = lay["n"], lay["rowH"]

        def y(t: int) -> float:
            return lay["top"] + lay["rowTop"] + t * row + row / 2

        v.page.mouse.move(lay["left"] + lay["x0"] - 12, y(q))  # only the strongest link's query row is drawn
        assert v.state()["drawn"]["strongest"]["k"] == k
        shot = tmp_path / "headview.png"
        v.page.screenshot(path=str(shot), clip={"x": lay["left"], "y": lay["top"], "width": lay["width"], "height": lay["height"]})
        img = read_png(shot).astype(float)
        assert img.shape[:2] == (int(lay["height"]), int(lay["width"]))
        assert img.std() > 10 and (img.mean(-1) < 200).mean() > 0.01  # not blank: text and lines

        def patch(px: float, py: float) -> np.ndarray:
            x, yy = int(round(px - lay["left"])), int(round(py - lay["top"]))
            return img[yy - 1 : yy + 2, x - 1 : x + 2].reshape(-1, 3)

        xm = lay["left"] + (lay["x0"] + lay["x1"]) / 2
        colour = _rgb(head * 360 / H)
        alpha = (np.floor(p * 20) + 0.5) / 20
        mid = patch(xm, (y(q) + y(k)) / 2)
        darkest = mid[np.argmin(mid.sum(1))]
        expected = 255 * (1 - alpha) + colour * alpha
        assert np.abs(darkest - expected).max() < 40, (darkest, expected)  # the head's colour at the link's opacity
        # where no line of row q can pass: the midline beyond every (y(q) + y(t)) / 2
        far = y(n - 1) + row / 2 - 2 if q < n / 2 else y(0) - row / 2 + 2
        assert patch(xm, far).min() > 245, patch(xm, far)
        assert v.errors == [], v.errors
    finally:
        v.close()


def test_a_512_token_input_renders_on_canvas(browser: Any, tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    words = " ".join(f"the reviewer number {i} found the film long but rather moving" for i in range(80))
    data = tmp_path / "long.jsonl"
    data.write_text('{"id": "long-0", "text_a": "%s", "label": 1}\n' % words)
    store = tmp_path / "long.h5"
    run_extract(ExtractOptions(data=DataOptions(task="sst2", data=str(data)), max_length=512, device="cpu", quiet=True), store, command="test")
    out = write_view(store, tmp_path / "long.html", "--encoding", "uint8")
    v = Opened(browser, out)
    try:
        s = v.state()
        assert s["n"] == 512 and s["drawn"]["lines"] > 0
        assert v.page.locator("canvas").count() < 100  # canvases, not a DOM node per token or link
        v.page.select_option("#head", "6")
        assert v.state()["drawn"]["digest"] != s["drawn"]["digest"]
        timings = v.page.evaluate("window.bertsecretsView.timings")
        print(f"\n512 tokens: ready after {timings['ready_ms']:.0f} ms, model view {timings['model_view_ms']:.0f} ms, head switch {timings['last_draw_ms']:.0f} ms")
        assert v.errors == [], v.errors
    finally:
        v.close()


HOSTILE_TEXTS = ["a <!-- comment opener and </script><script>window.pwned=1</script> end",
                 "\u05e9\u05dc\u05d5\u05dd \u202eevil\u202c and \u200fRTL\u200e marks & <b>tags</b>",
                 "line\u2028separator\u2029and ]]> --> done"]


def test_texts_that_could_end_the_script_element_or_comment_it_out_are_shown_verbatim(browser: Any, tmp_path: Path) -> None:
    """Any text or --title with <!--, </script>, RTL marks or U+2028 opens as the same text (no blank page, no script run)."""
    import json

    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    data = tmp_path / "hostile.jsonl"
    data.write_text("".join(json.dumps({"id": f"h{i}", "text_a": t, "label": 1}) + "\n" for i, t in enumerate(HOSTILE_TEXTS)))
    store = tmp_path / "hostile.h5"
    run_extract(ExtractOptions(data=DataOptions(task="sst2", data=str(data)), device="cpu", quiet=True), store, command="test")
    title = "<!-- title </script> \u202e"
    out = write_view(store, tmp_path / "hostile.html", "--title", title)
    assert payload(out)["title"] == title  # the data element is valid JSON
    v = Opened(browser, out)
    try:
        assert v.page.locator("h1").first.text_content() == title and v.page.title() == title
        for i, text in enumerate(HOSTILE_TEXTS):
            v.page.evaluate(f"window.bertsecretsView.select({{ex: {i}}})") if i else None
            shown = v.page.locator("#sentence").text_content()
            assert text in shown, (text, shown)
        assert v.page.evaluate("window.pwned === undefined") and v.errors == [], v.errors
    finally:
        v.close()
