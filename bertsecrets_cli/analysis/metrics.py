"""Task metrics computed in the project (not by an evaluation library), so every number is traceable."""

from __future__ import annotations

import numpy as np
from scipy import stats as _stats

METRIC_NAMES = {"accuracy": "accuracy", "f1": "F1", "mcc": "Matthews corr.", "pearson": "Pearson r", "spearman": "Spearman rho"}


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(gold))) if len(gold) else float("nan")


def f1_binary(pred: np.ndarray, gold: np.ndarray, positive: int = 1) -> float:
    """F1 of the positive class (GLUE's MRPC/QQP convention); 0 when nothing is predicted or gold-positive."""
    p, g = np.asarray(pred) == positive, np.asarray(gold) == positive
    tp = float(np.sum(p & g))
    denom = float(np.sum(p) + np.sum(g))
    return 2 * tp / denom if denom else 0.0


def matthews(pred: np.ndarray, gold: np.ndarray) -> float:
    """Matthews correlation for binary labels; 0 when a marginal is constant (as scikit-learn)."""
    p, g = np.asarray(pred).astype(bool), np.asarray(gold).astype(bool)
    tp, tn = float(np.sum(p & g)), float(np.sum(~p & ~g))
    fp, fn = float(np.sum(p & ~g)), float(np.sum(~p & g))
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denom) if denom else 0.0


def _undefined_correlation(pred: np.ndarray, gold: np.ndarray) -> bool:
    """Fewer than two points or a constant side (compared exactly: np.std of a constant array can come
    out as 1e-17, and scipy would then warn and return nan anyway)."""
    pred, gold = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    return len(gold) < 2 or bool(np.all(pred == pred[0])) or bool(np.all(gold == gold[0]))


def pearson(pred: np.ndarray, gold: np.ndarray) -> float:
    """Pearson r; nan when undefined (a constant prediction, such as the mean-score baseline)."""
    if _undefined_correlation(pred, gold):
        return float("nan")
    return float(_stats.pearsonr(np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64))[0])


def spearman(pred: np.ndarray, gold: np.ndarray) -> float:
    """Spearman rho (average ranks for ties); nan when undefined."""
    if _undefined_correlation(pred, gold):
        return float("nan")
    return float(_stats.spearmanr(np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64))[0])


_FUNCS = {"accuracy": accuracy, "f1": f1_binary, "mcc": matthews, "pearson": pearson, "spearman": spearman}


def compute_metrics(metrics: tuple[str, ...], pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Every metric of a task, by name, over labelled examples."""
    return {m: _FUNCS[m](np.asarray(pred), np.asarray(gold)) for m in metrics}


def predictions_from_logits(logits: np.ndarray, is_regression: bool) -> np.ndarray:
    """Class index (argmax) or the regression value."""
    logits = np.asarray(logits)
    return logits[:, 0].astype(np.float64) if is_regression else logits.argmax(-1)


def majority_baseline(metrics: tuple[str, ...], train_labels: np.ndarray, gold: np.ndarray, is_regression: bool) -> dict[str, float]:
    """Scores of always predicting the training set's majority class (or mean, for regression)."""
    if is_regression:
        pred = np.full(len(gold), float(np.mean(train_labels)))
    else:
        values, counts = np.unique(np.asarray(train_labels), return_counts=True)
        pred = np.full(len(gold), values[np.argmax(counts)])
    return compute_metrics(metrics, pred, gold)
