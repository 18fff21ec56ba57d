"""``bertsecrets plot``: terminal figures with 1-based labels and a legend; PNG/SVG/PDF files that are real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.store import StoreWriter

from helpers import covers, one_line_error

runner = CliRunner()
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-"}
SLUGS = ("vertical", "diagonal", "vertical_diagonal", "block", "heterogeneous")


def invoke(*args: str):
    return runner.invoke(app, list(args))


def assert_image(path: Path, min_bytes: int = 5000) -> bytes:
    """A complete file of the kind its extension says, large enough to hold a drawn figure."""
    data = path.read_bytes()
    ext = path.suffix
    if ext == ".svg":
        head = data[:400].decode()
        assert head.startswith("<?xml") and "<svg" in head
        assert data.rstrip().endswith(b"</svg>")
    else:
        assert data.startswith(MAGIC[ext]), data[:8]
        assert data.rstrip().endswith(b"%%EOF") if ext == ".pdf" else data[-8:-4] == b"IEND"
    assert len(data) > min_bytes, len(data)
    return data


@pytest.fixture(scope="module")
def patterns_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A patterns store as classify writes one: per-head shares of each type, L1 all vertical, L6 all heterogeneous."""
    path = tmp_path_factory.mktemp("plot") / "patterns.h5"
    L, H = 6, 12
    shares = np.zeros((len(SLUGS), L, H))
    for li in range(L):
        shares[0, li] = 1 - li / (L - 1)
        shares[4, li] = li / (L - 1)
    with StoreWriter(path, "patterns") as w:
        w.set_model(n_layers=L, n_heads=H, name="synthetic")
        w.set_provenance({"tool": "bertsecrets"})
        for k, slug in enumerate(SLUGS):
            w.put_head_quantity(f"pattern_share_{slug}", shares[k], f"share of maps classified {slug}")
    return path


def test_terminal_head_grid_has_1_based_labels_and_a_legend_within_80_columns(demo_store: Path) -> None:
    res = invoke("plot", str(demo_store), "--quantity", "stat_sep")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    header = next(ln for ln in lines if "H1" in ln)
    assert header.split() == [f"H{h}" for h in range(1, 13)]
    rows = [ln for ln in lines if ln[:2] in {f"L{i}" for i in range(1, 7)}]
    assert [r.split()[0] for r in rows] == [f"L{i}" for i in range(1, 7)] and all(len(r.split()) == 13 for r in rows)
    assert any(ln.startswith("legend:") for ln in lines) and "stat_sep" in lines[0]
    assert max(len(ln) for ln in lines if not ln.startswith("mean attention")) <= 80


def test_bare_plot_of_a_diff_store_draws_the_cosine_grid(demo_store: Path, tmp_path: Path) -> None:
    d = tmp_path / "d.h5"
    assert invoke("diff", str(demo_store), str(demo_store), "-o", str(d), "-q").exit_code == 0
    res = invoke("plot", str(d))
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("cosine: cosine similarity of A's and B's maps") and "1.00" in res.stdout and "legend:" in res.stdout


@pytest.mark.parametrize("ext", [".png", ".svg", ".pdf"])
def test_head_grid_files_are_valid_images_of_their_extension(demo_store: Path, tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"grid{ext}"
    res = invoke("plot", str(demo_store), "--quantity", "stat_sep", "--out", str(out))
    assert res.exit_code == 0, res.stderr
    data = assert_image(out)
    assert res.stdout == "" and "wrote" in res.stderr
    if ext == ".svg":
        text = data.decode()
        assert all(f">{lab}<" in text for lab in ("L1", "L6", "H1", "H12"))  # 1-based labels, kept as text


@covers("plot", "--out", "--example", "--layer", "--head")
def test_attention_map_file_shows_the_tokens_and_is_reproducible(demo_store: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.store import open_store

    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    assert invoke("plot", str(demo_store), "--example", "3", "--layer", "2", "--head", "9", "--out", str(a)).exit_code == 0
    assert invoke("plot", str(demo_store), "--example", "3", "--head", "L2H9", "--out", str(b)).exit_code == 0
    text = assert_image(a).decode()
    with open_store(demo_store) as st:
        tokens, ex_id = st.tokens(3).text, st.example_ids()[3]
    assert "[CLS]" in text and tokens[1] in text and "L2H9" in text and ex_id in text
    assert a.read_bytes() == b.read_bytes()  # both ways of naming the head, same bytes: no dates in the file
    png = tmp_path / "m.png"
    assert invoke("plot", str(demo_store), "--example", ex_id, "--head", "L2H9", "--out", str(png)).exit_code == 0
    assert_image(png)


def test_terminal_attention_map_labels_rows_with_tokens(demo_store: Path) -> None:
    from bertsecrets_cli.store import open_store

    with open_store(demo_store) as st:
        tokens = st.tokens(0).text
    res = invoke("plot", str(demo_store), "--example", "0", "--head", "L1H1")
    assert res.exit_code == 0, res.stderr
    rows = [ln for ln in res.stdout.splitlines() if ln[:3].strip().isdigit()]
    assert [r.split()[1] for r in rows] == [t[:12] for t in tokens]
    assert "legend:" in res.stdout and "L1H1" in res.stdout.splitlines()[0]


def test_share_bars_from_a_patterns_store(patterns_store: Path, tmp_path: Path) -> None:
    res = invoke("plot", str(patterns_store))
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    bars = {ln.split("▕")[0].strip(): ln.split("▕")[1].rstrip("▏ ") for ln in lines if "▕" in ln}
    assert list(bars) == [f"L{i}" for i in range(1, 7)] + ["all"]
    assert set(bars["L1"]) == {"V"} and set(bars["L6"]) == {"H"}  # classify's letters; the whole bar one type
    assert bars["all"].count("V") == bars["all"].count("H") == len(bars["all"]) // 2  # half and half over all layers
    legend = " ".join(lines[next(i for i, ln in enumerate(lines) if ln.startswith("legend:")) :])
    assert all(name in legend for name in ("vertical 50%", "diagonal 0%", "vertical+diagonal 0%", "block 0%", "heterogeneous 50%"))
    assert max(len(ln) for ln in lines[1:]) <= 80
    out = tmp_path / "shares.png"
    assert invoke("plot", str(patterns_store), "--out", str(out)).exit_code == 0
    assert_image(out)


def test_majority_type_grid_shows_each_heads_class_letter(tmp_path: Path) -> None:
    """A categorical quantity (class_names attribute, as classify's pattern_majority) is drawn as letters, not numbers."""
    import json

    path = tmp_path / "maj.h5"
    classes = ["vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous"]
    values = np.tile(np.arange(4) % 5, (2, 1)).astype(float)
    values[1, 3] = 4
    with StoreWriter(path, "patterns") as w:
        w.set_model(n_layers=2, n_heads=4, name="synthetic")
        w.put_head_quantity("pattern_majority", values, "majority type", class_names=json.dumps(classes))
    res = invoke("plot", str(path), "--quantity", "pattern_majority")
    assert res.exit_code == 0, res.stderr
    rows = {ln.split()[0]: ln.split()[1:] for ln in res.stdout.splitlines() if ln[:2] in ("L1", "L2")}
    assert rows == {"L1": ["V", "D", "M", "B"], "L2": ["V", "D", "M", "H"]}
    assert "heterogeneous (1)" in res.stdout and "block (1)" in res.stdout
    out = tmp_path / "maj.png"
    assert invoke("plot", str(path), "--quantity", "pattern_majority", "--out", str(out)).exit_code == 0
    assert_image(out)


def test_plots_what_classify_writes(demo_store: Path, tmp_path: Path) -> None:
    """End to end with the real classify command: share bars by default, the majority grid on request."""
    from bertsecrets_cli.cli.app import app as cli_app

    if "classify" not in {c.name for c in cli_app.registered_commands} and not any(g.name == "classify" for g in cli_app.registered_groups):
        pytest.skip("classify is not registered")
    pat = tmp_path / "pat.h5"
    res = invoke("classify", str(demo_store), "-o", str(pat), "-q")
    assert res.exit_code == 0, res.stderr
    res = invoke("plot", str(pat))
    assert res.exit_code == 0, res.stderr
    assert "pattern shares per layer" in res.stdout and "heterogeneous" in res.stdout and "all ▕" in res.stdout
    res = invoke("plot", str(pat), "--quantity", "pattern_majority")
    assert res.exit_code == 0, res.stderr
    cells = [c for ln in res.stdout.splitlines() if ln[:2] in {f"L{i}" for i in range(1, 7)} for c in ln.split()[1:]]
    assert len(cells) == 72 and set(cells) <= set("VDMBH")


@covers("plot", "--figure")
def test_per_layer_curves_in_the_terminal_and_as_a_file(demo_store: Path, tmp_path: Path) -> None:
    res = invoke("plot", str(demo_store), "--figure", "layers", "--quantity", "stat_cls,stat_sep")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert sum(ln.startswith("L") and "stat_cls" in ln for ln in lines) == 6
    assert any(ln.startswith("legend:") and "stat_sep" in ln for ln in lines)
    out = tmp_path / "curves.pdf"
    assert invoke("plot", str(demo_store), "--figure", "layers", "--out", str(out)).exit_code == 0
    assert_image(out)


@covers("plot", "--list")
def test_list_shows_what_each_store_can_draw(demo_store: Path, patterns_store: Path) -> None:
    res = invoke("plot", str(demo_store), "--list", "-f", "tsv")
    assert res.exit_code == 0, res.stderr
    rows = [ln.split("\t") for ln in res.stdout.splitlines()[1:]]
    assert {r[1] for r in rows} >= {"stat_sep", "stat_cls", "attention"} and any(r[0] == "map" for r in rows)
    res = invoke("plot", str(patterns_store), "--list", "-f", "tsv")
    figures = [ln.split("\t")[0] for ln in res.stdout.splitlines()[1:]]
    assert figures[0] == "shares" and "map" not in figures  # no attention maps in a patterns store


@covers("plot", "--quantity")
def test_bad_requests_are_one_line_errors(demo_store: Path, patterns_store: Path, tmp_path: Path) -> None:
    one_line_error(invoke("plot", str(demo_store), "--example", "0", "--head", "L7H6"), 3, "6 layers")
    one_line_error(invoke("plot", str(demo_store), "--quantity", "stat_sepp"), 3, "did you mean stat_sep")
    one_line_error(invoke("plot", str(demo_store), "--example", "99", "--head", "L1H1"), 3, "24 examples")
    one_line_error(invoke("plot", str(demo_store), "--head", "6", "--example", "0"), 3, "--layer")
    one_line_error(invoke("plot", str(demo_store), "--out", str(tmp_path / "x.jpg")), 3, ".png")
    one_line_error(invoke("plot", str(patterns_store), "--example", "0", "--head", "L1H1"), 3, "no attention maps")
    existing = tmp_path / "exists.png"
    existing.write_bytes(b"mine")
    one_line_error(invoke("plot", str(demo_store), "--out", str(existing)), 6, "--force")
    assert existing.read_bytes() == b"mine"
    assert invoke("plot", str(demo_store), "--out", str(existing), "--force").exit_code == 0
    assert_image(existing)
