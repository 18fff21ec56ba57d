"""Glue between our loaded models and transformers' ``Trainer``: data set, collator, arguments, callbacks.

Only this module builds ``TrainingArguments``/``Trainer`` objects, so the job stays free of
transformers internals. Training is data-parallel by itself under ``torchrun``/``accelerate launch``
(Trainer reads ``WORLD_SIZE``/``LOCAL_RANK``); ``batch_size`` here is the TOTAL batch (what a paper
reports), split over processes and gradient-accumulation steps.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.errors import InputError
from bertsecrets_cli.model.hooks import Note, ProgressFactory, no_note, silent

PRECISIONS = ("fp32", "fp16", "bf16")
CHECKPOINT_PREFIX = "checkpoint-"


@dataclass
class TrainConfig:
    """Everything that decides how Trainer runs (hyperparameters already resolved from a preset)."""

    output_dir: Path  # where Trainer keeps its checkpoints (the run's .partial folder)
    batch_size: int  # total over processes and accumulation steps
    epochs: float
    lr: float
    warmup: float  # fraction of the optimisation steps
    weight_decay: float
    seed: int
    max_steps: int | None = None
    grad_accum: int = 1
    precision: str = "fp32"
    save_steps: int = 500
    logging_steps: int = 10
    device: str = "auto"
    adam_epsilon: float = 1e-8
    quiet: bool = False


def world_size() -> int:
    """Processes of a torchrun/accelerate launch (1 when run plainly)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))


def rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def per_device_batch(batch_size: int, grad_accum: int, world: int | None = None) -> int:
    """Per-process batch so that processes x accumulation x per-process = the total batch."""
    world = world or world_size()
    if batch_size < 1 or grad_accum < 1:
        raise InputError(f"--batch-size {batch_size} and --grad-accum {grad_accum} must be at least 1")
    share = world * grad_accum
    if batch_size % share:
        raise InputError(f"--batch-size {batch_size} is the total batch: it must be divisible by {world} process(es) x {grad_accum} accumulation step(s)")
    return batch_size // share


class EncodedDataset:
    """A map-style torch data set of tokenised examples (features are plain lists; the collator pads)."""

    def __init__(self, features: list[dict[str, Any]]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.features[i]


def encode_for_training(tokenizer: Any, model_type: str | bool, examples: list[Any], max_length: int, *, regression: bool, chunk: int = 2048) -> EncodedDataset:
    """Tokenise in batches (fast); the same truncation and segment ids as ``model.tokenize.encode_examples``,
    so a model sees identical inputs in training and in every later evaluation or extraction."""
    keep_types = model_type is True or model_type in ("bert", "electra")  # LoadedModel.token_types, or a type name
    feats: list[dict[str, Any]] = []
    for s in range(0, len(examples), chunk):
        part = examples[s : s + chunk]
        a = [e.text_a for e in part]
        b = [e.text_b for e in part] if part and part[0].text_b is not None else None
        enc = tokenizer(a, b, truncation=True, max_length=max_length)
        for j, e in enumerate(part):
            f = {"input_ids": enc["input_ids"][j], "labels": float(e.label) if regression else int(e.label)}
            if keep_types:
                f["token_type_ids"] = enc["token_type_ids"][j] if "token_type_ids" in enc else [0] * len(enc["input_ids"][j])
            feats.append(f)
    return EncodedDataset(feats)


class Collator:
    """Pad a batch to its longest member (dynamic padding), labels as long or float."""

    def __init__(self, pad_id: int, regression: bool) -> None:
        self.pad_id, self.regression = pad_id, regression

    def __call__(self, feats: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        T = max(len(f["input_ids"]) for f in feats)
        ids = np.full((len(feats), T), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(feats), T), dtype=np.int64)
        types = np.zeros((len(feats), T), dtype=np.int64)
        for i, f in enumerate(feats):
            n = len(f["input_ids"])
            ids[i, :n] = f["input_ids"]
            mask[i, :n] = 1
            if "token_type_ids" in f:
                types[i, :n] = f["token_type_ids"]
        batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
                 "labels": torch.tensor([f["labels"] for f in feats], dtype=torch.float32 if self.regression else torch.long)}
        if "token_type_ids" in feats[0]:
            batch["token_type_ids"] = torch.from_numpy(types)
        return batch


def check_device(device: str, precision: str) -> bool:
    """Validate --device and --precision before any work; -> whether training runs on the CPU."""
    from bertsecrets_cli.model.device import resolve_device

    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    use_cpu = resolve_device(device).type == "cpu"  # refuses absent CUDA in one line
    if use_cpu and precision == "fp16":
        raise InputError("--precision fp16 needs a CUDA device; use fp32 or bf16 on CPU")
    return use_cpu


def training_arguments(cfg: TrainConfig) -> Any:
    """TrainingArguments for our runs: no hub, no reporting, our own progress, checkpoints for --resume."""
    import torch
    from transformers import TrainingArguments

    from bertsecrets_cli.model.device import resolve_device

    use_cpu = check_device(cfg.device, cfg.precision)
    dev = resolve_device(cfg.device)
    if dev.type == "cuda" and dev.index is not None and world_size() == 1:
        torch.cuda.set_device(dev.index)  # Trainer uses the current CUDA device
    return TrainingArguments(
        output_dir=str(cfg.output_dir),
        per_device_train_batch_size=per_device_batch(cfg.batch_size, cfg.grad_accum),
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps else -1,
        learning_rate=cfg.lr,
        warmup_steps=float(cfg.warmup) if 0 < cfg.warmup < 1 else int(cfg.warmup),
        weight_decay=cfg.weight_decay,
        adam_epsilon=cfg.adam_epsilon,
        lr_scheduler_type="linear",
        seed=cfg.seed,
        fp16=cfg.precision == "fp16",
        bf16=cfg.precision == "bf16",
        use_cpu=use_cpu,
        eval_strategy="no",  # evaluation is ours (jobs.evaluate), after training
        save_strategy="steps" if cfg.save_steps > 0 else "no",
        save_steps=max(1, cfg.save_steps),
        save_total_limit=1,  # the newest checkpoint is all --resume needs
        logging_strategy="steps",
        logging_steps=max(1, cfg.logging_steps),
        disable_tqdm=True,  # replaced by ProgressToStderr (heartbeat lines in batch logs)
        report_to="none",
        dataloader_num_workers=0,
        remove_unused_columns=False,
        log_level="error",
        log_level_replica="error",
    )


class _Callbacks:
    """Built lazily: TrainerCallback subclasses need transformers imported."""

    @staticmethod
    def progress(quiet: bool, progress: ProgressFactory, note: Note) -> Any:
        from transformers import TrainerCallback

        class ProgressToStderr(TrainerCallback):
            """Optimisation steps as our progress bar / heartbeat, and loss lines, on stderr (rank 0 only)."""

            def __init__(self) -> None:
                self._ctx: Any = None
                self._advance: Any = None

            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if state.is_world_process_zero and not quiet:
                    self._ctx = progress(state.max_steps, "fine-tune steps")
                    self._advance = self._ctx.__enter__()
                    if state.global_step:
                        self._advance(state.global_step)

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if self._advance is not None:
                    self._advance(1)

            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
                if not state.is_world_process_zero or quiet or not logs or "loss" not in logs:
                    return
                note(f"step {state.global_step}/{state.max_steps} epoch {state.epoch or 0:.2f} loss {logs['loss']:.4f} lr {logs.get('learning_rate', float('nan')):.2e}")

            def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if self._ctx is not None:
                    self._ctx.__exit__(None, None, None)
                    self._ctx = self._advance = None

        return ProgressToStderr()

    @staticmethod
    def stop(flag: Any) -> Any:
        from transformers import TrainerCallback

        class StopOnSignal(TrainerCallback):
            """SIGTERM/SIGINT: save a checkpoint after the current step and end training (then --resume)."""

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
                if _any_process(flag.requested, args.device) and not flag.requested:
                    flag.signal = "a signal to another process"  # all processes stop at the same step
                if flag.requested and state.global_step < state.max_steps:
                    control.should_save = args.save_strategy != "no"
                    control.should_training_stop = True
                return control

        return StopOnSignal()


def _any_process(value: bool, device: Any) -> bool:
    """``value`` OR-ed over the processes of a distributed run (one tiny all-reduce per step), so a signal
    that reaches one process stops all of them at the same step instead of leaving the others waiting."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return value
    import torch

    t = torch.tensor([1.0 if value else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


@dataclass
class TrainOutcome:
    global_step: int
    max_steps: int
    train_loss: float
    runtime_s: float
    log_history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: str | None = None
    world_size: int = 1
    per_device_batch: int = 0
    is_main: bool = True
    trainer: Any = None


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete Trainer checkpoint in ``folder`` (None when there is none)."""
    if not folder.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    found = get_last_checkpoint(str(folder))
    return Path(found) if found else None


def train(lm: Any, train_set: EncodedDataset, cfg: TrainConfig, *, stop_flag: Any, resume: bool = False,
          progress: ProgressFactory = silent, note: Note = no_note) -> TrainOutcome:
    """Fine-tune ``lm.model`` in place with Trainer; continue from the newest checkpoint when ``resume``.

    Steps go to ``progress`` and loss lines and the resume note to ``note`` (the job passes the stderr ones).
    """
    import warnings

    import transformers
    from transformers import Trainer

    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", module=r"transformers\..*")
    warnings.filterwarnings("ignore", module=r"torch\..*")
    warnings.filterwarnings("ignore", module=r"accelerate\..*")
    args = training_arguments(cfg)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    lm.model.train()
    trainer = Trainer(model=lm.model, args=args, train_dataset=train_set, data_collator=Collator(pad, lm.model.config.num_labels == 1))
    # Trainer's PrinterCallback prints logs to stdout; results own stdout, so ours go to stderr instead
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_Callbacks.progress(cfg.quiet, progress, note))
    trainer.add_callback(_Callbacks.stop(stop_flag))
    ckpt = last_checkpoint(cfg.output_dir) if resume else None
    if ckpt is not None and trainer.is_world_process_zero():
        note(f"resuming from {ckpt}")
    out = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    lm.model.eval()
    return TrainOutcome(
        global_step=int(trainer.state.global_step), max_steps=int(trainer.state.max_steps), train_loss=float(out.training_loss),
        runtime_s=float(out.metrics.get("train_runtime", float("nan"))), log_history=list(trainer.state.log_history),
        resumed_from=str(ckpt) if ckpt else None, world_size=int(args.world_size), per_device_batch=int(args.per_device_train_batch_size),
        is_main=bool(trainer.is_world_process_zero()), trainer=trainer,
    )


def save_model_folder(lm: Any, folder: Path, *, task_name: str) -> None:
    """Model weights, tokenizer and config (label names, task) in ``folder``: a plain save_pretrained folder
    that transformers and every bertsecrets subcommand load (our attention function's name is not saved
    in the config, so it also loads without bertsecrets)."""
    lm.model.config.finetuning_task = task_name
    lm.model.save_pretrained(folder, safe_serialization=True)
    lm.tokenizer.save_pretrained(folder)


def remove_checkpoints(folder: Path) -> None:
    for p in folder.glob(f"{CHECKPOINT_PREFIX}*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def has_classification_head(config: Any) -> bool:
    """Was this config saved from a sequence classifier (not a bare encoder or an MLM checkpoint)?"""
    archs = getattr(config, "architectures", None) or []
    return any(a.endswith("ForSequenceClassification") for a in archs)


def seed_everything(seed: int) -> None:
    """Python, numpy and torch seeds (transformers.set_seed): a fresh head is the same for the same seed."""
    from transformers import set_seed

    set_seed(seed)


def peek_config(spec: str | None) -> Any:
    """The model's config without its weights (None when it cannot be read: load_model then says why)."""
    from bertsecrets_cli.model.load import _locate

    try:
        _, path, _ = _locate(spec)
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(path)
    except Exception:  # noqa: BLE001 - load_model reports the problem in one line
        return None


def recorded_task(spec: str | None) -> str | None:
    """The GLUE task a fine-tuned model folder was trained for (config ``finetuning_task``), if any."""
    if not spec:
        return None
    cfg_file = Path(os.path.expanduser(spec)) / "config.json"
    try:
        import json

        task = json.loads(cfg_file.read_text()).get("finetuning_task")
    except (OSError, ValueError):
        return None
    from bertsecrets_cli.data.tasks import TASKS

    return task if isinstance(task, str) and task in TASKS else None


def folder_fingerprint(folder: Path) -> str:
    from bertsecrets_cli.model.load import _weights_fingerprint

    return _weights_fingerprint(Path(folder))
