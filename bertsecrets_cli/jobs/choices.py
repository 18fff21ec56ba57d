"""The fixed sets of values that options take, for shell completion (cli/common.complete_from): the library's own
lists, gathered here so cli/ reaches them through jobs/ only; imported only when a shell asks."""

from __future__ import annotations

from bertsecrets_cli.analysis.clustering import MEASURES
from bertsecrets_cli.analysis.definitions import DEFINITIONS
from bertsecrets_cli.analysis.wordlevel import BOUNDARIES
from bertsecrets_cli.data.tasks import TASKS as _TASKS
from bertsecrets_cli.host_memory import MEMORY_MODES as MEMORY  # extract --memory
from bertsecrets_cli.jobs.ablate import ENGINES, MODES
from bertsecrets_cli.jobs.finetune import PRESETS as _PRESETS
from bertsecrets_cli.jobs.plot import FIGURES
from bertsecrets_cli.store.schema import COMPRESSIONS, ENCODINGS, QUANTITIES as _QUANTITIES

TASKS = tuple(_TASKS)
PRESETS = tuple(_PRESETS)
QUANTITIES = tuple(_QUANTITIES)
METRICS = ("task", "loss")  # ablate --metric
MAPS = ("full", "topk:8", "topk:32", "none")  # extract --maps (any topk:K)
__all__ = ["BOUNDARIES", "COMPRESSIONS", "DEFINITIONS", "ENCODINGS", "ENGINES", "FIGURES", "MAPS", "MEASURES", "MEMORY", "METRICS", "MODES", "PRESETS", "QUANTITIES", "TASKS"]
