"""`train.args`, checked by building CrossEncoderTrainingArguments from them, as the train stage does, and turning
the library's error into one line naming `train.args.KEY`. The library decides which keys exist, their choices and
the rules between intervals (save vs eval steps, load_best_model_at_end, fp16 with bf16...). Kept here are only
the rules it does not enforce and that would fail or mislead mid-run: names it does not know (with the close one),
values of the wrong type, signs and ranges, and a run that would do no steps. `tests/test_checks.py` holds each
kept rule against the library: should the library start to refuse one, the copy goes."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import tempfile
from typing import Any

from reranker.core.errors import PipelineError
from reranker.training.launch import check_precision

# Declared scalar types whose values can be checked from YAML alone
SCALAR_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,), "None": (type(None),)}
# Arguments the train stage sets itself
STAGE_SET = {"output_dir": "the train stage writes checkpoints to data/checkpoints",
             "report_to": "the train stage logs to DVCLive itself",
             "local_rank": "train.num_processes launches the processes"}
SEED_LIMIT = 2**32  # numpy seeds lie in [0, 2**32)
POSITIVE = ("learning_rate", "per_device_train_batch_size", "per_device_eval_batch_size",
            "gradient_accumulation_steps", "eval_accumulation_steps", "adam_epsilon", "torch_empty_cache_steps")
NON_NEGATIVE = ("num_train_epochs", "weight_decay", "max_grad_norm", "dataloader_num_workers", "save_total_limit",
                "eval_delay", "label_smoothing_factor")
SHARES = ("adam_beta1", "adam_beta2", "label_smoothing_factor")  # in [0, 1)


@functools.lru_cache(maxsize=1)
def training_fields() -> dict[str, str]:
    """Field name -> declared type of CrossEncoderTrainingArguments, e.g. {"learning_rate": "float", ...}."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    return {field.name: str(field.type).replace("<class '", "").replace("'>", "")
            for field in dataclasses.fields(CrossEncoderTrainingArguments)}


def check_training_args(args: dict[str, Any]) -> None:
    """Each key is a field of the dataclass and of its declared type, the values the library would take but cannot
    train with are refused, then the dataclass itself is built; its error is one line naming the key.

    Example: ``check_training_args({"learning_rate": 2e-5, "eval_strategy": "steps", "eval_steps": 40})``.
    """
    fields = training_fields()
    for key, value in args.items():
        if key in STAGE_SET:
            raise PipelineError(f"'train.args.{key}' is set by the train stage ({STAGE_SET[key]}); remove it.")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise PipelineError(f"'train.args.{key}' is not a CrossEncoderTrainingArguments field.{hint}")
        accepted = scalar_types(fields[key])
        wrong_bool = isinstance(value, bool) and bool not in accepted
        if accepted and (not isinstance(value, accepted) or wrong_bool):
            raise PipelineError(f"'train.args.{key}' should be {fields[key]}, got {value!r}; fix its value.")
    check_values(args)
    built = build_training_arguments(args)
    check_precision(args)
    if built.max_steps <= 0 and built.num_train_epochs == 0:
        raise PipelineError("train.args.num_train_epochs is 0 and max_steps is not set, so training would do no "
                            "steps; give a positive num_train_epochs or max_steps")


def scalar_types(declared: str) -> tuple[type, ...]:
    """The Python types a declared field type accepts when it is a scalar or a union of scalars (e.g.
    "float | None"); () when it is anything else (a dict, a list, an enum...), left to the dataclass."""
    parts = [part.strip() for part in declared.split("|")]
    if not all(part in SCALAR_TYPES for part in parts):
        return ()
    return tuple(t for part in parts for t in SCALAR_TYPES[part])


def check_values(args: dict[str, Any]) -> None:
    """The rules CrossEncoderTrainingArguments does not enforce: it takes these values and the run then fails or
    silently does something else."""
    for key, value in args.items():
        number = isinstance(value, (int, float))
        if isinstance(value, float) and not math.isfinite(value):
            raise PipelineError(f"train.args.{key} is {value}; give a finite number")
        if key in POSITIVE and number and value <= 0:
            raise PipelineError(f"train.args.{key} is {value} but must be above 0; give a positive value")
        if key in NON_NEGATIVE and number and value < 0:
            raise PipelineError(f"train.args.{key} is {value} but cannot be negative; give 0 or more")
        if key in SHARES and number and not 0 <= value < 1:
            raise PipelineError(f"train.args.{key} is {value} but must lie in [0, 1); give a value such as 0.9")
        if key in ("seed", "data_seed") and isinstance(value, int) and not 0 <= value < SEED_LIMIT:
            raise PipelineError(f"train.args.{key} is {value} but seeds lie in [0, 2**32); give a non-negative seed "
                                "such as 42")
    max_steps = args.get("max_steps", -1)
    if isinstance(max_steps, int) and (max_steps == 0 or max_steps < -1):
        raise PipelineError(f"train.args.max_steps is {max_steps}, which the trainer ignores (the epochs decide); "
                            "give a positive number of steps, or -1 to train for num_train_epochs")
    warmup, ratio = args.get("warmup_steps", 0), args.get("warmup_ratio")
    if isinstance(warmup, float) and warmup > 1 and warmup != int(warmup):
        raise PipelineError(f"train.args.warmup_steps is {warmup}: below 1 it is a share of the steps, from 1 on a "
                            "whole number of steps; give a share such as 0.1 or a whole number")
    if isinstance(ratio, (int, float)) and not 0 <= ratio <= 1:
        raise PipelineError(f"train.args.warmup_ratio is {ratio} but must lie in [0, 1]; give a share such as 0.1 "
                            "(or use warmup_steps)")
    if isinstance(ratio, (int, float)) and warmup:
        raise PipelineError(f"train.args.warmup_ratio is set together with warmup_steps {warmup}, which wins; set "
                            "only warmup_steps")
    if args.get("save_strategy") == "best":
        if args.get("eval_strategy", "no") == "no":
            raise PipelineError("train.args.save_strategy is 'best' but eval_strategy is 'no', so nothing is ever "
                                "scored; set eval_strategy to steps or epoch")
        if not args.get("metric_for_best_model") and not args.get("load_best_model_at_end"):
            raise PipelineError("train.args.save_strategy is 'best' but metric_for_best_model is not set; name the "
                                "metric to compare")


def build_training_arguments(args: dict[str, Any]):
    """CrossEncoderTrainingArguments(**args) in a throw-away folder, on the device the train stage would use."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    with tempfile.TemporaryDirectory() as folder:
        try:
            return CrossEncoderTrainingArguments(output_dir=folder, report_to="none", **{
                "use_cpu": not torch.cuda.is_available(), **args})
        except (ValueError, TypeError, NotImplementedError, KeyError, OSError) as error:
            raise translate(error, args) from None


def translate(error: Exception, args: dict[str, Any]) -> PipelineError:
    """CrossEncoderTrainingArguments' error as one line naming the `train.args` key it is about."""
    message = " ".join(str(error).split()) or type(error).__name__
    fields = training_fields()
    named = [key for key in sorted(fields, key=len, reverse=True) if re.search(rf"(?<![\w]){key}(?![\w])", message)]
    key = next((k for k in named if k in args), None) or next(
        (k for k, v in args.items() if isinstance(v, str) and re.search(rf"(?<![\w]){re.escape(v)}(?![\w])", message)),
        None) or (named[0] if named else None)
    where = f"train.args.{key}" if key else "train.args"
    if len(message) > 300:
        message = f"{message[:297]}..."
    return PipelineError(f"{where} is rejected by CrossEncoderTrainingArguments ({message}); fix its value")
