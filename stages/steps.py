"""Step 6, steps: how many optimizer steps the training run takes on the tokenized data, and the checks that need
the data: a batch larger than the data, a run of no steps, warmup, evaluation, saving or logging beyond the run's
last step, CrossEntropyLoss labels that are not class ids. Seconds, before the train stage. It writes
`data/steps.json`, which changes only with the run's length: editing one of these checks reruns this stage alone,
not training."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq

from reranker.checks.training_data import check_class_ids, check_training_steps, run_steps
from reranker.core.errors import entrypoint
from reranker.core.outputs import write_json


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("training", type=Path, help="the check stage's data/check/training.json")
    parser.add_argument("tokenize_dir", type=Path, help="the tokenize stage's output")
    parser.add_argument("out", type=Path)
    paths = parser.parse_args()
    fields = json.loads(paths.training.read_text())
    loss, num_labels, eval_loss, processes = (fields.pop(key) for key in ("loss", "num_labels", "eval_loss",
                                                                          "processes"))
    args = SimpleNamespace(**fields)

    # The run's length on the training rows (the Parquet footer, no rows read)
    rows = pq.read_metadata(paths.tokenize_dir / "train.parquet").num_rows
    check_training_steps(args, rows, processes)
    # CrossEntropyLoss's labels are the training data's (and with train.eval_loss the dev pairs') class ids
    if loss == "CrossEntropyLoss":
        for name in ("train.parquet", "dev_pairs.parquet") if eval_loss else ("train.parquet",):
            labels = pq.read_table(paths.tokenize_dir / name, columns=["label"])["label"].to_numpy()
            check_class_ids(labels, num_labels)

    steps, per_epoch = run_steps(args, rows, processes)
    write_json(paths.out, {"rows": rows, "processes": processes, "steps": steps, "steps_per_epoch": per_epoch})
    print(f"steps: {steps} optimizer steps on {rows} rows ({per_epoch} per epoch, {processes} process(es))")


if __name__ == "__main__":
    main()
