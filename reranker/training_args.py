"""The checks of `train.args` against CrossEncoderTrainingArguments, in three tiers:

1. When params load, in every stage and without importing sentence-transformers (and torch): the field names, their
   declared types, their allowed choices and the value rules that `TrainingArguments.__post_init__` and the trainer
   apply (`check_training_args`). The fields' names, types, defaults and choices are read once per installed version
   of sentence-transformers and transformers, and cached in the user's cache folder.
2. When params load in a stage that has already imported torch (mine, train, evaluate), the dataclass itself:
   `CrossEncoderTrainingArguments(output_dir=tmp, **train.args)` as the train stage builds it, its ValueError
   translated to one line naming `train.args.KEY` (`check_training_args_fully`); `python -m reranker.check` runs
   it on demand. The train stage builds its arguments through the same translation (`training_arguments`).
3. In the train stage, before any work, the steps the run would take on its data (`check_training_steps`):
   a run of no steps, a batch larger than the data, warmup, evaluation, saving or logging beyond the last step."""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import json
import math
import os
import re
import sys
import tempfile
import typing
from importlib.metadata import version
from pathlib import Path
from typing import Any

from reranker.errors import PipelineError

# Declared scalar types whose values can be checked from YAML alone
SCALAR_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,), "None": (type(None),)}
# Arguments the train stage sets itself
STAGE_SET = {"output_dir": "the train stage writes checkpoints to data/checkpoints",
             "report_to": "the train stage logs to DVCLive itself",
             "local_rank": "train.num_processes launches the processes"}
SEED_LIMIT = 2**32  # numpy seeds lie in [0, 2**32)


@functools.lru_cache(maxsize=1)
def versions_key() -> str:
    return f"sentence-transformers-{version('sentence-transformers')}-transformers-{version('transformers')}"


def cache_file(name: str) -> Path:
    key = versions_key()
    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rerank-pipeline"
    return folder / f"{key}.json" if not name else folder / key / f"{name}.json"


def cached_per_version(name: str, compute) -> Any:
    """`compute()`, read from the cache of this version of sentence-transformers and transformers when there."""
    cache = cache_file(name)
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    value = compute()
    try:  # a read-only home only costs the import next time
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f".{cache.name}.{os.getpid()}")
        partial.write_text(json.dumps(value))
        os.replace(partial, cache)
    except OSError:
        pass
    return value


def training_arguments_fields() -> dict[str, str]:
    """Field name -> declared type of CrossEncoderTrainingArguments, e.g. {"learning_rate": "float", ...}."""
    def compute():
        from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

        return {field.name: str(field.type).replace("<class '", "").replace("'>", "")
                for field in dataclasses.fields(CrossEncoderTrainingArguments)}
    return cached_per_version("", compute)


def training_arguments_spec() -> dict[str, dict]:
    """{"defaults": field -> default (JSON values; an enum's value), "choices": field -> allowed strings}."""
    def compute():
        from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

        defaults, choices = {}, {}
        for field in dataclasses.fields(CrossEncoderTrainingArguments):
            default = field.default
            if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            kinds = [t for t in (type(default), *typing.get_args(field.type)) if isinstance(t, type)]
            if members := next((list(t) for t in kinds if issubclass(t, enum.Enum)), None):
                choices[field.name] = [member.value for member in members]
            if isinstance(default, enum.Enum):
                default = default.value
            try:
                defaults[field.name] = json.loads(json.dumps(default))
            except (TypeError, ValueError):
                pass
        return {"defaults": defaults, "choices": choices}
    return cached_per_version("training-arguments-values", compute)


def check_training_args(args: dict[str, Any], path) -> None:
    """The trainer's own dataclass decides which keys exist, their types and choices; then their values."""
    fields = training_arguments_fields()
    for key, value in args.items():
        if key in STAGE_SET:
            raise PipelineError(f"{path}: 'train.args.{key}' is set by the train stage ({STAGE_SET[key]}); "
                                "remove it.")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise PipelineError(f"{path}: 'train.args.{key}' is not a CrossEncoderTrainingArguments field.{hint}")
        declared = fields[key]
        accepted = scalar_types(declared)
        wrong_bool = isinstance(value, bool) and bool not in accepted
        if accepted and (not isinstance(value, accepted) or wrong_bool):
            raise PipelineError(f"{path}: 'train.args.{key}' should be {declared}, got {value!r}; fix its value.")
    check_training_values(args, path)


def scalar_types(declared: str) -> tuple[type, ...]:
    """The Python types a declared field type accepts when it is a scalar or a union of scalars (e.g.
    "float | None"); () when it is anything else (a dict, a list, an enum...) and is left to the dataclass."""
    parts = [part.strip() for part in declared.split("|")]
    if not all(part in SCALAR_TYPES for part in parts):
        return ()
    return tuple(t for part in parts for t in SCALAR_TYPES[part])


def check_training_values(args: dict[str, Any], path) -> None:
    """The value rules of CrossEncoderTrainingArguments and the trainer, checked from params alone: choices, signs
    and ranges, intervals that contradict each other, and a run that would do no steps."""
    spec = training_arguments_spec()
    a = {**spec["defaults"], **args}

    def fail(key, problem, fix):
        raise PipelineError(f"{path}: train.args.{key} {problem}; {fix}")

    for key, value in args.items():
        if isinstance(value, float) and not math.isfinite(value):
            fail(key, f"is {value}", "give a finite number")
        if key in spec["choices"] and not isinstance(value, str):
            fail(key, f"is {value!r}, not one of {', '.join(spec['choices'][key])}", "use one of them")
        if key in spec["choices"] and value not in spec["choices"][key]:
            close = difflib.get_close_matches(value, spec["choices"][key], n=1)
            fail(key, f"is '{value}', not one of {', '.join(spec['choices'][key])}",
                 f"did you mean '{close[0]}'?" if close else "use one of them")
    positive = ["learning_rate", "per_device_train_batch_size", "per_device_eval_batch_size",
                "gradient_accumulation_steps", "eval_accumulation_steps", "adam_epsilon", "torch_empty_cache_steps"]
    for key in positive:
        if isinstance(a.get(key), (int, float)) and a[key] <= 0:
            fail(key, f"is {a[key]} but must be above 0", "give a positive value")
    for key in ("num_train_epochs", "weight_decay", "max_grad_norm", "warmup_steps", "dataloader_num_workers",
                "save_total_limit", "eval_delay", "label_smoothing_factor"):
        if isinstance(a.get(key), (int, float)) and a[key] < 0:
            fail(key, f"is {a[key]} but cannot be negative", "give 0 or more")
    for key in ("adam_beta1", "adam_beta2", "label_smoothing_factor"):
        if isinstance(a.get(key), (int, float)) and not 0 <= a[key] < 1:
            fail(key, f"is {a[key]} but must lie in [0, 1)", "give a value such as 0.9")
    for key in ("seed", "data_seed"):
        if isinstance(a.get(key), int) and not 0 <= a[key] < SEED_LIMIT:
            fail(key, f"is {a[key]} but seeds lie in [0, 2**32)", "give a non-negative seed such as 42")

    # How long the run is: max_steps > 0 overrides the epochs, and anything else leaves them in charge
    max_steps, epochs = a.get("max_steps", -1), a.get("num_train_epochs", 3.0)
    if isinstance(max_steps, int) and (max_steps == 0 or max_steps < -1):
        fail("max_steps", f"is {max_steps}, which the trainer ignores (the epochs decide)",
             "give a positive number of steps, or -1 to train for num_train_epochs")
    if isinstance(max_steps, int) and max_steps < 0 and isinstance(epochs, (int, float)) and epochs == 0:
        fail("num_train_epochs", "is 0 and max_steps is not set, so training would do no steps",
             "give a positive num_train_epochs or max_steps")
    warmup, ratio = a.get("warmup_steps", 0), a.get("warmup_ratio")
    if isinstance(warmup, float) and warmup > 1 and warmup != int(warmup):
        fail("warmup_steps", f"is {warmup}: below 1 it is a share of the steps, from 1 on a whole number of steps",
             "give a share such as 0.1 or a whole number")
    if isinstance(ratio, (int, float)) and not 0 <= ratio <= 1:
        fail("warmup_ratio", f"is {ratio} but must lie in [0, 1]", "give a share such as 0.1 (or use warmup_steps)")
    if isinstance(ratio, (int, float)) and "warmup_steps" in args and warmup:
        fail("warmup_ratio", f"is set together with warmup_steps {warmup}, which wins", "set only warmup_steps")

    # Intervals, as TrainingArguments.__post_init__ checks them, plus those that contradict each other
    logging_strategy, eval_strategy = a.get("logging_strategy", "steps"), a.get("eval_strategy", "no")
    save_strategy = a.get("save_strategy", "steps")
    steps = {}
    for key, strategy in (("logging_steps", logging_strategy), ("eval_steps", eval_strategy),
                          ("save_steps", save_strategy)):
        value = a.get(key)
        if strategy != "steps" or not isinstance(value, (int, float)):
            continue
        if value < 0 or (value == 0 and key != "eval_steps"):
            fail(key, f"is {value} with {key.replace('_steps', '_strategy')} 'steps'",
                 "give a positive number of steps (or a share of the run below 1), or another strategy")
        if value > 1 and value != int(value):
            fail(key, f"is {value}: above 1 it must be a whole number of steps", "give a whole number")
        steps[key] = value
    if eval_strategy == "steps" and not steps.get("eval_steps"):
        fallback = a.get("logging_steps")
        if not (isinstance(fallback, (int, float)) and fallback > 0):
            fail("eval_steps", "is not set and logging_steps is 0, with eval_strategy 'steps'",
                 "give eval_steps a positive value")
        steps["eval_steps"] = fallback  # the trainer's fallback
    if a.get("load_best_model_at_end"):
        if eval_strategy == "no":
            fail("load_best_model_at_end", "is true but eval_strategy is 'no', so no checkpoint is ever scored",
                 "set eval_strategy (and save_strategy) to steps or epoch, or load_best_model_at_end: false")
        if save_strategy != "best" and save_strategy != eval_strategy:
            fail("save_strategy", f"is '{save_strategy}' but load_best_model_at_end needs it to match eval_strategy "
                 f"'{eval_strategy}' (or be 'best')", f"set save_strategy: {eval_strategy}")
        if save_strategy == "steps" and eval_strategy == "steps" and "save_steps" in steps:
            save, evaluate = steps["save_steps"], steps["eval_steps"]  # as TrainingArguments compares them
            if save % evaluate and (save < 1) != (evaluate < 1):
                fail("save_steps", f"is {save} and eval_steps {evaluate}: with load_best_model_at_end a share and a "
                     "number of steps cannot be checked to be multiples", "give both as numbers of steps")
            if save % evaluate and (save >= 1 or (save * 1_000_000) % (evaluate * 1_000_000)):
                fail("save_steps", f"is {save}, not a multiple of eval_steps {evaluate}, which "
                     "load_best_model_at_end needs (the best checkpoint must have been saved)",
                     f"set save_steps to a multiple of {evaluate}")
    if save_strategy == "best":
        if eval_strategy == "no":
            fail("save_strategy", "is 'best' but eval_strategy is 'no', so nothing is ever scored",
                 "set eval_strategy to steps or epoch")
        if not a.get("metric_for_best_model") and not a.get("load_best_model_at_end"):
            fail("save_strategy", "is 'best' but metric_for_best_model is not set", "name the metric to compare")
    if a.get("lr_scheduler_type") in ("reduce_lr_on_plateau", "greedy") and eval_strategy == "no":
        fail("lr_scheduler_type", f"'{a['lr_scheduler_type']}' follows the evaluation, but eval_strategy is 'no'",
             "set eval_strategy to steps or epoch, or use another scheduler")

    # Combinations the dataclass rejects
    if a.get("fp16") and a.get("bf16"):
        fail("bf16", "and fp16 are both true", "choose one of them")
    if a.get("fp16_full_eval") and a.get("bf16_full_eval"):
        fail("bf16_full_eval", "and fp16_full_eval are both true", "choose one of them")
    if a.get("dataloader_prefetch_factor") is not None and not a.get("dataloader_num_workers"):
        fail("dataloader_prefetch_factor", "is set but dataloader_num_workers is 0 (no worker to prefetch)",
             "remove it or set dataloader_num_workers above 0")


def run_steps(args: dict[str, Any], train_rows: int, processes: int = 1) -> tuple[int, int]:
    """(optimizer steps of the whole run, steps per epoch) on `train_rows` rows, as the trainer counts them."""
    spec = training_arguments_spec()["defaults"]
    a = {**spec, **args}
    per_process = math.ceil(train_rows / processes)
    batch = a["per_device_train_batch_size"]
    batches = per_process // batch if a.get("dataloader_drop_last") else math.ceil(per_process / batch)
    accumulation = a["gradient_accumulation_steps"]
    per_epoch = batches // accumulation + int(batches % accumulation > 0) if batches else 0
    if a.get("max_steps", -1) > 0:
        return (a["max_steps"] if per_epoch else 0), per_epoch
    return math.ceil(a["num_train_epochs"] * per_epoch), per_epoch


def check_training_steps(args: dict[str, Any], train_rows: int, processes: int = 1, path="params.yaml") -> None:
    """With the size of the training data known (the train stage, before work): a run of no steps, a batch larger
    than the data, and warmup, evaluation, saving or logging that would never happen are refused."""
    spec = training_arguments_spec()["defaults"]
    a = {**spec, **args}
    batch = a["per_device_train_batch_size"]
    if batch * processes > train_rows:
        raise PipelineError(f"{path}: train.args.per_device_train_batch_size {batch} × {processes} process(es) is "
                            f"more than the {train_rows} training rows, so no batch is ever full; lower it")
    total, per_epoch = run_steps(args, train_rows, processes)
    if total < 1:
        raise PipelineError(f"{path}: train.args would train for no steps on {train_rows} rows (num_train_epochs "
                            f"{a['num_train_epochs']}, max_steps {a['max_steps']}, {per_epoch} steps per epoch); "
                            "raise num_train_epochs or max_steps")
    where = f"the run's {total} steps ({train_rows} rows, {per_epoch} steps per epoch)"
    warmup = a.get("warmup_steps") or 0
    if warmup >= 1 and warmup >= total:
        raise PipelineError(f"{path}: train.args.warmup_steps {warmup} is beyond {where}: the learning rate would "
                            "never leave warmup; lower it, or give a share such as 0.1")
    for key, strategy, consequence in (
            ("eval_steps", a.get("eval_strategy"), "no evaluation would run"),
            ("save_steps", a.get("save_strategy"), "no checkpoint would be saved"),
            ("logging_steps", a.get("logging_strategy"), "no training loss would be logged")):
        value = a.get(key) or (a.get("logging_steps") if key == "eval_steps" else None)
        if strategy != "steps" or not value or value < 1 or value <= total:
            continue
        if key == "save_steps" and not a.get("load_best_model_at_end"):
            continue  # checkpoints only serve resuming; the final model is saved anyway
        raise PipelineError(f"{path}: train.args.{key} {value} is beyond {where}: {consequence}; lower it to at "
                            f"most {total}")


def translate(error: Exception, args: dict[str, Any], fields, path) -> PipelineError:
    """CrossEncoderTrainingArguments' error as one line naming the `train.args` key it is about."""
    message = " ".join(str(error).split()) or type(error).__name__
    named = [key for key in sorted(fields, key=len, reverse=True) if re.search(rf"(?<![\w]){key}(?![\w])", message)]
    key = next((k for k in named if k in args), None) or next(
        (k for k, v in args.items() if isinstance(v, str) and re.search(rf"(?<![\w]){re.escape(v)}(?![\w])", message)),
        None) or (named[0] if named else None)
    where = f"train.args.{key}" if key else "train.args"
    if len(message) > 300:
        message = f"{message[:297]}..."
    return PipelineError(f"{path}: {where} is rejected by CrossEncoderTrainingArguments ({message}); fix its value")


def training_arguments(args: dict[str, Any], output_dir: str, path="params.yaml", **stage_set):
    """CrossEncoderTrainingArguments(output_dir=..., **stage_set, **args), its errors one line naming the key.

    Example: ``training_arguments(params.train.args, "data/checkpoints", report_to="none", use_cpu=True)``.
    """
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    try:
        return CrossEncoderTrainingArguments(output_dir=output_dir, **{**stage_set, **args})
    except (ValueError, TypeError, NotImplementedError, KeyError, OSError) as error:
        raise translate(error, args, training_arguments_fields(), path) from None


def check_training_args_fully(args: dict[str, Any], path, force: bool = False) -> None:
    """Build the arguments as the train stage does, in a throw-away folder, when this process has already paid
    for importing torch (or with `force`). Not in a torchrun child: its parent checked them, and building them
    sets up the process group."""
    if not force and ("torch" not in sys.modules or "LOCAL_RANK" in os.environ):
        return
    import torch

    with tempfile.TemporaryDirectory() as folder:
        training_arguments(args, folder, path, report_to="none",
                           use_cpu=args.get("use_cpu", not torch.cuda.is_available()))
