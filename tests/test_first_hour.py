"""Small traps of a user's first hour: CPU threads, a missing model folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.model import device

from helpers import one_line_error


def test_cpu_threads_follow_the_affinity_and_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert device.cpu_threads() == 4
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    assert device.cpu_threads() == 2


def test_default_threads_never_exceed_the_cpus_of_the_process_unless_omp_says(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
        torch.set_num_threads(4)
        monkeypatch.setattr(device, "cpu_threads", lambda: 1)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        device.set_default_threads()
        assert torch.get_num_threads() == 4  # the user's OMP_NUM_THREADS wins
        monkeypatch.delenv("OMP_NUM_THREADS")
        device.set_default_threads()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_missing_local_model_folder_is_called_a_missing_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["extract", "--model", "runs/nothere", "--limit", "2", "-o", "x.h5"])
    line = one_line_error(res, 3, "runs/nothere", "no such folder")
    assert "hub" not in line and not (tmp_path / "x.h5").exists()


def _complete(shell: str, line: str) -> list[str]:
    """What the completion script of ``shell`` (completions/) gets back from the program for ``line``."""
    import subprocess
    import sys

    env = {**os.environ, "_BERTSECRETS_COMPLETE": f"complete_{shell}"}
    if shell == "bash":
        env.update(COMP_WORDS=line, COMP_CWORD=str(len(line.split()) - (0 if line.endswith(" ") else 1)))
    else:
        env["_TYPER_COMPLETE_ARGS"] = line
        if shell == "fish":
            env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    code = "import sys; sys.argv[0] = 'bertsecrets'; from bertsecrets_cli.cli.app import app; app(prog_name='bertsecrets')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    return out.replace('"', " ").replace("(", " ").replace(")", " ").replace("'", " ").split()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_option_values_with_fixed_choices_complete_in_every_shell(shell: str) -> None:
    from bertsecrets_cli.jobs.ablate import MODES
    from bertsecrets_cli.store.schema import ENCODINGS

    words = _complete(shell, "bertsecrets extract --encoding ")
    assert all(e in words for e in ENCODINGS)
    words = _complete(shell, "bertsecrets ablate --mode ")
    assert all(m in words for m in MODES)
    words = _complete(shell, "bertsecrets extract --task s")
    assert "sst2" in words and "stsb" in words and "mrpc" not in words
    if shell == "bash":  # the options added with issues 26, 30 and 31 (one shell is enough: the mechanism is shared)
        assert {"ours", "authors"} <= set(_complete(shell, "bertsecrets probe --definition "))
        assert {"task", "loss"} <= set(_complete(shell, "bertsecrets ablate --metric "))
        assert {"full", "none"} <= set(_complete(shell, "bertsecrets extract --maps "))


def test_mds_labels_never_overlap_and_every_isolated_head_is_labelled() -> None:
    import numpy as np

    from bertsecrets_cli.render.scatter_figures import labelled_points

    rng = np.random.default_rng(0)
    crowd = rng.normal(0, 0.001, (30, 2))  # 30 heads on one spot: one label
    isolated = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]])
    xy = np.vstack([crowd, isolated])
    shown = labelled_points(xy, min_gap=0.05)
    unit = (xy - xy.min(0)) / np.ptp(xy, axis=0)
    assert len([k for k in shown if k < 30]) == 1 and {30, 31, 32} <= set(shown)
    assert all(np.hypot(*(unit[a] - unit[b])) >= 0.05 for a in shown for b in shown if a < b)


def test_pattern_types_have_one_colour_in_figures_terminal_and_view(demo_store, tmp_path) -> None:
    import json
    import re

    import matplotlib

    from bertsecrets_cli.render import colours, terminal_grid, terminal_scatter

    matplotlib.use("Agg")
    tab = matplotlib.colormaps["tab10"]
    assert [tuple(round(255 * x) for x in tab(k)[:3]) for k in range(10)] == list(colours.CATEGORY_RGB)
    assert list(terminal_grid.TAB10) == list(colours.CATEGORY_RGB) and terminal_scatter.category_rgb(3) == colours.CATEGORY_RGB[3]
    res = CliRunner().invoke(app, ["view", str(demo_store), "-o", str(tmp_path / "v.html"), "-n", "1"])
    assert res.exit_code == 0, res.stderr
    page = (tmp_path / "v.html").read_text()
    data = json.loads(re.search(r'<script[^>]*id="bertsecrets-data"[^>]*>(.*?)</script>', page, re.S).group(1))
    assert data["palette"] == list(colours.CATEGORY_HEX)


def test_index_headings_are_unique() -> None:
    from bertsecrets_cli.jobs.reproduce import _unique_headings

    lines = ["## sst2", "### baseline", "x", "## mrpc", "### baseline", "### baseline", "## stsb", "### scores"]
    heads = [ln for ln in _unique_headings(lines) if ln.startswith("#")]
    assert len(heads) == len(set(heads)) == 7 and "### baseline (mrpc)" in heads
