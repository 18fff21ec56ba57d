"""Values that mean nothing are refused with one line that points to the right option, before any work; a view
page that a browser would open slowly says so and what to pass instead; the page's data survives any text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import one_line_error
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.errors import EXIT_INPUT, InputError

runner = CliRunner()


@pytest.fixture(scope="module")
def norms_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    out = tmp_path_factory.mktemp("norms") / "norms.h5"
    run_extract(ExtractOptions(data=DataOptions(task="sst2", limit=2), quantities=("weights", "norms"), device="cpu", quiet=True), out, command="test")
    return out


def test_classify_refuses_unnormalised_norms_and_points_to_norms_normalised(norms_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.h5"
    res = runner.invoke(app, ["classify", "run", str(norms_store), "--quantity", "norms", "-o", str(out)])
    one_line_error(res, EXIT_INPUT, "--quantity norms", "not attention distributions", "use --quantity norms_normalised")
    assert not out.exists()
    assert runner.invoke(app, ["classify", "run", str(norms_store), "-q"]).exit_code == 0  # the weights still classify


def test_a_quantity_without_a_normalised_twin_points_to_the_distributions() -> None:
    from bertsecrets_cli.jobs.classify import _check_distribution

    with pytest.raises(InputError, match="use --quantity weights or norms_normalised or rollout or flow"):
        _check_distribution("flow_raw")  # raw max-flow values (rows sum to 6-11): no distribution
    _check_distribution("rollout")  # a distribution: accepted
    _check_distribution("flow")  # stored row-normalised since store format 2, as Abnar's code: accepted


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_probe_refuses_an_l2_penalty_that_is_no_finite_non_negative_number(value: str, tmp_path: Path) -> None:
    res = runner.invoke(app, ["probe", "--train", "x.conllu", "--test", "x.conllu", "--l2", value, "-o", str(tmp_path / "p.h5")])
    one_line_error(res, EXIT_INPUT, f"--l2 {float(value)}")


@pytest.mark.parametrize("width", ["-5", "3"])
def test_cluster_refuses_a_width_no_terminal_has(demo_store: Path, tmp_path: Path, width: str) -> None:
    out = tmp_path / "c.h5"
    res = runner.invoke(app, ["cluster", str(demo_store), "--width", width, "-o", str(out)])
    one_line_error(res, EXIT_INPUT, f"--width {width}", "at least 20")
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--vmin", "--vmax"])
def test_plot_refuses_a_colour_range_end_that_is_not_finite(demo_store: Path, flag: str) -> None:
    res = runner.invoke(app, ["plot", str(demo_store), "--quantity", "stat_cls", flag, "nan"])
    one_line_error(res, EXIT_INPUT, f"{flag} nan", "finite")


@pytest.mark.parametrize("override, needle", [({"lr": float("inf")}, "--lr inf"), ({"epochs": float("nan")}, "--epochs nan"),
                                              ({"weight_decay": float("inf")}, "--weight-decay inf"), ({"warmup": float("nan")}, "--warmup nan")])
def test_finetune_refuses_hyperparameters_that_are_not_finite(override: dict, needle: str) -> None:
    from bertsecrets_cli.jobs.finetune import resolve_hyper

    with pytest.raises(InputError, match=needle):
        resolve_hyper("paper", override)


def test_view_warns_when_a_browser_would_open_the_page_slowly_and_says_what_to_pass(demo_store: Path, tmp_path: Path,
                                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import bertsecrets_cli.jobs.view as view

    out = tmp_path / "v.html"
    quiet = runner.invoke(app, ["view", str(demo_store), "-n", "4", "-o", str(out)])
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr
    size = out.stat().st_size
    monkeypatch.setattr(view, "SLOW_PAGE_BYTES", (size + 1) // 2)  # as if the page were twice the limit (half of 4 examples fit, odd sizes too)
    res = runner.invoke(app, ["view", str(demo_store), "-n", "4", "-o", str(out), "--force"])
    assert res.exit_code == 0, res.stderr
    warning = [ln for ln in res.stderr.splitlines() if "warning:" in ln]
    assert len(warning) == 1 and "-n 2 " in warning[0] and "--encoding uint8" in warning[0], res.stderr


def test_script_json_round_trips_every_hostile_text_and_hides_every_angle_bracket() -> None:
    from bertsecrets_cli.render.html import script_json

    value = {"t": ["<!--", "</script>", "<script>", "\u202e\u200f", "a\u2028b\u2029c", "&amp;", "]]>", "\\u003c"]}
    text = script_json(value)
    assert json.loads(text) == value
    assert not any(c in text for c in "<>&\u2028\u2029")
