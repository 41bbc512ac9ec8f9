"""The training run against its data, known only once the data is tokenized: the steps stage refuses, before
training, a run of no steps, a batch larger than the data, warmup, evaluation, saving or logging that would never
happen, and CrossEntropyLoss labels that are not its class ids. `args` holds the RUN_LENGTH_FIELDS of the built
CrossEncoderTrainingArguments, as the check stage writes them (the library resolves their defaults; the steps stage
need not import it)."""

from __future__ import annotations

import math

import numpy as np

from reranker.core.errors import PipelineError

RUN_LENGTH_FIELDS = ("per_device_train_batch_size", "dataloader_drop_last", "gradient_accumulation_steps", "max_steps",
                     "num_train_epochs", "warmup_steps", "eval_strategy", "eval_steps", "save_strategy", "save_steps",
                     "logging_strategy", "logging_steps", "load_best_model_at_end")


def run_steps(args, train_rows: int, processes: int = 1) -> tuple[int, int]:
    """(optimizer steps of the whole run, steps per epoch) on `train_rows` rows, as the trainer counts them."""
    per_process = math.ceil(train_rows / processes)
    batch = args.per_device_train_batch_size
    batches = per_process // batch if args.dataloader_drop_last else math.ceil(per_process / batch)
    accumulation = args.gradient_accumulation_steps
    per_epoch = batches // accumulation + int(batches % accumulation > 0) if batches else 0
    if args.max_steps > 0:
        return (args.max_steps if per_epoch else 0), per_epoch
    return math.ceil(args.num_train_epochs * per_epoch), per_epoch


def check_training_steps(args, train_rows: int, processes: int = 1, path="params.yaml") -> None:
    """Example: ``check_training_steps(SimpleNamespace(**fields), pq.read_metadata(file).num_rows)``."""
    batch = args.per_device_train_batch_size
    if batch * processes > train_rows:
        raise PipelineError(f"{path}: train.args.per_device_train_batch_size {batch} × {processes} process(es) is "
                            f"more than the {train_rows} training rows, so no batch is ever full; lower it")
    total, per_epoch = run_steps(args, train_rows, processes)
    if total < 1:
        raise PipelineError(f"{path}: train.args would train for no steps on {train_rows} rows (num_train_epochs "
                            f"{args.num_train_epochs}, max_steps {args.max_steps}, {per_epoch} steps per epoch); "
                            "raise num_train_epochs or max_steps")
    where = f"the run's {total} steps ({train_rows} rows, {per_epoch} steps per epoch)"
    warmup = args.warmup_steps or 0
    if warmup >= 1 and warmup >= total:
        raise PipelineError(f"{path}: train.args.warmup_steps {warmup} is beyond {where}: the learning rate would "
                            "never leave warmup; lower it, or give a share such as 0.1")
    for key, strategy, consequence in (
            ("eval_steps", args.eval_strategy, "no evaluation would run"),
            ("save_steps", args.save_strategy, "no checkpoint would be saved"),
            ("logging_steps", args.logging_strategy, "no training loss would be logged")):
        value = getattr(args, key) or (args.logging_steps if key == "eval_steps" else None)
        if strategy != "steps" or not value or value < 1 or value <= total:
            continue
        if key == "save_steps" and not args.load_best_model_at_end:
            continue  # checkpoints only serve resuming; the final model is saved anyway
        raise PipelineError(f"{path}: train.args.{key} {value} is beyond {where}: {consequence}; lower it to at "
                            f"most {total}")


def check_class_ids(labels: np.ndarray, num_labels: int) -> None:
    """CrossEntropyLoss reads each label as a class id: a whole number in [0, num_labels).

    Example: ``check_class_ids(pq.read_table(file, columns=["label"])["label"].to_numpy(), 3)``.
    """
    if labels.ndim != 1 or (labels != np.round(labels)).any() or labels.min() < 0 or labels.max() >= num_labels:
        raise PipelineError(f"CrossEntropyLoss needs class ids 0..{num_labels - 1} as labels, but the labels range "
                            f"over {labels.min():g}..{labels.max():g}; use integer labels below train.num_labels, "
                            "or a loss that reads scores (BinaryCrossEntropyLoss, MSELoss)")
