"""Figures and tables say what they show: the quantity in words with its unit, the model, the data and N;
ablation grids in points with the cells whose 95% interval includes 0 marked; one definition per name."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.store import StoreWriter

runner = CliRunner()
GLOSSARY = Path(__file__).resolve().parents[1] / "docs" / "glossary.md"


def invoke(*args: str):
    return runner.invoke(app, list(args))


def _ablation_store(path: Path, *, intervals: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """An ablation-like store: deltas (fractions) with intervals of half-width 0.012; returns (delta, covers 0)."""
    rng = np.random.default_rng(0)
    d = rng.normal(0, 0.01, (6, 12))
    d[2, 4], d[5, 0] = 0.05, -0.08
    lo, hi = d - 0.012, d + 0.012
    with StoreWriter(path, "ablation") as w:
        w.set_model(n_layers=6, n_heads=12, name="synthetic-model")
        w.set_provenance({"tool": "bertsecrets", "task": "sst2", "split": "dev", "data_source": "demo data"})
        w.put_strings("examples/id", [f"e{i}" for i in range(40)])
        w.put_head_quantity("ablation_delta", d, "disabled - baseline", mode="uniform", metric="accuracy")
        if intervals:
            w.put_head_quantity("ablation_ci_low", lo, "lower end", mode="uniform", metric="accuracy")
            w.put_head_quantity("ablation_ci_high", hi, "upper end", mode="uniform", metric="accuracy")
    return d, (lo <= 0) & (hi >= 0)


@pytest.fixture(scope="module")
def ablation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    path = tmp_path_factory.mktemp("labels") / "abl.h5"
    d, noise = _ablation_store(path)
    return path, d, noise


def _grid_cells(stdout: str) -> list[list[str]]:
    rows = [ln for ln in stdout.splitlines() if re.match(r"L\d ", ln)]
    return [re.findall(r"\S+", r[3:]) for r in rows]


def test_terminal_ablation_grid_is_in_points_and_marks_every_noisy_cell(ablation) -> None:
    path, d, noise = ablation
    res = invoke("plot", str(path))
    assert res.exit_code == 0, res.stderr
    out, flat = res.stdout, " ".join(res.stdout.split())
    assert "(accuracy points)" in flat and "synthetic-model" in flat and "N=40 examples" in flat and "sst2 dev" in flat
    cells = _grid_cells(out)
    assert len(cells) == 6 and all(len(r) == 12 for r in cells)
    marked = np.array([[c.endswith("?") for c in r] for r in cells])
    np.testing.assert_array_equal(marked, noise)  # exactly the cells whose interval covers 0
    assert float(cells[2][4].rstrip("?")) == pytest.approx(100 * d[2, 4], abs=0.05)  # 0.05 -> 5.0 points
    assert float(cells[5][0].rstrip("?")) == pytest.approx(100 * d[5, 0], abs=0.05)
    assert f"interval of the change includes 0 (noise?) ({int(noise.sum())} of 72 cells)" in flat


def test_grid_without_intervals_marks_nothing(tmp_path: Path) -> None:
    path = tmp_path / "abl.h5"
    _ablation_store(path, intervals=False)
    res = invoke("plot", str(path))
    assert res.exit_code == 0, res.stderr
    assert not any(c.endswith("?") for r in _grid_cells(res.stdout) for c in r) and "noise?" not in res.stdout


def test_grid_file_hatches_noisy_cells_and_labels_the_colour_bar_in_points(ablation, tmp_path: Path) -> None:
    path, _, noise = ablation
    out = tmp_path / "abl.svg"
    res = invoke("plot", str(path), "-o", str(out))
    assert res.exit_code == 0, res.stderr
    svg = out.read_text()
    text = " ".join(re.sub(r"<[^>]+>", " ", svg).split())
    assert "(accuracy points)" in text and "synthetic-model" in text and "N=40 examples" in text
    assert f"includes 0 (noise?) ({int(noise.sum())} of 72)" in text
    assert svg.count('<pattern id=') >= 1  # the hatch
    assert "5.00" in text and "-8.00" in text  # points, two decimals: 0.05 -> 5.00

    plain = tmp_path / "plain.h5"
    _ablation_store(plain, intervals=False)
    out2 = tmp_path / "plain.svg"
    assert invoke("plot", str(plain), "-o", str(out2)).exit_code == 0
    assert "noise?" not in out2.read_text() and "<pattern id=" not in out2.read_text()


def test_figures_of_an_attention_store_name_words_unit_model_data_and_n(demo_store: Path, tmp_path: Path) -> None:
    res = invoke("plot", str(demo_store), "--quantity", "stat_sep")
    first = " ".join(" ".join(res.stdout.splitlines()[:4]).split())
    assert "attention mass on all [SEP] tokens together" in first and "(attention mass, 0-1)" in first
    assert "embedded:all-MiniLM-L6-v2" in first and "N=24 examples" in first and "sst2 dev" in first
    legend = " ".join(res.stdout[res.stdout.index("legend:"):].split())
    assert re.search(r"█ [\d.]+ attention mass, 0-1", legend), legend  # the colour range says its unit
    out = tmp_path / "layers.svg"
    assert invoke("plot", str(demo_store), "--figure", "layers", "--quantity", "stat_entropy", "-o", str(out)).exit_code == 0
    text = " ".join(re.sub(r"<[^>]+>", " ", out.read_text()).split())
    assert "entropy of the head's attention rows (nats), mean over heads" in text and "N=24 examples" in text
    assert "mean over heads" != text  # the axis names the quantity, not only the aggregation
    res = invoke("plot", str(demo_store), "--example", "0", "--head", "L1H1")
    flat = " ".join(res.stdout.split())
    assert "attention weights of L1H1" in flat and "of 24" in flat and "embedded:all-MiniLM-L6-v2" in flat


def test_show_ranking_names_words_unit_and_context(ablation) -> None:
    path, _, _ = ablation
    res = invoke("show", str(path), "--quantity", "ablation_delta", "-k", "3")
    flat = " ".join(res.stdout.split())
    assert "change of accuracy when the head alone is disabled" in flat and "x100 = accuracy points" in flat
    assert "synthetic-model on sst2 dev, demo data, N=40 examples" in flat


def test_each_statistic_name_has_one_definition_listed_in_the_glossary() -> None:
    from bertsecrets_cli.analysis.token_features import TOKEN_FEATURES
    from bertsecrets_cli.render.labels import STAT_COLUMNS, TOKEN_COLUMNS, quantity_label
    from bertsecrets_cli.store.schema import STAT_NAMES

    names = [f"stat_{k}" for k in STAT_NAMES] + [f"token_{k}" for k in TOKEN_FEATURES]
    words = [quantity_label(n).words for n in names]
    assert len(set(words)) == len(words)  # sum over [SEP]s and max over [SEP]s are not both "[SEP] attention"
    assert quantity_label("stat_punct").words != quantity_label("token_punct").words
    # the extract table's and classify --features's column headers differ where the statistics do
    assert STAT_COLUMNS["punct"] != TOKEN_COLUMNS["punct"] and STAT_COLUMNS["sep"] != TOKEN_COLUMNS["sep"]
    glossary = GLOSSARY.read_text()
    for n, w in zip(names, words):
        assert f"`{n}`" in glossary and w in glossary, n
    for col in (*STAT_COLUMNS.values(), *TOKEN_COLUMNS.values()):
        assert col in glossary, col


def test_extract_and_classify_tables_name_sum_and_max_statistics_apart(demo_store: Path) -> None:
    """extract's [SEP]/punctuation columns sum over every such token; classify --features takes the most-attended one."""
    import json

    from bertsecrets_cli.jobs.extract import summary_table
    from bertsecrets_cli.store import open_store

    with open_store(demo_store) as st:
        t = summary_table({k: v.values for k, v in st.heads().items()}, st.n_layers, "m on d, N=24 examples")
    assert t.columns[2:4] == ["[SEP] sum", "punct sum"] and "summed over every" in (t.caption or "") and "N=24 examples" in t.title
    res = invoke("classify", str(demo_store), "--features", "-f", "json", "--table", "token-layers")
    assert res.exit_code == 0, res.stderr
    row = json.loads(res.stdout)[0]
    assert {"[SEP] max", "punct max", "negation max"} <= set(row) and "punct sum" not in row
    res = invoke("classify", str(demo_store), "--features", "--table", "token-layers")
    assert "attention to tokens per layer, mean over heads (N=24 examples)" in " ".join(res.stdout.split())


def test_preset_label_names_the_overridden_hyperparameters() -> None:
    from bertsecrets_cli.jobs.finetune import preset_label

    assert preset_label("paper", {}) == "preset paper"
    assert preset_label("paper", {"lr": None, "epochs": 3}) == "preset paper"  # the preset's own value overrides nothing
    assert preset_label("paper", {"lr": 1e-4, "epochs": 5}) == "preset paper, with lr and epochs overridden"
    assert preset_label("demo", {"lr": 1e-3, "batch_size": 4, "weight_decay": 0.0}) == "preset demo, with lr, batch size and weight decay overridden"


def test_finetune_reports_and_records_a_preset_with_overrides(tiny_model_factory, tmp_path: Path) -> None:
    import json

    encoder = tiny_model_factory("bert", classifier=False)
    out = tmp_path / "ft"
    res = invoke("finetune", "--model", str(encoder), "--preset", "paper", "--lr", "1e-4", "--epochs", "5", "--max-steps", "1",
                 "--train-limit", "8", "--eval-limit", "4", "--device", "cpu", "--no-baselines", "-o", str(out))
    assert res.exit_code == 0, res.stderr
    label = "preset paper, with lr, epochs and max steps overridden"
    assert f"{label}: lr 0.0001" in res.stderr and "preset paper: lr" not in res.stderr
    record = json.loads((out / "finetune.json").read_text())
    assert record["preset_overridden"] == "lr,epochs,max_steps" and record["preset_label"] == label
    assert f"fine-tuned with {label}" in " ".join(res.stdout.split())


def test_a_real_ablation_store_plots_in_points_with_its_noisy_cells_marked(tiny_model_factory, tmp_path: Path) -> None:
    """End to end: the names ablate writes are the ones plot marks by, and its tables say their unit and N."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bertsecrets_cli.analysis.ablation import covers_zero
    from bertsecrets_cli.store import open_store
    from helpers import strengthen

    src = tiny_model_factory("bert", classifier=True)
    model = AutoModelForSequenceClassification.from_pretrained(src)
    strengthen(model)
    model.save_pretrained(tmp_path / "m")
    AutoTokenizer.from_pretrained(src).save_pretrained(tmp_path / "m")
    out = tmp_path / "abl.h5"
    res = invoke("ablate", "-m", str(tmp_path / "m"), "-n", "24", "--bootstrap", "200", "--device", "cpu", "-q", "-o", str(out))
    assert res.exit_code == 0, res.stderr
    flat = " ".join(res.stdout.split())
    assert "(0.01 = 1 accuracy point)" in flat and "N=24 labelled examples" in flat
    with open_store(out) as st:
        h = st.heads()
        noise = covers_zero(h["ablation_ci_low"].values, h["ablation_ci_high"].values)
        delta = h["ablation_delta"].values
    res = invoke("plot", str(out))
    assert res.exit_code == 0, res.stderr
    cells = _grid_cells(res.stdout)
    np.testing.assert_array_equal(np.array([[c.endswith("?") for c in r] for r in cells]), noise)
    shown = np.array([[float(c.rstrip("?")) for c in r] for r in cells])
    np.testing.assert_allclose(shown, 100 * delta, atol=0.051)  # points, one decimal at least
    assert "(accuracy points)" in " ".join(res.stdout.split())


def test_diff_similarity_table_names_models_data_and_n(demo_store: Path, tmp_path: Path) -> None:
    res = invoke("diff", str(demo_store), str(demo_store), "-o", str(tmp_path / "d.h5"), "--table", "layers")
    assert res.exit_code == 0, res.stderr
    flat = " ".join(res.stdout.split())
    assert "embedded:all-MiniLM-L6-v2 -> embedded:all-MiniLM-L6-v2" in flat and "N=24 paired examples" in flat
    assert "JS divergence in bits" in flat and "(0-1; 1 = the same maps)" in flat
