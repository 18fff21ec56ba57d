"""The evaluation routine shared by ``finetune`` (--eval-only, baselines) and ``ablate``.

It takes an already loaded classifier and an optional attention :class:`Intervention`, so head
interventions are evaluated by exactly the same code as the plain model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bertsecrets_cli.analysis.metrics import compute_metrics, predictions_from_logits
from bertsecrets_cli.errors import InputError
from bertsecrets_cli.render.progress import reporter


@dataclass
class EvalResult:
    metrics: dict[str, float]
    logits: np.ndarray  # [N, num_labels]
    predictions: np.ndarray  # [N]
    labels: np.ndarray  # [N], NaN where unlabelled
    ids: list[str]


def batches_for(lm: Any, examples: list[Any], max_length: int, batch_size: int) -> list[tuple[list[int], dict[str, Any]]]:
    """Tokenise once and group by length; each batch carries the example indices it holds."""
    from bertsecrets_cli.model.tokenize import collate, encode_examples

    enc = encode_examples(lm.tokenizer, [(e.text_a, e.text_b) for e in examples], max_length)
    order = sorted(range(len(enc)), key=lambda i: enc[i].length)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    return [(idx, collate([enc[i] for i in idx], pad, lm.device, lm.token_types)) for idx in (order[b : b + batch_size] for b in range(0, len(order), batch_size))]


def labels_of(task: Any, examples: list[Any]) -> np.ndarray:
    return np.asarray([np.nan if e.label is None else float(e.label) for e in examples], dtype=np.float64)


def score(task: Any, logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """Predictions and the task's metrics over the labelled examples."""
    pred = predictions_from_logits(logits, task.is_regression)
    ok = ~np.isnan(labels)
    if not ok.any():
        raise InputError("the evaluation data has no labels (a GLUE test split?); use the dev split")
    gold = labels[ok] if task.is_regression else labels[ok].astype(np.int64)
    return pred, compute_metrics(task.metrics, pred[ok], gold)


def evaluate(lm: Any, task: Any, examples: list[Any], *, max_length: int = 128, batch_size: int = 32, intervention: Any = None, quiet: bool = True) -> EvalResult:
    """Evaluate a loaded sequence classifier on labelled examples; ``intervention`` edits attention."""
    if getattr(lm.model.config, "num_labels", None) != task.num_labels:
        raise InputError(f"model {lm.name} predicts {lm.model.config.num_labels} labels, task {task.name} has {task.num_labels}")
    batches = batches_for(lm, examples, max_length, batch_size)
    from bertsecrets_cli.model.attention import logits_for

    logits = logits_for(lm, batches, len(examples), intervention, progress=reporter(quiet))
    labels = labels_of(task, examples)
    pred, metrics = score(task, logits, labels)
    return EvalResult(metrics, logits, pred, labels, [e.id for e in examples])
