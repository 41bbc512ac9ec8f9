"""Step 0, check: every check of params.yaml and of what it points at (data, models, collections, run files,
training arguments), before any stage works. It writes `data/check/passed`, whose content never changes: every
other stage depends on it, so DVC runs this stage first, and a change to the checks alone reruns nothing else.
Beside it, `data/check/training.json`: what the steps stage checks the tokenized data against (the loss, its
classes, and the training arguments that decide the run's length, as the library resolves them); it changes only
with those params."""

from __future__ import annotations

import argparse
from pathlib import Path

from reranker.checks.params import check_params
from reranker.checks.training import build_training_arguments
from reranker.checks.training_data import RUN_LENGTH_FIELDS
from reranker.core.errors import entrypoint
from reranker.core.outputs import atomic_output, write_json

PASSED = "params.yaml passed every check\n"


@entrypoint
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    out_dir = parser.parse_args().out_dir
    params = check_params("params.yaml")
    resolved = build_training_arguments(params.train.args).to_dict()
    with atomic_output(out_dir) as partial:
        partial.mkdir()
        (partial / "passed").write_text(PASSED)
        train = params.train
        write_json(partial / "training.json", {
            "loss": train.loss, "num_labels": train.num_labels, "eval_loss": train.eval_loss,
            "processes": train.num_processes, **{field: resolved[field] for field in RUN_LENGTH_FIELDS}})
    print("check: params.yaml passed every check")


if __name__ == "__main__":
    main()
