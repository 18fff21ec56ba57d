"""One --device resolver for the whole package (model/device.py): every command accepts the same values and
refuses a bad one with the same one-line message, and no other module asks torch about devices itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.errors import InputError
from bertsecrets_cli.model.device import device_name, local_device, resolve_device

ROOT = Path(__file__).resolve().parent.parent / "bertsecrets_cli"
BAD = "--device 'tpu': expected auto, cpu, cuda or cuda:N"


def test_values_and_refusals():
    assert device_name("auto") in ("cpu", "cuda") and device_name(" CPU ") == "cpu" and str(resolve_device(None)) == device_name("auto")
    with pytest.raises(InputError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")


def test_each_torchrun_process_gets_its_own_gpu_only_under_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert local_device("auto") == "auto"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    import torch

    assert local_device("auto") == ("cuda:1" if torch.cuda.is_available() else "auto")
    assert local_device("cpu") == "cpu"


def test_no_other_module_resolves_a_device():
    """torch.device(...) and torch.cuda.is_available() are called in model/device.py only."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "model" / "device.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name in ("torch.device", "torch.cuda.is_available", "torch.cuda.device_count"):
                    found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {name}")
    assert found == []


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clf") / "clf.pt"
    res = CliRunner().invoke(app, ["classify", "train", "--synthetic", "20", "--epochs", "1", "--device", "cpu", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_every_command_refuses_a_bad_device_in_the_same_words(tmp_path, demo_store, tiny_model_factory, classifier_file):
    from test_framenet_cli import CONLLU

    (tmp_path / "dev.conllu").write_text(CONLLU)
    clf = str(tiny_model_factory("bert", classifier=True))
    runs = {
        "extract": ["extract", "-n", "2", "-o", str(tmp_path / "x.h5")],
        "ablate": ["ablate", "-m", clf, "-n", "4", "-o", str(tmp_path / "a.h5")],
        "framenet": ["framenet", "--conllu", str(tmp_path / "dev.conllu"), "-m", str(tiny_model_factory("bert")), "-o", str(tmp_path / "f.h5")],
        "finetune": ["finetune", "-m", clf, "--eval-limit", "4", "--eval-only", "-o", str(tmp_path / "ft")],
        "classify train": ["classify", "train", "--synthetic", "20", "--epochs", "1", "-o", str(tmp_path / "c.pt")],
        "classify run": ["classify", "run", str(demo_store), "--classifier", str(classifier_file)],
        "coref": ["coref", str(tmp_path / "dev.conllu"), "-m", str(tiny_model_factory("bert")), "-o", str(tmp_path / "co.h5")],
        "probe": ["probe", "--train", str(tmp_path / "dev.conllu"), "--test", str(tmp_path / "dev.conllu"), "-o", str(tmp_path / "p.h5")],
    }
    for name, args in runs.items():
        res = CliRunner().invoke(app, [*args, "--device", "tpu", "-q"])
        assert res.exit_code == 3, f"{name}: {res.output}"
        assert BAD in res.stderr and len(res.stderr.strip().splitlines()) == 1, f"{name}: {res.stderr}"
