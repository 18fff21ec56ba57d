"""The layout of evaluation stores (kind "evaluation"): written by ``finetune``, readable by anyone.

Same conventions as attention stores (root attributes, /model, /provenance, /examples) plus:

* ``/evaluation/logits``      float32 [N, num_labels]  the model's output per example (example order)
* ``/evaluation/prediction``  float64 [N]              class index, or the regression value
* ``/evaluation`` attributes  one per metric (accuracy, f1, mcc, pearson, spearman), plus ``main_metric``
* ``/baselines/<name>``       empty groups whose attributes are that baseline's metrics
  (``majority``: always the training majority class / mean; ``untrained_head``: the model before fine-tuning)
* ``/training/log_history``   JSON string: Trainer's loss log (only after training)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.store import schema as S

KIND = "evaluation"
G_EVALUATION = "evaluation"
G_BASELINES = "baselines"
LOGITS = "evaluation/logits"
PREDICTION = "evaluation/prediction"
LOG_HISTORY = "training/log_history"


@dataclass
class EvaluationRecord:
    ids: list[str]
    labels: np.ndarray  # float64 [N], NaN where unlabelled
    logits: np.ndarray  # float32 [N, C]
    predictions: np.ndarray  # float64 [N]
    metrics: dict[str, float]
    main_metric: str
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    label_names: list[str] = field(default_factory=list)
    task: str = ""
    log_history: list[dict[str, Any]] | None = None


def write_evaluation(
    path: str | Path,
    *,
    force: bool,
    model: dict[str, Any],
    provenance: dict[str, Any],
    texts: dict[str, str],
    examples: dict[str, Any],
    logits: np.ndarray,
    predictions: np.ndarray,
    metrics: dict[str, float],
    main_metric: str,
    baselines: dict[str, dict[str, float]] | None = None,
    log_history: list[dict[str, Any]] | None = None,
    locking: bool | None = None,
) -> Path:
    """Write one evaluation store atomically. ``model`` holds n_layers, n_heads and short attributes;
    ``examples`` maps names (id, text_a, text_b, label) to per-example values."""
    from bertsecrets_cli.store.writer import StoreWriter

    model = dict(model)
    n_layers, n_heads = model.pop("n_layers"), model.pop("n_heads")
    with StoreWriter(path, KIND, force=force, locking=locking) as w:
        w.set_model(n_layers=n_layers, n_heads=n_heads, **{k: json.dumps(v) if isinstance(v, (list, tuple, dict)) else v for k, v in model.items()})
        w.set_provenance(provenance, texts)
        for name, values in examples.items():
            if isinstance(values, list) and (not values or isinstance(values[0], str)):
                w.put_strings(f"{S.G_EXAMPLES}/{name}", values)
            else:
                w.put_array(f"{S.G_EXAMPLES}/{name}", np.asarray(values))
        w.put_array(LOGITS, np.asarray(logits, dtype=np.float32))
        w.put_array(PREDICTION, np.asarray(predictions, dtype=np.float64))
        g = w.h5[G_EVALUATION]
        for k, v in metrics.items():
            g.attrs[k] = float(v)
        g.attrs["main_metric"] = main_metric
        for name, values in (baselines or {}).items():
            b = w.h5.require_group(f"{G_BASELINES}/{name}")
            for k, v in values.items():
                b.attrs[k] = float(v)
        if log_history is not None:
            w.put_json(LOG_HISTORY, log_history)
        return w.commit()


def _attrs(group: Any) -> dict[str, Any]:
    out = {}
    for k, v in group.attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        out[k] = v.item() if hasattr(v, "item") else v
    return out


def read_evaluation(path: str | Path, *, locking: bool | None = None) -> EvaluationRecord:
    """Read an evaluation store back (validated by ``open_store``)."""
    from bertsecrets_cli.store.reader import open_store

    with open_store(path, kind=KIND, locking=locking) as st:
        h5 = st.h5
        ev = _attrs(h5[G_EVALUATION])
        main = str(ev.pop("main_metric", ""))
        baselines = {name: {k: float(v) for k, v in _attrs(h5[f"{G_BASELINES}/{name}"]).items()} for name in h5.get(G_BASELINES, {})}
        model = st.model_attrs()
        names = model.get("label_names", "[]")
        return EvaluationRecord(
            ids=st.example_ids(),
            labels=h5[f"{S.G_EXAMPLES}/label"][...].astype(np.float64),
            logits=h5[LOGITS][...],
            predictions=h5[PREDICTION][...],
            metrics={k: float(v) for k, v in ev.items()},
            main_metric=main,
            baselines=baselines,
            label_names=json.loads(names) if isinstance(names, str) and names.startswith("[") else [],
            task=str(st.provenance().get("task", "")),
            log_history=st.json(LOG_HISTORY) if LOG_HISTORY in h5 else None,
        )
