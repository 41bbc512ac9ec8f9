"""Step 4, train: fine-tune a cross-encoder with CrossEncoderTrainer and the loss named in params, on the
token ids of the tokenize stage, evaluating with the evaluators named in train.evaluators (and the dev loss). Checkpoints survive a killed run and
are resumed from; the final model is saved where `CrossEncoder(path)` loads it."""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import platform
import shutil
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, Value
from dvclive import Live
from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments, losses
from transformers import set_seed
from transformers.integrations import DVCLiveCallback

from stages.common import (
    PipelineError, accept_token_ids, atomic_output, entrypoint, import_object, load_model, load_params,
    track_emissions, write_json,
)
from stages.evaluate import build_evaluators

FRAMEWORKS = ["sentence-transformers", "transformers", "torch", "accelerate", "datasets", "tokenizers"]


def build_loss(model: CrossEncoder, name: str, loss_args: dict):
    """The loss class named in params (checked when params load), its arguments converted to what the
    constructor's annotations ask for: numbers to tensors (pos_weight), names to instances (activation_fn,
    weighting_scheme, lambda_weight: a class of the losses module or a dotted path)."""
    loss_class = getattr(losses, name)
    parameters = inspect.signature(loss_class).parameters
    kwargs = {}
    for key, value in loss_args.items():
        if key not in parameters or key == "model":
            raise PipelineError(f"train.loss_args.{key} is not an argument of {name}; see its documentation")
        annotation = str(parameters[key].annotation)
        if "Tensor" in annotation and isinstance(value, (int, float)):
            value = torch.tensor(value)
        elif isinstance(value, str) and "str" not in annotation and "Literal" not in annotation:
            target = getattr(losses, value, None) or import_object(value)
            value = target() if inspect.isclass(target) else target
        kwargs[key] = value
    return loss_class(model, **kwargs)


def class_ids(dataset: Dataset, num_labels: int) -> Dataset:
    """CrossEntropyLoss reads each label as a class id (int64); every other loss reads float labels."""
    labels = np.asarray(dataset["label"])
    if labels.ndim != 1 or (labels != np.round(labels)).any() or labels.min() < 0 or labels.max() >= num_labels:
        raise PipelineError(f"CrossEntropyLoss needs class ids 0..{num_labels - 1} as labels, but the labels range "
                            f"over {labels.min():g}..{labels.max():g}; use integer labels below train.num_labels, "
                            "or a loss that reads scores (BinaryCrossEntropyLoss, MSELoss)")
    return dataset.cast_column("label", Value("int64"))


def check_precision(args: dict) -> None:
    """bf16/fp16 on a device without them fails deep inside torch; say so up front instead."""
    cuda = torch.cuda.is_available()
    if args.get("bf16") and not args.get("use_cpu") and not (cuda and torch.cuda.is_bf16_supported()):
        raise PipelineError("train.args.bf16 is true but no GPU here supports bf16; set train.args.bf16=false "
                            "(or fp16=true on an older GPU)")
    if args.get("fp16") and not cuda:
        raise PipelineError("train.args.fp16 is true but there is no CUDA GPU here; set train.args.fp16=false")


def relaunch_under_torchrun(num_processes: int) -> None:
    """One param, train.num_processes, turns the stage into a DDP run: re-execute it under torchrun."""
    if num_processes > 1 and "LOCAL_RANK" not in os.environ:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={num_processes}", "-m", "stages.train", *sys.argv[1:]]
        print(f"train: launching {num_processes} processes: {' '.join(command[2:])}", flush=True)
        os.execv(sys.executable, command)


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint whose trainer state was written (a kill mid-save leaves one without)."""
    steps = sorted(folder.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]), reverse=True)
    return next((str(path) for path in steps if (path / "trainer_state.json").exists()), None)


def fingerprint(params, *paths: Path) -> str:
    """Identifies what a checkpoint was trained from, so that only a run of the same inputs resumes it."""
    digest = hashlib.sha256(json.dumps([params.train.model_dump(), params.tokenize.model_dump(),
                                        params.evaluate.model_dump()], sort_keys=True).encode())
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("tokenize_dir", "mine_dir", "checkpoints", "model_out", "log_out", "metrics", "live_dir", "emissions"):
        parser.add_argument(name, type=Path)
    a = parser.parse_args()
    params = load_params()
    p = params.train
    check_precision(p.args)
    relaunch_under_torchrun(p.num_processes)
    # The training arguments set up the (distributed) state, so they come first. Without a GPU, a torchrun
    # launch is DDP only when they are told to use the CPU, and transformers 5 takes the rank as an argument.
    launched = {"use_cpu": p.args.get("use_cpu", not torch.cuda.is_available()),
                "local_rank": int(os.environ.get("LOCAL_RANK", -1))}
    # Each construction resets the shared distributed state: the defaults (for the card) first, then the real one
    defaults = CrossEncoderTrainingArguments(output_dir=str(a.checkpoints), report_to="none", **launched).to_dict()
    args = CrossEncoderTrainingArguments(output_dir=str(a.checkpoints), report_to="none", **{**launched, **p.args})
    main_process, processes = args.process_index == 0, args.world_size  # rank 0 alone writes outputs

    # 1. Model: the base model with a fresh score head (unless it has one); it takes token ids as well as text
    set_seed(p.args.get("seed", 42))
    model = load_model(params)
    accept_token_ids(model, params.tokenize.max_length)

    # 2. Data: the token ids, in the column order the loss reads; the dev pairs when the dev loss is logged
    train_dataset = Dataset.from_parquet(str(a.tokenize_dir / "train.parquet"))
    eval_dataset = Dataset.from_parquet(str(a.tokenize_dir / "dev_pairs.parquet")) if p.eval_loss else None
    if p.loss == "CrossEntropyLoss":
        train_dataset = class_ids(train_dataset, p.num_labels)
        if eval_dataset is not None:
            eval_dataset = class_ids(eval_dataset, p.num_labels)

    # 3. Loss, named in params
    loss = build_loss(model, p.loss, p.loss_args)

    # 4. Evaluators named in train.evaluators, as the evaluate stage builds them
    evaluators = build_evaluators(params, a.mine_dir, p.evaluators)

    # 5. Checkpoints of other inputs are cleared, those of these inputs resumed
    run_id = fingerprint(params, *sorted(a.tokenize_dir.glob("*.parquet")), *sorted(a.mine_dir.glob("dev*.parquet")))
    stamp = a.checkpoints / "fingerprint"
    if main_process and (not stamp.exists() or stamp.read_text() != run_id):
        shutil.rmtree(a.checkpoints, ignore_errors=True)
        a.checkpoints.mkdir(parents=True)
        stamp.write_text(run_id)
    args.distributed_state.wait_for_everyone()
    resume_from = last_complete_checkpoint(a.checkpoints)

    # 6. Train, logging each step to DVCLive
    callbacks = []
    if main_process:
        live = Live(str(a.live_dir), resume=resume_from is not None, save_dvc_exp=False, dvcyaml=None, report=None)
        callbacks.append(DVCLiveCallback(live=live, log_model=None))
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset, loss=loss,
        evaluator=evaluators or None, callbacks=callbacks,
    )
    if resume_from:
        print(f"train: resuming from {resume_from}")
    started = time.perf_counter()
    with track_emissions(params.emissions, a.emissions, "train", enabled=main_process):
        result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - started
    if not main_process:
        return

    # 7. Save the model, then the log and metrics the card renders from
    with atomic_output(a.model_out) as partial:
        model.save_pretrained(str(partial))
    state = trainer.state
    all_args = args.to_dict()
    write_json(a.log_out, {
        "log_history": state.log_history,
        "best_global_step": state.best_global_step,
        "best_metric": state.best_metric,
        "metric_for_best_model": args.metric_for_best_model,
        # CrossEntropyLoss has no get_config_dict (sentence-transformers 6.2): its params are its config
        "loss": {"name": p.loss, "config": loss.get_config_dict() if hasattr(loss, "get_config_dict") else p.loss_args},
        "non_default_args": {k: v for k, v in all_args.items() if v != defaults.get(k) and k not in
                             ("output_dir", "logging_dir", "report_to", "local_rank")},
        "all_args": {k: v for k, v in all_args.items() if k not in ("output_dir", "logging_dir")},
        "train_samples": len(train_dataset),
        "versions": {"python": platform.python_version(), **{n: version(n) for n in FRAMEWORKS}},
    })
    write_json(a.metrics, {
        "train_loss": round(result.training_loss, 4),
        "steps": state.global_step,
        "best_step": state.best_global_step,
        "pairs_per_second": round(len(train_dataset) * args.num_train_epochs / seconds, 2),
        "processes": processes,
        "seconds": round(seconds, 1),
    })
    # Checkpoints exist to resume a killed run; once the model is saved they are only disk weight
    for checkpoint in a.checkpoints.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    print(f"train: {state.global_step} steps in {seconds:.0f} s, best step {state.best_global_step}")


if __name__ == "__main__":
    main()
