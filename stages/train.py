"""Step 7, train: fine-tune a cross-encoder with CrossEncoderTrainer and the loss named in params, on the
token ids of the tokenize stage, evaluating with the evaluators named in train.evaluators (and the dev loss).
Checkpoints survive a killed run and are resumed from; the final model is saved where `CrossEncoder(path)`
loads it."""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import time
from importlib.metadata import version
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import Dataset
from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments
from transformers import set_seed
from transformers.integrations import DVCLiveCallback

from dvclive import Live
from reranker.core.errors import entrypoint
from reranker.core.outputs import atomic_output, write_json
from reranker.params import load_sections
from reranker.training.checkpoints import fingerprint, last_complete_checkpoint
from reranker.training.cross_encoder import load_cross_encoder
from reranker.training.emissions import track_emissions
from reranker.training.evaluators import build_evaluators
from reranker.training.launch import relaunch_under_torchrun
from reranker.training.metric_names import split_evaluator_key
from reranker.training.trainer import build_trainer
from reranker.training.wise_ft import interpolate_with_start

FRAMEWORKS = ["sentence-transformers", "transformers", "torch", "accelerate", "datasets", "tokenizers"]
# What the trainer logs that a per-step plot cannot use: timings and throughputs, the epoch, FLOPs, the run's final
# averages, and the SequentialEvaluator's score (a copy of an evaluator's)
UNPLOTTED = re.compile(r"^(epoch|total_flos|train_.+|eval_(runtime|samples_per_second|steps_per_second|"
                       r"sequential_score))$")


class StepDVCLiveCallback(DVCLiveCallback):
    """transformers' DVCLive callback, each row logged at the trainer's global step (the library's counts its own
    log calls, so a plot's x axis would be the number of logs) and only what a per-step plot answers: the loss,
    gradient norm and learning rate, each evaluation of the model; not UNPLOTTED, nor an evaluator's `base_`
    metrics, the candidates' own (first-stage) order, the same at every step."""

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        logs = {key: value for key, value in (logs or {}).items() if not unplotted(key)}
        if not logs:
            return
        if state.is_world_process_zero and self.live is not None:
            self.live.step = state.global_step
        super().on_log(args, state, control, model=model, logs=logs, **kwargs)


def unplotted(key: str) -> bool:
    """Example: ``unplotted("eval_dev_base_ndcg@10")`` and ``unplotted("eval_runtime")`` are True."""
    parts = split_evaluator_key(key.removeprefix("eval_")) if key.startswith("eval_") else None
    return bool(UNPLOTTED.match(key)) or (parts is not None and parts[1])


def pairs_per_epoch(dataset: Dataset) -> int:
    """(query, document) pairs the loss scores in one epoch, not rows: an n-tuple row holds its positive and each
    negative, a listwise row each listed document (the in-batch pairs of MultipleNegativesRankingLoss not counted)."""
    total = 0
    for name in dataset.column_names:
        if name.endswith("_ids") and name != "query_ids":
            column = dataset.data.column(name)
            is_list_of_texts = pa.types.is_list(column.type.value_type)
            total += pc.sum(pc.list_value_length(column)).as_py() if is_list_of_texts else len(column)
    return total


def logged_mean_loss(log_history: list[dict]) -> float | None:
    """The training loss over the logged steps, each logged value (a mean over its interval) weighted by its
    interval's steps, rounded to 4 digits; None when no loss was logged. Example: losses 1.0 at step 3 and 0.5 at
    step 6 give 0.75."""
    total, previous = 0.0, 0
    for entry in log_history:
        if "loss" in entry:
            total += entry["loss"] * (entry["step"] - previous)
            previous = entry["step"]
    return round(total / previous, 4) if previous else None


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("tokenize_dir", "mine_dir", "checkpoints", "model_out", "log_out", "metrics", "live_dir",
                 "emissions"):
        parser.add_argument(name, type=Path)
    parser.add_argument("--summary", type=Path, help="where to write the headline of the metrics, for dvc exp show")
    paths = parser.parse_args()
    params = load_sections("train", "tokenize", "evaluate", "emissions")
    train = params.train
    # The training arguments set up the (distributed) state, so they come first. Without a GPU, a torchrun
    # launch is DDP only when they are told to use the CPU, and transformers 5 takes the rank as an argument.
    launched = {"use_cpu": train.args.get("use_cpu", not torch.cuda.is_available()),
                "local_rank": int(os.environ.get("LOCAL_RANK", -1))}
    # Each construction resets the shared distributed state: the defaults (for the card) first, then the real one
    defaults = CrossEncoderTrainingArguments(output_dir=str(paths.checkpoints), report_to="none", **launched).to_dict()
    args = CrossEncoderTrainingArguments(output_dir=str(paths.checkpoints), report_to="none", **launched, **train.args)
    relaunch_under_torchrun(train.num_processes, "stages.train")
    main_process, processes = args.process_index == 0, args.world_size  # rank 0 alone writes outputs

    # 1.-2. Data: the token ids, in the column order the loss reads; the dev pairs when the dev loss is logged
    set_seed(train.args.get("seed", 42))
    train_dataset = Dataset.from_parquet(str(paths.tokenize_dir / "train.parquet"))
    eval_dataset = Dataset.from_parquet(str(paths.tokenize_dir / "dev_pairs.parquet")) if train.eval_loss else None

    # 4. Evaluators named in train.evaluators, as the evaluate stage builds them
    evaluators = list(build_evaluators(params.evaluate, paths.mine_dir, train.evaluators).values())

    # 5. Checkpoints of other inputs are cleared, those of these inputs resumed
    evaluate = params.evaluate  # only its parts the training-time evaluators read, as dvc.yaml lists them
    run_id = fingerprint([params.train, params.tokenize, evaluate.batch_size, evaluate.reranking,
                          evaluate.classification, evaluate.nanobeir],
                         *sorted(paths.tokenize_dir.glob("*.parquet")), *sorted(paths.mine_dir.glob("dev*.parquet")))
    stamp = paths.checkpoints / "fingerprint"
    if main_process and (not stamp.exists() or stamp.read_text() != run_id):
        shutil.rmtree(paths.checkpoints, ignore_errors=True)
        paths.checkpoints.mkdir(parents=True)
        stamp.write_text(run_id)
    args.distributed_state.wait_for_everyone()
    resume_from = last_complete_checkpoint(paths.checkpoints)

    # 6. Train, logging each step to DVCLive
    callbacks = []
    if main_process:
        live = Live(str(paths.live_dir), resume=resume_from is not None, save_dvc_exp=False, dvcyaml=None, report=None)
        callbacks.append(StepDVCLiveCallback(live=live, log_model=None))
    # 1., 3., 5. Model, loss and trainer, as every recipe builds them (reranker/training/trainer.py)
    trainer = build_trainer(train, params.tokenize.max_length, args, train_dataset, eval_dataset=eval_dataset,
                            evaluators=evaluators, callbacks=callbacks)
    model, loss = trainer.model, trainer.loss
    if resume_from:
        print(f"train: resuming from {resume_from}")
    started = time.perf_counter()
    with track_emissions(params.emissions, paths.emissions, "train", enabled=main_process):
        result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - started
    if not main_process:
        return

    # 7. WiSE-FT when asked: the trained weights interpolated with the base model's; then save the model, the log and
    # the metrics the card renders from
    if train.wise_ft_alpha is not None:
        interpolate_with_start(model, load_cross_encoder(train, params.tokenize.max_length), train.wise_ft_alpha)
    with atomic_output(paths.model_out) as partial:
        model.save_pretrained(str(partial))
    state = trainer.state
    all_args = args.to_dict()
    write_json(paths.log_out, {
        "log_history": state.log_history,
        "best_global_step": state.best_global_step,
        "best_metric": state.best_metric,
        "metric_for_best_model": args.metric_for_best_model,
        # CrossEntropyLoss has no get_config_dict (sentence-transformers 6.2): its params are its config
        "loss": {"name": train.loss, "config": loss.get_config_dict() if hasattr(loss, "get_config_dict")
                 else train.loss_args},
        "non_default_args": {key: value for key, value in all_args.items() if value != defaults.get(key) and key not in
                             ("output_dir", "logging_dir", "report_to", "local_rank")},
        "all_args": {key: value for key, value in all_args.items() if key not in ("output_dir", "logging_dir")},
        "train_samples": len(train_dataset),
        "wise_ft_alpha": train.wise_ft_alpha,
        "versions": {"python": platform.python_version(), **{name: version(name) for name in FRAMEWORKS}},
    })
    # A resumed run trained only the steps after its checkpoint here: the trainer's mean loss and the speed of this
    # process cover those alone, so the loss is the logged losses' mean over the whole run and the speed this part's
    resumed_at = int(Path(resume_from).name.rpartition("-")[2]) if resume_from else 0
    share_trained_here = (state.global_step - resumed_at) / max(state.global_step, 1)
    metrics = {
        "train_loss": (round(result.training_loss, 4) if not resume_from
                       else logged_mean_loss(state.log_history)),
        "steps": state.global_step,
        "best_step": state.best_global_step,
        "pairs_per_second": (round(pairs_per_epoch(train_dataset) * args.num_train_epochs * share_trained_here
                                   / seconds, 2) if share_trained_here > 0 else None),
        "processes": processes,
        "wise_ft_alpha": train.wise_ft_alpha,
        "seconds": round(seconds, 1),
    }
    write_json(paths.metrics, metrics)
    if paths.summary:  # names distinct from the other summaries', so that dvc exp show needs no file prefix
        write_json(paths.summary, {"train_loss": metrics["train_loss"], "train_seconds": metrics["seconds"]})
    # Checkpoints exist to resume a killed run; once the model is saved they are only disk weight
    for checkpoint in paths.checkpoints.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    print(f"train: {state.global_step} steps in {seconds:.0f} s, best step {state.best_global_step}")


if __name__ == "__main__":
    main()
