"""``bertsecrets view``: the page holds exactly the chosen examples' maps (decodable to the store's values), the
other stores' per-head results, states its own size, needs no network, and refuses bad input in one line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import covers, one_line_error
from typer.testing import CliRunner
from view_page import make_side_stores, maps, payload

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.store import open_store

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def side_stores(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_side_stores(demo_store, tmp_path_factory.mktemp("view-sides"))


@covers("view", "--output")
def test_page_holds_the_first_eight_examples_decodable_to_the_store_and_states_its_size(demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "view.html"
    res = invoke("view", str(demo_store), "--output", str(out))
    assert res.exit_code == 0, res.stderr
    page = payload(out)
    assert [e["index"] for e in page["examples"]] == list(range(8)) and page["distribution"] is True
    with open_store(demo_store) as st:
        for pos in (0, 7):
            want = st.attention(pos)
            got = maps(page, pos)
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, atol=1e-3)  # float16 of float16: exact up to its rounding
            assert page["examples"][pos]["tokens"] == st.tokens(pos).text
    size = out.stat().st_size
    assert f"({size:,} bytes)" in page["size"]
    assert "wrote" in res.stderr and f"{size:,} bytes" in res.stderr
    text = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text) and "@import" not in text  # nothing fetched
    assert {"attention:stat_cls", "attention:stat_entropy"} <= {f"{g['source']}:{g['name']}" for g in page["grids"]}
    with open_store(demo_store) as st:
        names, stats = st.stats()
    k = names.index("entropy")
    assert np.allclose(page["per_example"]["stat_entropy"][7], stats[7, ..., k], rtol=5e-3)  # this example's entropy per head
    assert any(g.get("per_example") == "stat_entropy" for g in page["grids"])


def test_dash_writes_the_page_to_stdout(demo_store: Path) -> None:
    res = invoke("view", str(demo_store), "-n", "1", "-o", "-")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("<!DOCTYPE html>") and res.stdout.rstrip().endswith("</html>") and "wrote stdout" in res.stderr
    size = len(res.stdout_bytes)
    assert f"({size:,} bytes)" in res.stdout
    piped = runner.invoke(app, ["view", "-", "-n", "1", "-o", "-"], input=demo_store.read_bytes())  # a store on stdin
    assert piped.exit_code == 0, piped.stderr
    first_maps = re.compile(r'"maps":"([^"]+)"')
    assert '"store":"stdin"' in piped.stdout and first_maps.search(piped.stdout).group(1) == first_maps.search(res.stdout).group(1)


@covers("view", "--examples")
def test_examples_by_id_and_by_index_and_a_bad_one_refused(demo_store: Path, tmp_path: Path) -> None:
    with open_store(demo_store) as st:
        ids = st.example_ids()
    out = tmp_path / "v.html"
    res = invoke("view", str(demo_store), "--examples", f"{ids[5]},2,{ids[5]}", "-o", str(out))
    assert res.exit_code == 0, res.stderr
    shown = payload(out)["examples"]
    assert [e["index"] for e in shown] == [5, 2]  # in the order asked, once each
    with open_store(demo_store) as st:
        texts, labels = st.strings("examples/text_a"), st.array("examples/label")
    assert [e["text_a"] for e in shown] == [texts[5], texts[2]] and [e["id"] for e in shown] == [ids[5], ids[2]]
    assert [e["label"] for e in shown] == [["negative", "positive"][int(labels[i])] for i in (5, 2)]
    one_line_error(invoke("view", str(demo_store), "--examples", "no-such-id", "-o", str(tmp_path / "x.html")), 3, "no-such-id", "no example")
    one_line_error(invoke("view", str(demo_store), "--examples", "99", "-o", str(tmp_path / "x.html")), 3, "99", "out of range")
    assert not (tmp_path / "x.html").exists()


@covers("view", "--limit", "--sample", "--seed")
def test_limit_takes_the_first_and_sample_a_seeded_subset(demo_store: Path, tmp_path: Path) -> None:
    def shown(*args: str) -> list[int]:
        out = tmp_path / f"v{len(list(tmp_path.iterdir()))}.html"
        res = invoke("view", str(demo_store), *args, "-o", str(out))
        assert res.exit_code == 0, res.stderr
        return [e["index"] for e in payload(out)["examples"]]

    assert shown("--limit", "3") == [0, 1, 2]
    a, b, a2 = shown("--limit", "5", "--sample", "--seed", "1"), shown("--limit", "5", "--sample", "--seed", "2"), shown("--limit", "5", "--sample", "--seed", "1")
    assert a == a2 and a != b and a == sorted(a) and len(set(a)) == 5 and a != [0, 1, 2, 3, 4]
    one_line_error(invoke("view", str(demo_store), "--limit", "0", "-o", str(tmp_path / "z.html")), 3, "--limit")


@covers("view", "--encoding")
def test_uint8_encoding_halves_the_maps_and_stays_within_one_step(demo_store: Path, tmp_path: Path) -> None:
    f16, u8 = tmp_path / "f16.html", tmp_path / "u8.html"
    assert invoke("view", str(demo_store), "-o", str(f16)).exit_code == 0
    res = invoke("view", str(demo_store), "--encoding", "uint8", "-o", str(u8))
    assert res.exit_code == 0, res.stderr
    p16, p8 = payload(f16), payload(u8)
    assert p8["encoding"] == "uint8"
    b16 = sum(len(e["maps"]) for e in p16["examples"])
    b8 = sum(len(e["maps"]) for e in p8["examples"])
    assert abs(b8 / b16 - 0.5) < 0.01
    np.testing.assert_allclose(maps(p8, 0), maps(p16, 0), atol=0.5 / 255 + 1e-3)
    one_line_error(invoke("view", str(demo_store), "--encoding", "bf16", "-o", str(tmp_path / "x.html")), 3, "--encoding bf16")


@pytest.fixture(scope="module")
def norms_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two demo examples with the weights and the norm-based maps (Kobayashi et al.), whose rows are no distributions."""
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    out = tmp_path_factory.mktemp("view-norms") / "norms.h5"
    run_extract(ExtractOptions(data=DataOptions(task="sst2", limit=2), quantities=("weights", "norms"), device="cpu", quiet=True), out, command="test")
    return out


@covers("view", "--quantity")
def test_quantity_shows_another_kind_of_maps_drawn_relative_to_its_peak(demo_store: Path, norms_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.html"
    res = invoke("view", str(norms_store), "--quantity", "norms", "-o", str(out))
    assert res.exit_code == 0, res.stderr
    page = payload(out)
    assert page["quantity"] == "norms" and page["distribution"] is False  # norms rows do not sum to 1
    with open_store(norms_store, quantity="norms") as st:
        want = st.attention(1)
        np.testing.assert_allclose(maps(page, 1), want, rtol=2e-3, atol=1e-3)
        assert page["examples"][1]["peak"][2][3] == pytest.approx(float(want[2, 3].max()), rel=1e-6)
    weights = tmp_path / "w.html"
    assert invoke("view", str(norms_store), "-o", str(weights)).exit_code == 0
    assert payload(weights)["quantity"] == "weights" and payload(weights)["distribution"] is True
    one_line_error(invoke("view", str(norms_store), "--quantity", "norms", "--encoding", "uint8", "-o", str(tmp_path / "x.html")), 3, "uint8", "float16")
    one_line_error(invoke("view", str(demo_store), "--quantity", "norms", "-o", str(tmp_path / "x.html")), 4, "no norms maps")
    one_line_error(invoke("view", str(demo_store), "--quantity", "halved", "-o", str(tmp_path / "x.html")), 3, "halved")
    assert not (tmp_path / "x.html").exists()


@covers("view", "--patterns", "--diff", "--ablation")
def test_other_stores_become_head_grids_and_per_example_rows(demo_store: Path, side_stores: dict, tmp_path: Path) -> None:
    out = tmp_path / "v.html"
    res = invoke("view", str(demo_store), "--patterns", str(side_stores["patterns"]), "--diff", str(side_stores["diff"]),
                 "--ablation", str(side_stores["ablation"]), "--examples", "3,1", "-o", str(out))
    assert res.exit_code == 0, res.stderr
    page = payload(out)
    grids = {(g["source"], g["name"]): g for g in page["grids"]}
    assert grids[("patterns", "pattern_majority")]["categories"][4] == "heterogeneous"
    delta = grids[("ablation", "ablation_delta")]["values"]
    assert delta[0][0] is None and delta[2][5] == pytest.approx(side_stores["delta"][2, 5], rel=1e-5)
    assert np.allclose(grids[("diff", "cosine")]["values"], side_stores["cos"].mean(0), rtol=1e-5)
    assert page["per_example"]["pattern"][0] == side_stores["labels"][3].tolist()  # the page's first example is #3
    assert np.allclose(page["per_example"]["cosine"][1], side_stores["cos"][1], rtol=5e-4)
    assert [s["matched"] for s in page["sides"]] == [2, 2, 0]
    assert grids[("patterns", "pattern of this example")]["per_example"] == "pattern"
    assert grids[("diff", "cosine of this example")]["per_example"] == "cosine"
    # a patterns store given as --diff is refused, naming it
    one_line_error(invoke("view", str(demo_store), "--diff", str(side_stores["patterns"]), "-o", str(tmp_path / "x.html")), 4, "pat.h5", "diff store")


@covers("view", "--title")
def test_title_is_the_pages_title(demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.html"
    assert invoke("view", str(demo_store), "--title", "SST-2 <heads> & more", "-n", "1", "-o", str(out)).exit_code == 0
    assert "<title>SST-2 &lt;heads&gt; &amp; more</title>" in out.read_text()
    assert payload(out)["title"] == "SST-2 <heads> & more"


@covers("view", "--force")
def test_existing_output_is_kept_without_force_and_replaced_with_it(demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.html"
    out.write_text("keep me")
    one_line_error(invoke("view", str(demo_store), "-o", str(out)), 6, "exists", "--force")
    assert out.read_text() == "keep me"
    assert invoke("view", str(demo_store), "-n", "1", "--force", "-o", str(out)).exit_code == 0
    assert len(payload(out)["examples"]) == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_output_that_is_an_input_and_bad_stores_are_refused(demo_store: Path, side_stores: dict, tmp_path: Path) -> None:
    store = tmp_path / "s.h5"
    shutil.copy(demo_store, store)
    one_line_error(invoke("view", str(store), "-o", str(store), "--force"), 6, "an input")
    one_line_error(invoke("view", str(store), "--ablation", str(side_stores["ablation"]), "-o", str(side_stores["ablation"]), "--force"), 6, "an input")
    with open_store(store) as st:
        assert st.kind == "attention"  # untouched
    one_line_error(invoke("view", str(side_stores["diff"]), "-o", str(tmp_path / "x.html")), 4, "diff.h5", "attention store")
    one_line_error(invoke("view", str(tmp_path / "none.h5"), "-o", str(tmp_path / "x.html")), 3, "no such file")
    one_line_error(invoke("view", str(store), "-o", str(tmp_path / "no" / "x.html")), 6, "does not exist")


@covers("view", "--quiet", "--verbose")
def test_quiet_says_nothing_and_verbose_names_the_examples(demo_store: Path, tmp_path: Path) -> None:
    res = invoke("view", str(demo_store), "-n", "2", "--quiet", "-o", str(tmp_path / "q.html"))
    assert res.exit_code == 0 and res.stderr.strip() == ""
    res = invoke("view", str(demo_store), "-n", "2", "--verbose", "-o", str(tmp_path / "v.html"))
    assert res.exit_code == 0 and "examples shown (0-based store indices): 0, 1" in res.stderr


@covers("view", "--no-validate")
def test_maps_that_are_not_attention_are_refused_unless_told_not_to_validate(demo_store: Path, tmp_path: Path) -> None:
    import h5py

    bad = tmp_path / "nan.h5"
    shutil.copy(demo_store, bad)
    with h5py.File(bad, "r+") as f:
        f["attention/maps"][100:400] = np.nan  # inside example 0
    one_line_error(invoke("view", str(bad), "-n", "1", "-o", str(tmp_path / "x.html")), 4, "nan.h5", "--no-validate", last=True)
    assert not (tmp_path / "x.html").exists()
    res = invoke("view", str(bad), "-n", "1", "--no-validate", "-o", str(tmp_path / "y.html"))
    assert res.exit_code == 0, res.stderr
    assert len(payload(tmp_path / "y.html")["examples"]) == 1


@covers("view", "--debug")
def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    res = invoke("view", str(tmp_path / "none.h5"), "-o", str(tmp_path / "x.html"), "--debug")
    assert res.exit_code == 3 and "Traceback" in res.stderr


@covers("view", "--no-locking")
def test_no_locking_reads_a_store_another_process_holds_open_for_writing(demo_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "locked.h5"
    shutil.copy(demo_store, store)
    holder = subprocess.Popen([sys.executable, "-c", f"import h5py, sys, time; f = h5py.File({str(store)!r}, 'r+'); print('open', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        locked = invoke("view", str(store), "-n", "1", "-o", str(tmp_path / "a.html"))
        if locked.exit_code == 0:
            pytest.skip("this file system does not enforce HDF5 file locks")
        one_line_error(locked, 4, "cannot lock")
        res = invoke("view", str(store), "-n", "1", "--no-locking", "-o", str(tmp_path / "b.html"))
        assert res.exit_code == 0, res.stderr
        assert len(payload(tmp_path / "b.html")["examples"]) == 1
    finally:
        holder.kill()
        holder.wait()


def test_a_words_store_is_viewed_at_word_level(demo_store: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.words import WordsOptions, run_words
    from bertsecrets_cli.store.words import word_maps, word_units

    words = tmp_path / "w.h5"
    run_words(demo_store, words, WordsOptions(quiet=True))
    out = tmp_path / "v.html"
    res = invoke("view", str(words), "--examples", "4,1", "-o", str(out))
    assert res.exit_code == 0, res.stderr
    page = payload(out)
    assert page["word_level"] is True and page["distribution"] is True
    with open_store(words) as st:
        assert page["examples"][0]["tokens"] == word_units(st, 4).text
        np.testing.assert_allclose(maps(page, 1), word_maps(st, 1), atol=1e-3)
    one_line_error(invoke("view", str(words), "--quantity", "halved", "-o", str(tmp_path / "x.html")), 3, "word-level")


def test_word_units_are_those_of_the_words_command(demo_store: Path, tmp_path: Path) -> None:
    """The page's word units and their pieces come from analysis.wordlevel, as 'bertsecrets words' writes them."""
    from bertsecrets_cli.jobs.words import WordsOptions, run_words
    from bertsecrets_cli.store.words import word_units

    out, words = tmp_path / "v.html", tmp_path / "w.h5"
    assert invoke("view", str(demo_store), "-n", "3", "-o", str(out)).exit_code == 0
    run_words(demo_store, words, WordsOptions(quiet=True))
    page = payload(out)
    with open_store(words) as st:
        for pos in range(3):
            ex, u = page["examples"][pos], word_units(st, pos)
            assert ex["word_texts"] == u.text and ex["word_special"] == u.special.astype(int).tolist()
            assert max(ex["words"]) == len(u.text) - 1 and len(ex["words"]) == len(ex["tokens"])


def test_token_text_cannot_close_the_script_element(demo_store: Path, tmp_path: Path) -> None:
    import h5py

    store = tmp_path / "hostile.h5"
    shutil.copy(demo_store, store)
    with h5py.File(store, "a") as f:
        t = f["tokens/text"]
        t[1] = "</script><script>alert(1)</script>"
    out = tmp_path / "v.html"
    assert invoke("view", str(store), "-n", "1", "-o", str(out)).exit_code == 0
    text = out.read_text()
    assert text.count("</script>") == 2  # the data element's and the program's own
    assert payload(out)["examples"][0]["tokens"][1] == "</script><script>alert(1)</script>"
    assert json.loads(json.dumps(payload(out)))["store"] == "hostile.h5"


def test_index_markdown_becomes_html_with_tables_images_links_and_escaping() -> None:
    from bertsecrets_cli.render.html import markdown_page

    md = "\n".join([
        "# Title <x>", "", "Model: **MiniLM**. Run `bertsecrets show a.h5` & see _why_.", "", "> the same *kind* of note", "",
        "| finding | value |", "|---|---|", "| cosine, L1 | 0.93 |", "| a<b | 1 |", "",
        "![cosine per head](figures/c.png)", "", "View: [views/sst2.html](views/sst2.html)",
    ])
    page = markdown_page(md, "T", {"View: [views/sst2.html](views/sst2.html)": '<iframe src="views/sst2.html"></iframe>'})
    assert "<h1>Title &lt;x&gt;</h1>" in page and "<strong>MiniLM</strong>" in page and "<code>bertsecrets show a.h5</code>" in page
    assert "&amp; see <em>why</em>" in page and "<blockquote>the same <em>kind</em> of note</blockquote>" in page
    assert "<table><thead><tr><th>finding</th><th>value</th></tr></thead><tbody><tr><td>cosine, L1</td><td>0.93</td></tr>" in page
    assert "<td>a&lt;b</td>" in page
    assert '<img alt="cosine per head" src="figures/c.png">' in page
    assert '<a href="views/sst2.html">views/sst2.html</a></p>\n<iframe src="views/sst2.html"></iframe>' in page


def test_store_rows_reads_the_rows_asked_in_their_order(demo_store: Path) -> None:
    with open_store(demo_store) as st:
        full = st.array("stats/per_example")
        got = st.rows("stats/per_example", [7, 2, 7, 0])
        np.testing.assert_array_equal(got, full[[7, 2, 7, 0]])
        assert st.rows("stats/per_example", []).shape == (0, *full.shape[1:])


def test_size_is_the_maps_in_base64_plus_little(demo_store: Path, tmp_path: Path) -> None:
    """2 bytes per float16 value, 4/3 for base64: 2.67 bytes a value; everything else (tokens, texts, grids, the
    program) must stay small, which is what keeps a 64-example view of the embedded model near 3 MB (< 10 MB)."""
    out = tmp_path / "v.html"
    assert invoke("view", str(demo_store), "-n", "24", "-o", str(out)).exit_code == 0
    page = payload(out)
    values = sum(page["layers"] * page["heads"] * len(e["tokens"]) ** 2 for e in page["examples"])
    size = out.stat().st_size
    assert values * 8 / 3 <= size < values * 8 / 3 * 1.1 + 60_000, (size, values)


@covers("view", "--allow-mismatch")
def test_side_stores_of_another_model_task_or_examples_are_refused_or_embedded_with_a_warning(demo_store: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.store import StoreWriter

    with open_store(demo_store) as st:
        L, H, prov = st.n_layers, st.n_heads, st.provenance()
    other = tmp_path / "mrpc-abl.h5"  # an ablation of another model on MRPC (as reproduce writes one per task)
    with StoreWriter(other, "ablation") as w:
        w.set_model(n_layers=L, n_heads=H, name="runs/mrpc")
        w.set_provenance({"tool": "bertsecrets", "task": "mrpc", "model": "runs/mrpc", "model_fingerprint": "sha256:another"})
        w.put_head_quantity("ablation_delta", np.zeros((L, H)), "score with the head disabled minus the baseline score")
    line = one_line_error(invoke("view", str(demo_store), "--ablation", str(other), "-o", str(tmp_path / "v.html")), 3, "mrpc-abl.h5")
    assert "task mrpc, not sst2" in line and "model runs/mrpc" in line and "--allow-mismatch" in line
    assert not (tmp_path / "v.html").exists()
    unrelated = tmp_path / "pat.h5"  # patterns of other examples: none of those shown
    with StoreWriter(unrelated, "patterns") as w:
        w.set_model(n_layers=L, n_heads=H, name="m")
        w.set_provenance({"tool": "bertsecrets", "task": prov["task"], "model_fingerprint": prov["model_fingerprint"]})
        w.put_strings("examples/id", ["elsewhere-1", "elsewhere-2"])
        w.put_head_quantity("pattern_share_vertical", np.zeros((L, H)), "share")
    one_line_error(invoke("view", str(demo_store), "--patterns", str(unrelated), "-o", str(tmp_path / "v.html")), 3, "none of the 8 examples shown")
    res = invoke("view", str(demo_store), "--ablation", str(other), "--allow-mismatch", "-o", str(tmp_path / "v.html"))
    assert res.exit_code == 0, res.stderr
    assert "warning: --ablation" in res.stderr and "task mrpc, not sst2" in res.stderr
    assert payload(tmp_path / "v.html")["sides"][0]["warning"].startswith("model runs/mrpc")
