"""Step 3b, steps: how many optimizer steps the training run takes on the tokenized data, and the checks that need
that number: a batch larger than the data, a run of no steps, warmup, evaluation, saving or logging beyond the
run's last step. Seconds, before the train stage. It writes `data/steps.json`, which changes only with the run's
length: editing one of these checks reruns this stage alone, not training."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq

from reranker.errors import entrypoint
from reranker.outputs import write_json
from reranker.run_length import check_training_steps, run_steps


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_length", type=Path, help="the check stage's data/check/run_length.json")
    parser.add_argument("train_data", type=Path, help="the tokenize stage's train.parquet")
    parser.add_argument("out", type=Path)
    paths = parser.parse_args()
    fields = json.loads(paths.run_length.read_text())
    processes, args = fields.pop("processes"), SimpleNamespace(**fields)
    rows = pq.read_metadata(paths.train_data).num_rows
    check_training_steps(args, rows, processes)
    steps, per_epoch = run_steps(args, rows, processes)
    write_json(paths.out, {"rows": rows, "processes": processes, "steps": steps, "steps_per_epoch": per_epoch})
    print(f"steps: {steps} optimizer steps on {rows} rows ({per_epoch} per epoch, {processes} process(es))")


if __name__ == "__main__":
    main()
