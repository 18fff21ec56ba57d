"""Which classifier labels the maps: the default rules (with their computed validation score) or a CNN file
from ``classify train``, each reported with its name and score, because shares depend on the classifier."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertsecrets_cli.analysis import patterns as P
from bertsecrets_cli.errors import InputError

if TYPE_CHECKING:
    import numpy as np

RULES_VALIDATION_MAPS = 250
RULES_VALIDATION_SEED = 0


@dataclass
class ClassifierInfo:
    """What every share is reported with: shares depend strongly on the classifier (paper.md sec. 1)."""

    name: str
    kind: str  # rules | cnn
    score: float  # accuracy (rules, on synthetic maps) or validation macro-F1 (cnn)
    score_text: str
    file: str = ""
    sha256: str = ""

    @property
    def label(self) -> str:
        return f"{self.name}, {self.score_text}"

    def attrs(self) -> dict[str, Any]:
        return {"classifier": self.name, "classifier_kind": self.kind, "classifier_score": float(self.score),
                "classifier_score_text": self.score_text, "classifier_file": self.file, "classifier_sha256": self.sha256}


@functools.lru_cache(maxsize=1)
def rules_validation(n: int = RULES_VALIDATION_MAPS, seed: int = RULES_VALIDATION_SEED) -> float:
    """Accuracy of the default rules on ``n`` synthetic maps at the generator's default noise (computed, ~0.2 s)."""
    import numpy as np

    from bertsecrets_cli.analysis.synthetic import generate

    s = generate(n, seed=seed)
    pred = np.array([P.classify_maps(m, sp, ty)[0] for m, sp, ty in zip(s.maps, s.special, s.type_ids)])
    return float(np.mean(pred == s.labels))


def rules_help() -> str:
    """The default rules and their thresholds as --help shows them; numpy stays unimported (help runs at every TAB)."""
    return P.rules_help()


def rules_info() -> ClassifierInfo:
    from bertsecrets_cli.analysis.synthetic import DEFAULT_NOISE

    acc = rules_validation()
    return ClassifierInfo(P.RULES_NAME, "rules", acc, f"accuracy {acc:.3f} on {RULES_VALIDATION_MAPS} synthetic maps at noise {DEFAULT_NOISE:g}")


def file_sha256(path: Path) -> str:
    """The sha256 a classifier or labels file is recorded with, so a result names exactly the file behind it."""
    import hashlib  # here, not at import: cli/classify imports this module for its --help

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class CnnClassifier:
    model: Any
    payload: dict[str, Any]
    device: str
    info: ClassifierInfo

    def predict(self, maps: list[np.ndarray]) -> np.ndarray:
        from bertsecrets_cli.model.cnn import predict

        return predict(self.model, maps, int(self.payload["size"]), self.device, input=self.payload.get("input", "scaled"))


def load_classifier(path: str | Path, device: str = "cpu") -> CnnClassifier:
    """A classifier file written by ``classify train``; one InputError line for anything else."""
    import torch

    from bertsecrets_cli.model.cnn import from_payload
    from bertsecrets_cli.model.device import device_name

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such classifier file")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(f"{p}: not a classifier file written by 'bertsecrets classify train' ({type(e).__name__})") from e
    try:
        model = from_payload(payload, device_name(device))
    except (ValueError, KeyError, RuntimeError, AttributeError) as e:
        raise InputError(f"{p}: not a usable bertsecrets pattern classifier ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e
    v = payload["validation"]
    source = payload.get("training", {}).get("source", "annotated")
    text = f"validation macro-F1 {v['macro_f1']:.3f}, accuracy {v['accuracy']:.3f} on {v['n_maps']} {source} maps"
    info_ = ClassifierInfo(f"cnn:{p.name}", "cnn", float(v["macro_f1"]), text, str(p), file_sha256(p))
    return CnnClassifier(model, payload, device_name(device), info_)
