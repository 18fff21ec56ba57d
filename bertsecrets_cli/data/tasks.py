"""The registry of the nine GLUE tasks: columns, labels, metrics, dev split, matching demo data."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from bertsecrets_cli.errors import InputError


@dataclass(frozen=True)
class TaskSpec:
    name: str  # our name, lower case: 'sst2'
    glue_dir: str  # folder name in the standard GLUE download: 'SST-2'
    hub_config: str  # config name of the hub data set nyu-mll/glue
    text_columns: tuple[str, ...]  # hub column names: ('sentence',) or ('sentence1', 'sentence2')
    label_names: tuple[str, ...]  # class names in label-index order; () for regression
    metrics: tuple[str, ...]  # first one is the task's main metric
    dev_split: str  # hub split name of the dev set
    demo: str | None  # name of the shipped demo set of the same kind, if any

    @property
    def is_regression(self) -> bool:
        return not self.label_names

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.label_names)

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def main_metric(self) -> str:
        return self.metrics[0]


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        TaskSpec("cola", "CoLA", "cola", ("sentence",), ("unacceptable", "acceptable"), ("mcc", "accuracy"), "validation", "single"),
        TaskSpec("sst2", "SST-2", "sst2", ("sentence",), ("negative", "positive"), ("accuracy",), "validation", "single"),
        TaskSpec("mrpc", "MRPC", "mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("f1", "accuracy"), "validation", "pair"),
        TaskSpec("qqp", "QQP", "qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("f1", "accuracy"), "validation", "pair"),
        TaskSpec("stsb", "STS-B", "stsb", ("sentence1", "sentence2"), (), ("pearson", "spearman"), "validation", "regression"),
        TaskSpec("mnli", "MNLI", "mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("accuracy",), "validation_matched", None),
        TaskSpec("qnli", "QNLI", "qnli", ("question", "sentence"), ("entailment", "not_entailment"), ("accuracy",), "validation", "pair"),
        TaskSpec("rte", "RTE", "rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), ("accuracy",), "validation", "pair"),
        TaskSpec("wnli", "WNLI", "wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("accuracy",), "validation", "pair"),
    ]
}

_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "mnli_matched": "mnli"}


def get_task(name: str) -> TaskSpec:
    """Look a task up by name, case-insensitively, with a suggestion when it is misspelt."""
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key in TASKS:
        return TASKS[key]
    close = difflib.get_close_matches(key, list(TASKS), n=1)
    hint = f"did you mean {close[0]}?" if close else f"known tasks: {', '.join(TASKS)}"
    raise InputError(f"unknown task {name!r}", hint=hint)
