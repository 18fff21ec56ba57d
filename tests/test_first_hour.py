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
