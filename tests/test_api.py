"""The public Python API (bertsecrets_cli.api, re-exported at the top level): its names are pinned, its defaults are
the command line's, importing it stays cheap, and what it returns equals what the store and the commands hold."""

from __future__ import annotations

import dataclasses
import html
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import bertsecrets_cli as bs
from bertsecrets_cli import api
from bertsecrets_cli.store import schema

# Removing or renaming any of these breaks users' notebooks: a major version change (docs/versioning.md).
PUBLIC = ["__version__", "Store", "Result", "View", "open_store", "extract", "classify", "diff", "ablate", "words",
          "cluster", "framenet", "coref", "probe", "view", "show"]

# API function -> (subcommand path, the jobs Options dataclass its **options build, if any)
COMMANDS = {"extract": (["extract"], None), "classify": (["classify", "run"], None), "diff": (["diff"], None),
            "words": (["words"], None), "cluster": (["cluster"], None), "view": (["view"], None), "show": (["show"], None),
            "ablate": (["ablate"], "bertsecrets_cli.jobs.ablate:AblateOptions"),
            "framenet": (["framenet"], "bertsecrets_cli.jobs.framenet:FrameNetOptions"),
            "coref": (["coref"], "bertsecrets_cli.jobs.coref:CorefOptions"),
            "probe": (["probe"], "bertsecrets_cli.jobs.probe:ProbeOptions")}
# Where the API differs from the command on purpose: a notebook wants no progress lines; cluster's width has no terminal.
API_DEFAULTS = {"quiet": True, "width": 80}


def test_every_pinned_public_name_is_exported_and_nothing_else():
    assert sorted(bs.__all__) == sorted(PUBLIC)
    assert sorted(api.__all__) == sorted(n for n in PUBLIC if n != "__version__")
    for name in PUBLIC:
        assert getattr(bs, name) is not None
    with pytest.raises(AttributeError):
        bs.run_extract  # noqa: B018 - job internals are not public


def test_every_analysis_is_documented_and_typed():
    for name in COMMANDS:
        fn = getattr(bs, name)
        assert fn.__doc__ and f"bertsecrets {COMMANDS[name][0][0]}" in fn.__doc__, name
        assert "return" in fn.__annotations__, name


def _cli_params(path: list[str]) -> dict[str, object]:
    import typer

    from bertsecrets_cli.cli.app import app

    cmd = typer.main.get_command(app)
    for p in path:
        cmd = cmd.commands[p]
    return {p.name: p.default for p in cmd.params}


def _api_defaults(name: str) -> dict[str, object]:
    fn = getattr(api, name)
    options = COMMANDS[name][1]
    out = {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not inspect.Parameter.empty}
    if options:
        import importlib

        mod, _, cls = options.partition(":")
        fields = dataclasses.fields(getattr(importlib.import_module(mod), cls))
        out.update({f.name: f.default for f in fields if f.default is not dataclasses.MISSING})
        if any(f.name == "data" and f.default is dataclasses.MISSING for f in fields):  # DataOptions: the data options
            from bertsecrets_cli.jobs.extract import DataOptions

            out.update({f.name: f.default for f in dataclasses.fields(DataOptions)})
        out.update(api._OPTION_DEFAULTS.get(name, {}))
    return out


def _same(cli: object, ours: object) -> bool:
    if isinstance(ours, tuple):  # a comma-separated option on the command line
        return cli == ",".join(ours) or (cli is None and ours == ()) or cli == list(ours) or (cli == () and ours == ())
    if cli is None and ours == "":  # an input path the job requires (coref's --data, probe's --train): none given
        return True
    return cli == ours


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_analysis_takes_its_commands_option_names_and_defaults(name):
    cli = _cli_params(COMMANDS[name][0])
    ours = _api_defaults(name)
    shared = sorted(set(cli) & set(ours))
    assert len(shared) >= 3, (name, sorted(cli), sorted(ours))
    wrong = {k: (cli[k], ours[k]) for k in shared if not _same(cli[k], ours[k]) and API_DEFAULTS.get(k, object()) != ours[k]}
    assert wrong == {}, f"{name}: defaults that differ from the command's (command, API): {wrong}"
    explicit = set(inspect.signature(getattr(api, name)).parameters) - {"options"}
    assert explicit <= set(cli) | {"store", "store_a", "store_b", "output"}, f"{name}: API names the command lacks: {explicit - set(cli)}"


def test_import_and_name_lookup_load_no_heavy_library():
    code = ("import sys, bertsecrets_cli as bs; bs.open_store; bs.extract; bs.view; "
            "print([m for m in ('torch', 'transformers', 'h5py', 'pandas', 'matplotlib', 'scipy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip() == "[]"


def test_store_arrays_are_the_files_datasets(demo_store: Path):
    with bs.open_store(demo_store) as st, h5py.File(demo_store, "r") as f:
        assert (st.n_layers, st.n_heads, st.n_examples) == (6, 12, 24) and st.kind == "attention"
        assert st.version == schema.VERSION == str(f.attrs["encoding-version"])  # recorded in the file
        n0 = int(f["examples/length"][0])
        assert st.tokens(0) == [t.decode() if isinstance(t, bytes) else t for t in f["tokens/text"][:n0]]
        maps = st.attention(3)
        assert maps.shape[:2] == (6, 12) and maps.dtype == np.float32
        np.testing.assert_allclose(maps.sum(-1), 1.0, atol=2e-2)  # rows are distributions
        np.testing.assert_array_equal(st.attention(3, 2, 5), maps[2, 5])
        np.testing.assert_array_equal(st.attention(3, head=5), maps[:, 5])
        heads = st.heads()
        for name, ds in f["heads"].items():
            if isinstance(ds, h5py.Dataset):
                np.testing.assert_array_equal(heads[name], ds[...])


def test_frames_hold_the_arrays_with_one_based_head_names(demo_store: Path):
    pytest.importorskip("pandas")
    with bs.open_store(demo_store) as st:
        heads = st.heads()
        frame = st.heads_frame()
        assert len(frame) == 72 and list(frame.columns[:3]) == ["layer", "head", "name"]
        row = frame[frame["name"] == "L2H7"].iloc[0]
        for k, v in heads.items():
            assert row[k] == pytest.approx(float(v[1, 6]))
        assert st.tokens_frame(1)["token"].tolist() == st.tokens(1)
        m = st.attention_frame(1, 0, 3)
        np.testing.assert_array_equal(m.to_numpy(), st.attention(1, 0, 3))


def test_a_result_frame_is_the_table_the_command_prints(demo_store: Path):
    """classify through the API and through the command line's JSON: the same rows."""
    pytest.importorskip("pandas")
    res = bs.classify(demo_store)
    cli = subprocess.run(["bertsecrets", "classify", "run", str(demo_store), "--format", "json", "--table", "layers", "-q"],
                         capture_output=True, text=True, check=True, timeout=300)
    records = json.loads(cli.stdout)
    frame = res.to_frame("layers")
    assert frame.to_dict("records") == records
    assert frame["layer"].tolist() == [f"L{i}" for i in range(1, 7)] + ["all"]
    np.testing.assert_allclose(frame.iloc[:6, 1:6].to_numpy(dtype=float), res.raw.layer_shares, atol=1e-12)
    np.testing.assert_allclose(frame.iloc[6, 1:6].to_numpy(dtype=float), res.raw.counts.sum((0, 1)) / res.raw.counts.sum(), atol=1e-12)
    with pytest.raises(LookupError, match="no table 'nope'"):
        res.to_frame("nope")


def test_a_store_compared_with_itself_has_cosine_one(demo_store: Path):
    res = bs.diff(demo_store, demo_store)
    np.testing.assert_allclose(res.raw.cosine, 1.0, atol=1e-5)
    np.testing.assert_allclose(res.raw.js_divergence, 0.0, atol=1e-5)


def test_unknown_options_are_named():
    with pytest.raises(TypeError, match="unknown option.*nonsense"):
        api._options(__import__("bertsecrets_cli.jobs.ablate", fromlist=["AblateOptions"]).AblateOptions, {"nonsense": 1})
    opts = api._options(__import__("bertsecrets_cli.jobs.ablate", fromlist=["AblateOptions"]).AblateOptions,
                        {"task": "rte", "limit": 8, "heads": "L1H2,L3H4"})
    assert (opts.data.task, opts.data.limit, opts.heads) == ("rte", 8, ("L1H2,L3H4",))


def _inline_page(fragment: str) -> str:
    src = re.search(r'srcdoc="([^"]*)"', fragment)
    assert src, fragment[:200]
    return html.unescape(src.group(1))


def test_view_and_a_store_display_inline_the_page_the_command_writes(demo_store: Path, tmp_path: Path):
    subprocess.run(["bertsecrets", "view", str(demo_store), "-o", str(tmp_path / "cli.html"), "-q"], check=True, timeout=300)
    written = (tmp_path / "cli.html").read_text(encoding="utf-8")
    shown = bs.view(demo_store, tmp_path / "api.html")
    assert _inline_page(shown._repr_html_()) == shown.html == written
    with bs.open_store(demo_store) as st:
        assert _inline_page(st._repr_html_()) == written
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", written)  # nothing fetched from a network


def test_the_inline_view_runs_in_a_browser_without_network(demo_store: Path, tmp_path: Path):
    """What Jupyter shows: the store's HTML in a host page; the framed view starts, logs no error, fetches nothing."""
    browser_tests = pytest.importorskip("test_view_browser")
    if browser_tests.chromium_path() is None:
        pytest.skip("no Chromium on this machine (the browser tests need it and never download one)")
    from playwright.sync_api import sync_playwright

    with bs.open_store(demo_store) as st:
        host = tmp_path / "notebook.html"
        host.write_text(f"<!doctype html><html><body><p>cell output:</p>{st._repr_html_()}</body></html>", encoding="utf-8")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=browser_tests.chromium_path(), headless=True, args=browser_tests.CHROMIUM_FLAGS)
        try:
            page = b.new_page()
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.context.on("request", lambda r: requests.append(r.url))
            page.goto(host.as_uri())
            frame = page.locator("iframe").element_handle().content_frame()
            frame.wait_for_function("window.bertsecretsView && window.bertsecretsView.ready", timeout=60_000)
            state = frame.evaluate("window.bertsecretsView.state()")
            assert state["n"] == len(st_tokens(demo_store)) and state["drawn"]["lines"] > 0
            assert errors == []
            assert [u for u in requests if not u.startswith(("file:", "about:", "data:", "blob:"))] == []
        finally:
            b.close()


def st_tokens(path: Path) -> list[str]:
    with bs.open_store(path) as st:
        return st.tokens(0)


def test_words_and_cluster_chain_through_the_api(demo_store: Path, tmp_path: Path):
    """words' word-level maps are distributions over words, and cluster reads the words store it wrote."""
    w = bs.words(demo_store, tmp_path / "w.h5")
    assert w.path == tmp_path / "w.h5" and w.raw.max_row_error < 1e-3 and w.to_frame() is not None
    with bs.open_store(w.path) as st:
        assert st.kind == "words" and st.n_examples == 24
    c = bs.cluster(w.path, tmp_path / "c.h5", top=2)
    assert c.raw.distance.shape == (72, 72) and np.allclose(c.raw.distance, c.raw.distance.T)
    assert c.table_keys and len(c.to_frame()) > 0
